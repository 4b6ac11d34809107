"""The teacher cache: same training as without it, reused when valid, never stale."""

from __future__ import annotations

from pathlib import Path

import torch
from test_train_fixtures import corpus_splits, lora_student, skd_config, write_parallel_corpus

from xvlm2vec.testing.tiny_model import build_tiny_model
from xvlm2vec.training import SKDTrainer
from xvlm2vec.training.teacher import teacher_fingerprint


def _run(tmp_path: Path, train, name: str, steps: int = 4, **config) -> SKDTrainer:
    trainer = SKDTrainer(
        model=lora_student(), args=skd_config(tmp_path / name, max_steps=steps, **config), train_dataset=train
    )
    trainer.train()
    return trainer


def _losses(trainer: SKDTrainer) -> list[float]:
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def test_cache_gives_the_same_loss_trajectory_and_is_reused(tmp_path: Path) -> None:
    train, _ = corpus_splits(write_parallel_corpus(tmp_path / "corpus", train=16, dev=2))
    plain = _run(tmp_path, train, "plain", image_loss=True)
    cached = _run(tmp_path, train, "cached", image_loss=True, teacher_cache=str(tmp_path / "cache"))
    assert cached.teacher_cache_path is not None and cached.teacher_cache_path.is_file()
    batch = cached.data_collator([cached.train_dataset[i] for i in range(4)])
    assert "teacher_embeddings" in batch and "teacher_inputs" not in batch  # no teacher forward in training
    assert all("loss_image_x" in entry for entry in cached.state.log_history if "loss" in entry)
    # The cache pass batches and pads rows differently from training batches; the teacher embeddings then
    # differ by float rounding only (~1e-7), so the losses agree to 1e-5 relative.
    assert torch.allclose(torch.tensor(_losses(plain)), torch.tensor(_losses(cached)), rtol=1e-5, atol=1e-7)
    stamp = cached.teacher_cache_path.stat().st_mtime_ns
    again = _run(tmp_path, train, "again", steps=1, teacher_cache=str(tmp_path / "cache"))
    assert again.teacher_cache_path == cached.teacher_cache_path
    assert again.teacher_cache_path.stat().st_mtime_ns == stamp  # reused, not rewritten


def test_changed_data_or_teacher_or_tampered_file_is_not_reused(tmp_path: Path) -> None:
    train, _ = corpus_splits(write_parallel_corpus(tmp_path / "corpus", train=8, dev=2))
    cache = str(tmp_path / "cache")
    first = SKDTrainer(model=lora_student(), args=skd_config(tmp_path / "a", teacher_cache=cache), train_dataset=train)
    edited = train.map(
        lambda row, i: {"text_en": row["text_en"] + " dog" if i == 3 else row["text_en"]}, with_indices=True
    )
    second = SKDTrainer(
        model=lora_student(), args=skd_config(tmp_path / "b", teacher_cache=cache), train_dataset=edited
    )
    assert second.teacher_cache_path != first.teacher_cache_path
    changed_teacher = lora_student()
    with torch.no_grad():
        changed_teacher.get_base_model().model.language_model.norm.weight[0] += 1e-3
    third = SKDTrainer(
        model=changed_teacher, args=skd_config(tmp_path / "c", teacher_cache=cache), train_dataset=train
    )
    assert third.teacher_cache_path not in (first.teacher_cache_path, second.teacher_cache_path)
    # row 3's teacher embedding really differs between the first two caches; the others agree
    rows_a = torch.tensor(first.train_dataset["teacher_embedding"])
    rows_b = torch.tensor(second.train_dataset["teacher_embedding"])
    differs = (rows_a - rows_b).abs().amax(-1) > 1e-6
    assert differs.tolist() == [i == 3 for i in range(8)]
    # the key is the file's name, so a file of another key is never read; a damaged file is recomputed, not trusted
    first.teacher_cache_path.write_bytes(first.teacher_cache_path.read_bytes()[:100])
    fourth = SKDTrainer(
        model=lora_student(), args=skd_config(tmp_path / "d", teacher_cache=cache), train_dataset=train
    )
    assert fourth.teacher_cache_path == first.teacher_cache_path
    assert torch.allclose(torch.tensor(fourth.train_dataset["teacher_embedding"]), rows_a)


def test_self_teacher_and_separate_copy_share_a_fingerprint() -> None:
    student = lora_student()
    plain, _ = build_tiny_model("qwen2_vl", seed=0)  # same seed: the same weights, no LoRA layers at all
    assert teacher_fingerprint(student) == teacher_fingerprint(plain)
    with torch.no_grad():
        next(plain.parameters()).view(-1)[0] += 1.0
    assert teacher_fingerprint(student) != teacher_fingerprint(plain)
