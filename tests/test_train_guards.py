"""A training run that one bad batch cannot kill, that never trains on or saves non-finite values, that refuses
arguments that would train nothing, and that writes its output as safely as every other verb (issue 21)."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import datasets
import pytest
import torch
from test_train_fixtures import (
    FEATURES,
    corpus_splits,
    lora_student,
    parallel_rows,
    skd_config,
    write_parallel_corpus,
)

from xvlm2vec.cli import main as cli_main
from xvlm2vec.testing.tiny_model import build_tiny_model, save_tiny_model
from xvlm2vec.training import SKDTrainer
from xvlm2vec.training.guards import TrainingStopped

ROOT = Path(__file__).resolve().parents[1]


def write_rows(folder: Path, rows: list[dict]) -> Path:
    """A one-config (`it`) corpus folder whose train split is ``rows`` (dev: two good rows)."""
    card = ["---", "configs:", "- config_name: it", "  data_files:"]
    for split, split_rows in (("train", rows), ("dev", parallel_rows(2, seed=9))):
        path = folder / "it" / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_list(split_rows, features=FEATURES).to_parquet(str(path))
        card += [f"  - split: {split}", f"    path: it/{path.name}"]
    (folder / "README.md").write_text("\n".join(card + ["---", ""]))
    return folder


def empty_x(row: dict) -> dict:
    return dict(row, text_lang="  ")


def logged(trainer: SKDTrainer, key: str) -> list:
    return [entry[key] for entry in trainer.state.log_history if key in entry]


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ----------------------------------------------------------------------------------------------- bad data
def test_a_batch_of_bad_rows_is_skipped_counted_and_reported(tmp_path: Path) -> None:
    rows = parallel_rows(12, seed=2, image_every=0)
    rows[8:] = [empty_x(row) for row in rows[8:]]  # the last batch of a sequential epoch: every row bad
    train, _ = corpus_splits(write_rows(tmp_path / "corpus", rows))
    args = skd_config(
        tmp_path / "out", num_train_epochs=1, per_device_train_batch_size=4, train_sampling_strategy="sequential"
    )
    trainer = SKDTrainer(model=lora_student(), args=args, train_dataset=train)
    trainer.train()  # on main: ValueError "every row of the batch is bad", nothing saved
    assert trainer.state.global_step == 3
    assert logged(trainer, "skipped_batches")[-1] == 1 and logged(trainer, "skipped_rows")[-1] == 4
    assert [(r.row_id, r.reason.startswith("text_lang is empty"), r.lang) for r in trainer.rejected_rows] == [
        (f"row-{i}", True, "it") for i in range(8, 12)
    ]
    trainer.save_student(save_adapter_only=True)
    report = [json.loads(line) for line in (tmp_path / "out/rejected_rows.jsonl").read_text().splitlines()]
    assert [(r["row_id"], r["reason"].startswith("text_lang is empty"), r["source_dataset"]) for r in report] == [
        (f"row-{i}", True, "synthetic") for i in range(8, 12)
    ]


def test_the_run_stops_only_past_the_allowed_share_of_bad_rows(tmp_path: Path) -> None:
    rows = parallel_rows(40, seed=3, image_every=0)
    rows = [empty_x(row) if index % 5 < 3 else row for index, row in enumerate(rows)]  # 60% bad
    train, _ = corpus_splits(write_rows(tmp_path / "corpus", rows))
    settings = dict(num_train_epochs=1, per_device_train_batch_size=8, train_sampling_strategy="sequential")
    trainer = SKDTrainer(model=lora_student(), args=skd_config(tmp_path / "a", **settings), train_dataset=train)
    with pytest.raises(TrainingStopped, match=r"20 of 32 rows are bad, more than max_bad_row_share 0.5 .*empty"):
        trainer.train()
    allowed = skd_config(tmp_path / "b", max_bad_row_share=0.7, **settings)
    trainer = SKDTrainer(model=lora_student(), args=allowed, train_dataset=train)
    trainer.train()
    assert trainer.state.global_step == 5 and logged(trainer, "skipped_rows")[-1] == 24


# ----------------------------------------------------------------------------------------------- non-finite
def test_one_non_finite_step_is_skipped_and_the_real_loss_logged(tmp_path: Path) -> None:
    train, _ = corpus_splits(write_parallel_corpus(tmp_path / "corpus", train=12, dev=2))
    trainer = SKDTrainer(
        model=lora_student(),
        args=skd_config(tmp_path / "out", max_steps=3, per_device_train_batch_size=4),
        train_dataset=train,
    )
    embed, calls = trainer.teacher.embed, []

    def first_call_nan(*args, **kwargs):
        calls.append(1)
        points, images = embed(*args, **kwargs)
        return (points * float("nan") if len(calls) == 1 else points), images

    trainer.teacher.embed = first_call_nan
    start = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    losses = logged(trainer, "loss")
    assert len(losses) == 3 and losses[0] != losses[0] and all(loss > 0 for loss in losses[1:])  # NaN, then real
    assert logged(trainer, "nonfinite_steps") == [1, 1, 1]
    after = dict(trainer.model.named_parameters())
    assert all(torch.isfinite(after[name]).all() for name in start)  # on main: NaN weights
    assert any(not torch.equal(start[name], after[name]) for name in start)  # steps 2 and 3 did train


def test_non_finite_teacher_stops_the_run_untouched_and_unsaved(tmp_path: Path) -> None:
    train, _ = corpus_splits(write_parallel_corpus(tmp_path / "corpus", train=24, dev=2))
    student, _ = build_tiny_model("qwen2_vl", seed=0)
    teacher, _ = build_tiny_model("qwen2_vl", seed=0)
    with torch.no_grad():
        teacher.model.language_model.norm.weight.fill_(float("inf"))  # a teacher that overflowed
    before = {name: tensor.clone() for name, tensor in student.state_dict().items()}
    args = skd_config(tmp_path / "out", max_steps=6, per_device_train_batch_size=4, max_nonfinite_steps=2)
    trainer = SKDTrainer(model=student, args=args, train_dataset=train, teacher_model=teacher)
    with pytest.raises(TrainingStopped, match="2 optimizer steps in a row .*non-finite teacher targets"):
        trainer.train()
    assert trainer.state.global_step == 1  # the second skipped step stopped it
    assert all(torch.equal(before[name], tensor) for name, tensor in student.state_dict().items())


def test_a_model_with_non_finite_weights_is_never_saved(tmp_path: Path) -> None:
    trainer = SKDTrainer(model=lora_student(), args=skd_config(tmp_path / "out", max_steps=1))
    with torch.no_grad():
        next(p for n, p in trainer.model.named_parameters() if "lora_B" in n)[0, 0] = float("nan")
    with pytest.raises(TrainingStopped, match="non-finite weights"):
        trainer.save_model(str(tmp_path / "saved"))
    assert not (tmp_path / "saved").exists()


# ----------------------------------------------------------------------------------------------- arguments
@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("guards")
    return save_tiny_model("qwen2_vl", base / "tiny", seed=0), write_parallel_corpus(base / "corpus", train=8, dev=2)


def train_argv(inputs: tuple[Path, Path], output: Path, *extra: str) -> list[str]:
    model, corpus = inputs
    return [
        "train",
        "--config",
        str(ROOT / "recipes/tiny_cpu.yaml"),
        "--model_name_or_path",
        str(model),
        "--dataset_name",
        str(corpus),
        "--output_dir",
        str(output),
        "--disable_tqdm",
        "true",
        *extra,
    ]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in err, err[-2000:]
    return lines[-1]


@pytest.fixture
def no_model_loads(monkeypatch):
    """Every refusal must come before a model loads."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr("xvlm2vec.training.models.load_xvlm2vec_model", refuse)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--num_train_epochs", "0"], "trains nothing"),
        (["--max_steps", "0"], "trains nothing"),
        (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size must be >= 1"),
        (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be >= 1"),
        (["--max_bad_row_share", "1.5"], "--max_bad_row_share"),
    ],
)
def test_settings_that_cannot_train_are_one_line_errors(inputs, tmp_path, capsys, no_model_loads, extra, message):
    assert cli_main(train_argv(inputs, tmp_path / "out", *extra)) == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["model", "dataset", "inside_dataset", "foreign", "file", "cache_file"])
def test_output_that_is_an_input_or_foreign_is_refused(inputs, tmp_path, capsys, no_model_loads, case) -> None:
    model, corpus = inputs
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign/notes.txt").write_text("mine")
    (tmp_path / "a_file").write_text("mine")
    output, extra = {
        "model": (model, []),
        "dataset": (corpus, []),
        "inside_dataset": (corpus / "run", []),
        "foreign": (tmp_path / "foreign", []),
        "file": (tmp_path / "a_file", []),
        "cache_file": (tmp_path / "out", ["--teacher_cache", str(tmp_path / "a_file")]),
    }[case]
    before = digest(model), digest(corpus), digest(tmp_path / "foreign")
    assert cli_main(train_argv(inputs, output, *extra)) == 2
    assert "--output_dir" in one_line_error(capsys) or case == "cache_file"
    assert (digest(model), digest(corpus), digest(tmp_path / "foreign")) == before
    assert (tmp_path / "a_file").read_text() == "mine" and not (corpus / "run").exists()


def test_a_failed_rerun_leaves_the_previous_output_whole(inputs, tmp_path, monkeypatch, capsys) -> None:
    from peft import PeftModel

    output = tmp_path / "out"
    assert cli_main(train_argv(inputs, output, "--max_steps", "1")) == 0
    first = digest(output)
    assert "model.safetensors" in first and "adapter/adapter_model.safetensors" in first

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PeftModel, "from_pretrained", disk_full)  # the merge of the final save fails
    assert cli_main(train_argv(inputs, output, "--max_steps", "2")) != 0  # one line: the disk is full
    assert "No space left" in capsys.readouterr().err
    assert digest(output) == first  # on main: the new adapter beside the old merged model
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


class Payload:
    """A pickle that runs code when loaded without weights_only."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


@pytest.mark.parametrize("damage", ["cut_optimizer", "cut_weights", "unsafe_rng_state"])
def test_damaged_or_unsafe_checkpoints_are_refused_before_loading(inputs, tmp_path, capsys, damage) -> None:
    output = tmp_path / "out"
    steps = ["--max_steps", "2", "--save_strategy", "steps", "--save_steps", "1", "--per_device_train_batch_size", "4"]
    assert cli_main(train_argv(inputs, output, *steps)) == 0
    checkpoint = output / "checkpoint-2"
    marker = tmp_path / "payload.marker"
    if damage == "unsafe_rng_state":
        torch.save({"python": Payload(marker)}, checkpoint / "rng_state.pth", pickle_protocol=pickle.HIGHEST_PROTOCOL)
    else:
        path = checkpoint / ("optimizer.pt" if damage == "cut_optimizer" else "adapter_model.safetensors")
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    capsys.readouterr()
    assert cli_main(train_argv(inputs, output, *steps, "--max_steps", "3", "--resume_from_checkpoint", "last")) == 2
    line = one_line_error(capsys)
    assert "checkpoint-2" in line and ("rng_state.pth" in line if damage == "unsafe_rng_state" else "cut" in line)
    assert not marker.exists()
