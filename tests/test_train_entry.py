"""The training entry in TRL's shape: a short `main`, a trainer that builds student, adapters and teacher from
names, and one teacher loader that honours `trust_remote_code` wherever the teacher is loaded from."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from test_remote_code import qwen_backbone
from test_train_fixtures import LORA_TARGETS, corpus_splits, skd_config, write_parallel_corpus

ROOT = Path(__file__).resolve().parents[1]
TRAINING = ROOT / "xvlm2vec/training"


def test_main_reads_in_one_screen() -> None:
    tree = ast.parse((TRAINING / "script.py").read_text())
    main = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main")
    lines = main.end_lineno - main.lineno + 1
    assert lines < 80, f"main is {lines} lines"
    # main hands models to the trainer by name: no LoRA wrapping, teacher loading or merging of its own
    source = ast.unparse(main)
    for call in ("get_peft_model", "load_xvlm2vec_model", "merge_and_unload", "PeftModel"):
        assert call not in source, call


def test_one_teacher_loader() -> None:
    """Only `models.load_teacher` loads a teacher: no other training module names `--teacher` in a load call."""
    callers = []
    for path in TRAINING.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and any(
                isinstance(arg, ast.Constant) and arg.value == "--teacher" for arg in node.args
            ):
                callers.append((path.name, ast.unparse(node.func)))
    assert [caller for caller in callers if caller[1] != "check_xvlm2vec_source"] == [
        ("models.py", "load_xvlm2vec_model")
    ]


def test_remote_code_teacher_needs_the_flag_through_the_trainer(tmp_path: Path) -> None:
    from peft import LoraConfig

    from xvlm2vec.testing.tiny_model import save_tiny_model
    from xvlm2vec.training import SKDTrainer

    marker = qwen_backbone(tmp_path / "teacher_with_code")
    student = str(save_tiny_model("qwen2_vl", tmp_path / "student", seed=0))
    train, _ = corpus_splits(write_parallel_corpus(tmp_path / "corpus", train=8, dev=2))
    args = skd_config(tmp_path / "out", max_steps=1, teacher=str(tmp_path / "teacher_with_code"))
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=LORA_TARGETS, task_type="FEATURE_EXTRACTION")
    with pytest.raises(ValueError, match="--teacher .*own code"):
        SKDTrainer(model=student, args=args, train_dataset=train, peft_config=lora)
    assert not marker.exists()
    trainer = SKDTrainer(model=student, args=args, train_dataset=train, peft_config=lora, trust_remote_code=True)
    assert marker.exists()  # the folder's own code ran, because it was trusted
    separate = trainer.teacher.separate
    assert separate is not None and not any(p.requires_grad for p in separate.parameters())
    assert type(trainer.model).__name__ == "PeftModelForFeatureExtraction"  # adapters from peft_config
    trainer.train()
    assert trainer.state.global_step == 1


def test_same_checkpoint_teacher_is_loaded_from_the_student_name(tmp_path: Path) -> None:
    import torch

    from xvlm2vec.testing.tiny_model import save_tiny_model
    from xvlm2vec.training import SKDTrainer

    student = str(save_tiny_model("qwen2_vl", tmp_path / "student", seed=0))
    args = skd_config(tmp_path / "out", max_steps=1, teacher="same_checkpoint")
    trainer = SKDTrainer(model=student, args=args)
    separate, model = trainer.teacher.separate, trainer.model
    assert separate is not model and not any(p.requires_grad for p in separate.parameters())
    assert all(torch.equal(a, b) for a, b in zip(separate.state_dict().values(), model.state_dict().values()))
