"""The released recipe (full fine-tuning, a separate frozen teacher from the same checkpoint, 1344x1344 images,
file order, global batch 512) run on the tiny Phi-3.5-V on the CPU; and its accelerate FSDP config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from test_train_fixtures import write_parallel_corpus
from torch.utils.data import SequentialSampler

pytestmark = pytest.mark.slow  # make test-slow (CI runs it after make test): minutes on 2 cores

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes/xvlm2vec_phi35v_released.yaml"
FSDP = ROOT / "accelerate_configs/fsdp_released.yaml"


def test_released_recipe_and_accelerate_config_state_the_released_run() -> None:
    recipe = yaml.safe_load(RECIPE.read_text())
    expected = {
        "use_peft": False,
        "teacher": "same_checkpoint",
        "image_resize": [1344, 1344],
        "fused_student_forward": False,
        "train_sampling_strategy": "sequential",
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
        "dtype": "bfloat16",
    }
    assert {key: recipe.get(key) for key in expected} == expected
    launch = yaml.safe_load(FSDP.read_text())
    fsdp = launch["fsdp_config"]
    assert (launch["distributed_type"], launch["num_machines"], launch["num_processes"]) == ("FSDP", 4, 16)
    assert (
        recipe["per_device_train_batch_size"] * recipe["gradient_accumulation_steps"] * launch["num_processes"] == 512
    )
    assert (fsdp["fsdp_version"], fsdp["fsdp_sharding_strategy"], fsdp["fsdp_backward_prefetch"]) == (
        1,
        "FULL_SHARD",
        "BACKWARD_PRE",
    )
    assert fsdp["fsdp_state_dict_type"] == "SHARDED_STATE_DICT" and launch["mixed_precision"] == "bf16"
    # the separate teacher is not sharded, so every rank must load real weights (see refuse_unsynced_teacher)
    assert fsdp["fsdp_cpu_ram_efficient_loading"] is False


def test_fsdp_wrap_class_is_the_real_phi3v_decoder_layer(tiny_models) -> None:
    from accelerate.utils.dataclasses import get_module_class_from_name

    model, _ = tiny_models("phi3_v")
    name = yaml.safe_load(FSDP.read_text())["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"]
    layer_class = get_module_class_from_name(model, name)
    assert layer_class is not None and name in model._no_split_modules
    wrapped = [module for module in model.modules() if isinstance(module, layer_class)]
    assert len(wrapped) == model.config.backbone_config.text_config.num_hidden_layers
    assert get_module_class_from_name(model, "MistralDecoderLayer") is None  # the class the released file named


def test_separate_teacher_is_refused_with_cpu_ram_efficient_loading() -> None:
    from types import SimpleNamespace

    from xvlm2vec.training.teacher import refuse_unsynced_teacher

    refuse_unsynced_teacher(None)
    refuse_unsynced_teacher(SimpleNamespace(cpu_ram_efficient_loading=False))
    with pytest.raises(ValueError, match="cpu_ram_efficient_loading"):
        refuse_unsynced_teacher(SimpleNamespace(cpu_ram_efficient_loading=True))


def test_released_recipe_trains_all_weights_and_its_separate_teacher_stays_bit_identical(
    tmp_path: Path, monkeypatch
) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModel

    import xvlm2vec.training.script as script
    from xvlm2vec.testing.tiny_model import save_tiny_model

    model_dir = save_tiny_model("phi3_v", tmp_path / "tiny", seed=0)
    corpus = write_parallel_corpus(tmp_path / "corpus", train=64, dev=4)  # 64 rows = 2 steps of 8 x 4
    made = []

    class Recording(script.SKDTrainer):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(script, "SKDTrainer", Recording)
    # the recipe as is, but: no GPU (bf16/tf32 off), float32 weights (lr 1e-5 steps vanish in bf16 on 2 steps),
    # the fixture's config, 2 steps, no dataloader workers
    assert (
        script.run(
            [
                "--config",
                str(RECIPE),
                "--model_name_or_path",
                str(model_dir),
                "--dataset_name",
                str(corpus),
                "--dataset_config",
                "it",
                "--output_dir",
                str(tmp_path / "out"),
                "--bf16",
                "false",
                "--tf32",
                "false",
                "--dtype",
                "float32",
                "--max_steps",
                "2",
                "--dataloader_num_workers",
                "0",
                "--disable_tqdm",
                "true",
            ]
        )
        == 0
    )
    trainer = made[0]
    assert trainer.state.global_step == 2 and isinstance(trainer._get_train_sampler(), SequentialSampler)
    student, teacher = trainer.model, trainer.teacher.separate
    assert not hasattr(student, "peft_config") and all(p.requires_grad for p in student.parameters())
    assert teacher is not student and not any(p.requires_grad for p in teacher.parameters())
    student_storage = {p.data_ptr() for p in student.parameters()}
    assert not student_storage & {p.data_ptr() for p in teacher.parameters()}
    # the teacher after training is bit-identical to the checkpoint it was loaded from
    reference = AutoModel.from_pretrained(str(model_dir), trust_remote_code=True, dtype=torch.float32).state_dict()
    after = teacher.state_dict()
    assert sorted(after) == sorted(reference)
    assert all(torch.equal(after[name], reference[name]) for name in reference)
    # the student trained every part: decoder, vision tower and projection all moved
    saved = load_file(str(tmp_path / "out/model.safetensors"))
    assert not (tmp_path / "out/adapter").exists()
    for name in (
        "model.layers.0.self_attn.qkv_proj.weight",
        "model.embed_tokens.weight",
        "model.vision_embed_tokens.img_projection.0.weight",
        "model.vision_embed_tokens.img_processor.vision_model.encoder.layers.0.mlp.fc1.weight",
    ):
        assert not torch.equal(saved[name], reference[name]), name
    # every image reaches the processor as 1344x1344: 2x2 crops of 336 (a 28x28 image alone would give 1 crop)
    row = {
        "id": "r",
        "text_en": "<|image_1|>\nred cat",
        "text_lang": "<|image_1|>\ngatto rosso",
        "image": Image.new("RGB", (28, 28), (200, 10, 10)),
    }
    batch = trainer.data_collator([row])  # two student forwards (fused_student_forward: false), as released
    for side in ("student_en_inputs", "student_lang_inputs", "teacher_inputs"):
        assert batch[side]["image_sizes"].tolist() == [[672, 672]], side


def test_same_checkpoint_teacher_must_be_given_to_the_trainer(tiny_models, tmp_path: Path) -> None:
    from xvlm2vec.training import SKDConfig, SKDTrainer

    model, _ = tiny_models("phi3_v")
    args = SKDConfig(output_dir=str(tmp_path), use_cpu=True, teacher="same_checkpoint", report_to="none")
    with pytest.raises(ValueError, match="teacher_model"):
        SKDTrainer(model=model, args=args)
