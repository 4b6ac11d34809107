"""Bad parallel rows: counted and logged skips, or errors naming the row."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from test_train_fixtures import TAG, corpus_splits, lora_student, parallel_rows, skd_config, write_parallel_corpus

from xvlm2vec.testing.tiny_model import build_tiny_model
from xvlm2vec.training import ParallelCollator, SKDTrainer


@pytest.fixture(scope="module")
def prepare_inputs():
    model, _ = build_tiny_model("qwen2_vl", seed=0)
    return model.prepare_inputs


def bad_rows() -> dict[str, dict]:
    """One row per kind of bad input, keyed by the message fragment expected for it."""
    good = parallel_rows(4, seed=3, image_every=2)
    unreadable = dict(good[0], id="bad-image", image={"bytes": b"this is not an image", "path": None})
    empty = dict(good[1], id="bad-empty", text_lang="   ")
    too_long = dict(good[1], id="bad-long", text_en=" ".join(["red cat house"] * 40))
    mismatched = dict(good[2], id="bad-tags", text_lang=good[2]["text_lang"].replace(TAG, ""))
    return {
        "unreadable image": unreadable,
        "text_lang is empty": empty,
        "longer than max_length": too_long,
        "image tag mismatch": mismatched,
    }


def test_skip_drops_counts_and_logs_each_bad_row(prepare_inputs, caplog) -> None:
    good = parallel_rows(4, seed=1, image_every=2)
    rows = good[:2] + list(bad_rows().values()) + good[2:]
    collator = ParallelCollator(prepare_inputs, max_length=48, bad_rows="skip")
    with caplog.at_level(logging.WARNING, logger="xvlm2vec.training.collator"):
        batch = collator(rows)
    assert batch["skipped_rows"] == 4
    assert batch["student_inputs"]["input_ids"].shape[0] == 2 * len(good)  # English + x of the 4 good rows
    assert batch["teacher_inputs"]["input_ids"].shape[0] == len(good)
    logged = caplog.text
    for reason, row in bad_rows().items():
        assert row["id"] in logged and reason in logged


@pytest.mark.parametrize("reason", list(bad_rows()))
def test_error_mode_names_the_row(prepare_inputs, reason: str) -> None:
    row = bad_rows()[reason]
    collator = ParallelCollator(prepare_inputs, max_length=48, bad_rows="error")
    with pytest.raises(ValueError, match=reason) as error:
        collator(parallel_rows(2, seed=1) + [row])
    assert row["id"] in str(error.value)


def test_unfused_collation_skips_the_same_rows(prepare_inputs) -> None:
    good = parallel_rows(3, seed=1, image_every=2)
    collator = ParallelCollator(prepare_inputs, max_length=48, bad_rows="skip", fused=False)
    batch = collator(good + list(bad_rows().values()))
    assert batch["skipped_rows"] == 4
    assert batch["student_en_inputs"]["input_ids"].shape[0] == batch["student_lang_inputs"]["input_ids"].shape[0] == 3
    assert batch["teacher_inputs"] is batch["student_en_inputs"]  # same English batch, built once


def test_all_bad_batch_is_an_error(prepare_inputs) -> None:
    collator = ParallelCollator(prepare_inputs, max_length=48, bad_rows="skip")
    with pytest.raises(ValueError, match="every row of the batch is bad"):
        collator(list(bad_rows().values()))


def test_trainer_logs_skipped_rows(tmp_path: Path) -> None:
    folder = write_parallel_corpus(tmp_path / "corpus", train=8, dev=2)
    train, _ = corpus_splits(folder)
    train = train.map(lambda row, i: {"text_lang": "" if i in (1, 5) else row["text_lang"]}, with_indices=True)
    trainer = SKDTrainer(
        model=lora_student(),
        args=skd_config(tmp_path / "out", max_steps=2, per_device_train_batch_size=4),
        train_dataset=train,
    )
    trainer.train()
    logged = [entry["skipped_rows"] for entry in trainer.state.log_history if "skipped_rows" in entry]
    assert logged[-1] == 2  # cumulative count over the epoch: rows 1 and 5


def test_config_refuses_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bad_rows"):
        skd_config(tmp_path, bad_rows="ignore")
    with pytest.raises(ValueError, match="en_loss_weight"):
        skd_config(tmp_path, en_loss_weight=0.0, x_loss_weight=0.0)
    with pytest.raises(ValueError, match="remove_unused_columns"):
        skd_config(tmp_path, remove_unused_columns=True)
