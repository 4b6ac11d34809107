"""Resuming from a checkpoint ends where the uninterrupted run ends."""

from __future__ import annotations

from pathlib import Path

import torch
from test_train_fixtures import corpus_splits, lora_student, skd_config, write_parallel_corpus

from xvlm2vec.training import SKDTrainer


def _adapter_weights(model) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.named_parameters() if "lora_" in name}


def test_resume_from_step_k_matches_uninterrupted_run(tmp_path: Path) -> None:
    train, _ = corpus_splits(write_parallel_corpus(tmp_path / "corpus", train=24, dev=2))
    settings = dict(
        max_steps=6,
        per_device_train_batch_size=4,
        lr_scheduler_type="cosine",
        save_strategy="steps",
        save_steps=3,
        save_only_model=False,
    )
    full = SKDTrainer(model=lora_student(), args=skd_config(tmp_path / "full", **settings), train_dataset=train)
    full.train()
    checkpoint = tmp_path / "full" / "checkpoint-3"
    assert checkpoint.is_dir()
    resumed = SKDTrainer(model=lora_student(), args=skd_config(tmp_path / "resumed", **settings), train_dataset=train)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.state.global_step == 6
    expected, got = _adapter_weights(full.model), _adapter_weights(resumed.model)
    assert expected.keys() == got.keys() and expected
    # Same data order, optimizer and scheduler state on one CPU: equal up to float rounding (1e-6 absolute on
    # weights of magnitude ~1e-2).
    assert all(torch.allclose(expected[name], got[name], atol=1e-6, rtol=0) for name in expected)
    # and training did move them (the comparison could fail): B matrices start at zero
    assert max(t.abs().max().item() for name, t in got.items() if "lora_B" in name) > 1e-4
    losses = lambda t: [e["loss"] for e in t.state.log_history if "loss" in e]  # noqa: E731
    assert torch.allclose(torch.tensor(losses(full)[3:]), torch.tensor(losses(resumed)[-3:]), rtol=1e-5)
