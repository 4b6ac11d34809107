"""train.py end to end: recipe + overrides, accelerate launch, a saved folder that loads anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train_fixtures import write_parallel_corpus

from xvlm2vec.testing.tiny_model import save_tiny_model
from xvlm2vec.training.script import parse_args, run

ROOT = Path(__file__).resolve().parents[1]
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("script")
    return save_tiny_model("qwen2_vl", base / "tiny", seed=0), write_parallel_corpus(base / "corpus", train=16, dev=8)


def _embed(model, texts: list[str]) -> torch.Tensor:
    return model.encode(texts, convert_to_tensor=True, normalize_embeddings=False)


def test_recipe_fields_are_overridable() -> None:
    script_args, training_args, model_args = parse_args(
        [
            "--config",
            str(ROOT / "recipes/tiny_cpu.yaml"),
            "--output_dir",
            "x",
            "--max_steps",
            "7",
            "--lora_r",
            "4",
            "--teacher_cache",
            "cache",
            "--languages",
            "it",
            "es",
        ]
    )
    assert (training_args.max_steps, model_args.lora_r, training_args.teacher_cache) == (7, 4, "cache")
    assert training_args.languages == ["it", "es"] and script_args.dataset_test_split == "dev"
    assert model_args.lora_task_type == "FEATURE_EXTRACTION" and training_args.learning_rate == 2e-3  # from the recipe


@pytest.mark.parametrize("recipe", ["xvlm2vec_phi35v", "qwen2_vl", "qwen3_vl_embedding"])
def test_gpu_recipes_parse_and_match_the_paper_schedule(recipe: str) -> None:
    import yaml

    path = ROOT / f"recipes/{recipe}.yaml"
    values = yaml.safe_load(path.read_text())
    expected = {
        "num_train_epochs": 1,
        "learning_rate": 1e-5,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 0,
        "weight_decay": 0.0,
        "max_grad_norm": 0.3,
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 4,
        "bf16": True,
        "tf32": True,
        "gradient_checkpointing": True,
        "gradient_checkpointing_kwargs": {"use_reentrant": False},
        "train_sampling_strategy": "group_by_length",
        "use_peft": True,
    }
    assert {key: values.get(key) for key in expected} == expected
    # every key is a field of the three dataclasses (bf16/tf32 need a GPU to validate, so they are switched off)
    script_args, args, model_args = parse_args(
        ["--config", str(path), "--output_dir", "x", "--bf16", "false", "--tf32", "false"]
    )
    assert args.teacher is None and model_args.lora_task_type == "FEATURE_EXTRACTION"
    assert script_args.convention == values.get("convention")


def test_accelerate_launch_trains_and_saves_a_loadable_merged_model(inputs, tmp_path: Path) -> None:
    from transformers import AutoModel

    model_dir, corpus = inputs
    output = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ROOT / "accelerate_configs/cpu.yaml"),
        str(ROOT / "train.py"),
        "--config",
        str(ROOT / "recipes/tiny_cpu.yaml"),
        "--model_name_or_path",
        str(model_dir),
        "--dataset_name",
        str(corpus),
        "--output_dir",
        str(output),
        "--max_steps",
        "3",
        "--disable_tqdm",
        "true",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(done.stdout[done.stdout.rindex('{\n  "saved"') :])
    assert summary["saved"] == str(output) and summary["train_loss"] > 0
    files = [path for path in output.rglob("*") if path.is_file()]
    assert not [path for path in files if path.suffix in PICKLE_SUFFIXES]  # safetensors and JSON only
    assert (output / "model.safetensors").is_file() and (output / "adapter/adapter_model.safetensors").is_file()
    assert (output / "modules.json").is_file() and (output / "sentence_xvlm2vec.py").is_file()  # sentence-transformers
    merged = AutoModel.from_pretrained(str(output), trust_remote_code=True)
    assert merged.config.model_type == "xvlm2vec"
    from peft import PeftModel

    adapted = PeftModel.from_pretrained(
        AutoModel.from_pretrained(str(model_dir), trust_remote_code=True), str(output / "adapter")
    ).get_base_model()
    base = AutoModel.from_pretrained(str(model_dir), trust_remote_code=True)
    texts = ["red cat house", "gatto rosso casa"]
    with torch.no_grad():
        merged_points, base_points = _embed(merged, texts), _embed(base, texts)
        adapted.set_processor(merged.processor)
        adapted_points = _embed(adapted, texts)
    # merging LoRA into the weights only reorders float additions: 1e-5 absolute on embeddings of size ~1
    assert torch.allclose(merged_points, adapted_points, atol=1e-5)
    assert (merged_points - base_points).abs().max() > 1e-4  # training changed the model


def test_adapter_only_and_bad_task_type(inputs, tmp_path: Path) -> None:
    model_dir, corpus = inputs
    common = [
        "--config",
        str(ROOT / "recipes/tiny_cpu.yaml"),
        "--model_name_or_path",
        str(model_dir),
        "--dataset_name",
        str(corpus),
        "--max_steps",
        "1",
        "--disable_tqdm",
        "true",
    ]
    assert run(common + ["--output_dir", str(tmp_path / "a"), "--save_adapter_only", "true"]) == 0
    assert (tmp_path / "a/adapter/adapter_model.safetensors").is_file()
    assert not (tmp_path / "a/model.safetensors").exists()
    with pytest.raises(ValueError, match="FEATURE_EXTRACTION"):
        run(common + ["--output_dir", str(tmp_path / "b"), "--lora_task_type", "CAUSAL_LM"])
    with pytest.raises(ValueError, match="no rows"):
        run(common + ["--output_dir", str(tmp_path / "c"), "--languages", "de"])


@pytest.mark.parametrize(("backbone", "convention"), [("qwen2_vl", None), ("qwen3_vl", "qwen3_vl_embedding")])
def test_backbone_checkpoint_is_wrapped_and_saved_as_xvlm2vec(backbone, convention, inputs, tmp_path: Path) -> None:
    from transformers import AutoModel, AutoModelForImageTextToText

    from xvlm2vec.testing.tiny_model import BUILDERS

    _, corpus = inputs
    config, processor = BUILDERS[backbone](vocab_size=600, hidden=64, layers=2, image_size=56, intermediate=128)
    folder = tmp_path / "backbone"
    AutoModelForImageTextToText.from_config(config).save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    extra = [] if convention is None else ["--convention", convention]
    assert (
        run(
            [
                "--config",
                str(ROOT / "recipes/tiny_cpu.yaml"),
                "--model_name_or_path",
                str(folder),
                "--dataset_name",
                str(corpus),
                "--max_steps",
                "1",
                "--disable_tqdm",
                "true",
                "--output_dir",
                str(tmp_path / "out"),
                *extra,
            ]
        )
        == 0
    )
    model = AutoModel.from_pretrained(str(tmp_path / "out"), trust_remote_code=True)
    assert model.config.model_type == "xvlm2vec" and model.config.backbone_config.model_type == backbone
    assert model.config.convention == (convention or "vlm2vec")
    assert model.encode(["gatto rosso"]).shape == (1, 64)
