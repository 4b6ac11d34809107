"""Atomic, contained outputs (issue 12, defect 2): a build, eval or export replaces its output
folder as a whole or leaves it untouched, even when it crashes or is SIGKILLed mid-write."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from datasets import load_dataset

import xvlm2vec_common.safe_outputs as atomic
from dataset_builders.parallel import build_parallel
from xvlm2vec_common.safe_outputs import OutputDirError, atomic_output_dir, write_text_atomic


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the sha256 of its bytes."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def corpus(root: Path, langs: list[str], rows_per_lang: int = 3) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = [
        {
            "id": i,
            "lang": lang,
            "source_dataset": "MSCOCO",
            "text_en": f"a dog {i}.",
            "text_lang": f"{lang} dog {i}.",
            "img_en": None,
            "img_lang": None,
        }
        for lang in langs
        for i in range(rows_per_lang)
    ]
    (root / "parallel_shuffled.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return root


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_the_folder_is_replaced_as_a_whole_or_left_untouched(exchange: bool, tmp_path: Path, monkeypatch) -> None:
    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    with atomic_output_dir(out, "done") as staging:
        (staging / "done").write_text("1")
        (staging / "old_only").write_text("x")
        (staging / "cache").mkdir()
        (staging / "cache" / "entry").write_text("kept")
    with pytest.raises(RuntimeError, match="crash"), atomic_output_dir(out, "done") as staging:
        (staging / "done").write_text("2")
        raise RuntimeError("crash")
    assert snapshot(out) == {
        "done": hashlib.sha256(b"1").hexdigest(),
        "old_only": hashlib.sha256(b"x").hexdigest(),
        "cache/entry": hashlib.sha256(b"kept").hexdigest(),
    }
    with atomic_output_dir(out, "done", keep=("cache",)) as staging:
        (staging / "done").write_text("3")
    assert sorted(snapshot(out)) == ["cache/entry", "done"] and (out / "done").read_text() == "3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or old folder left beside it


def test_a_folder_it_did_not_write_or_that_holds_an_input_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "thesis").mkdir(parents=True)
    with (
        pytest.raises(OutputDirError, match="not written by this command"),
        atomic_output_dir(home, "build_report.json"),
    ):
        pass
    with atomic_output_dir(home, "results.json", keep=("*",)) as staging:  # nothing of it would be lost
        (staging / "results.json").write_text("{}")
    assert sorted(p.name for p in home.iterdir()) == ["results.json", "thesis"]
    with (
        pytest.raises(OutputDirError, match="holds the input"),
        atomic_output_dir(home, "results.json", inputs=[home / "thesis"]),
    ):
        pass
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputDirError, match="is a file"), atomic_output_dir(tmp_path / "file", "x"):
        pass
    assert (home / "thesis").is_dir() and (tmp_path / "file").read_text() == "x"


def test_a_smaller_rebuild_leaves_no_undeclared_config(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_parallel(corpus(tmp_path / "big", ["it", "es", "fr", "de"]), out)
    assert sorted(p.name for p in (out / "data").iterdir()) == ["all", "de", "es", "fr", "it"]
    build_parallel(corpus(tmp_path / "small", ["it"]), out)
    assert sorted(p.name for p in (out / "data").iterdir()) == ["all", "it"]
    assert load_dataset(str(out), "all", split="train").num_rows == 2


def test_a_build_that_fails_mid_write_leaves_the_previous_folder_unchanged(tmp_path: Path, monkeypatch) -> None:
    import dataset_builders.hub_layout as hub_layout

    out = tmp_path / "out"
    build_parallel(corpus(tmp_path / "one", ["it", "es"]), out)
    before = snapshot(out)
    moved = []

    def move_then_crash(*args, **kwargs):
        moved.append(real(*args, **kwargs))
        if len(moved) == 2:
            raise OSError("disk full")
        return moved[-1]

    real = hub_layout._move_shards
    monkeypatch.setattr(hub_layout, "_move_shards", move_then_crash)
    with pytest.raises(OSError, match="disk full"):
        build_parallel(corpus(tmp_path / "two", ["fr", "de"], rows_per_lang=5), out)
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "out", "two"]


KILLED_BUILD = """
import sys, time
import dataset_builders.hub_layout as hub_layout
from dataset_builders.parallel import build_parallel

real = hub_layout._move_shards
def move_then_wait(prep_dir, builder, target_dir):
    patterns = real(prep_dir, builder, target_dir)
    open(sys.argv[3], "w").close()  # some shards of the new build are written: kill me now
    time.sleep(60)
    return patterns
hub_layout._move_shards = move_then_wait
build_parallel(sys.argv[1], sys.argv[2])
"""


def test_a_build_killed_mid_write_leaves_the_previous_folder_loadable_and_unchanged(tmp_path: Path, caplog) -> None:
    out = tmp_path / "out"
    build_parallel(corpus(tmp_path / "one", ["it", "es"]), out)
    before = snapshot(out)
    rows_before = load_dataset(str(out), "all", split="train").num_rows
    flag = tmp_path / "writing"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_BUILD, str(corpus(tmp_path / "two", ["fr"], 7)), str(out), str(flag)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not flag.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert flag.exists(), (
        process.stderr.read().decode()[-2000:] if process.poll() is not None else "no write within 120 s"
    )
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert snapshot(out) == before
    assert load_dataset(str(out), "all", split="train").num_rows == rows_before
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.partial-")]
    assert len(leftovers) == 1 and (tmp_path / leftovers[0] / "data" / "all").is_dir()  # the new shards were there
    with (
        caplog.at_level(logging.WARNING, logger="xvlm2vec_common.safe_outputs"),
        pytest.raises(RuntimeError, match="stop"),
        atomic_output_dir(out, "build_report.json"),
    ):
        raise RuntimeError("stop")
    assert leftovers[0] in caplog.text and (tmp_path / leftovers[0]).is_dir()  # the next run names it, deletes nothing


def test_eval_outputs_are_replaced_together_and_keep_the_cache(tmp_path: Path, monkeypatch) -> None:
    import xvlm2vec.evaluation.pipeline as pipeline

    record = {
        "dataset": "xtd",
        "task": "i2t",
        "config": "xtd_i2t",
        "language": "en",
        "style": "plain",
        "num_queries": 4,
        "skipped_queries": 0,
        "ties_at_top": 0,
        "precision@1": 0.5,
        "recall@5": 1.0,
        "recall@10": 1.0,
        "mrr": 0.5,
        "ndcg@10": 0.5,
    }
    runner = SimpleNamespace(
        evaluate=lambda embedder, data: [record],
        data_fingerprints={"xtd_i2t/en": "abc"},
        config=SimpleNamespace(styles=["plain"], ties="pessimistic", save_prompts=False),
        state=SimpleNamespace(is_main_process=True),
    )
    model = SimpleNamespace(name="m", kind="xvlm2vec", fingerprint="f" * 64)
    out = tmp_path / "out"
    pipeline.evaluate_models([model], "data", out, runner)
    (out / "embedding_cache").mkdir()
    (out / "embedding_cache" / "entry.safetensors").write_bytes(b"cached")
    before = snapshot(out)

    def broken_plot(document, path):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(pipeline, "plot_results", broken_plot)
    record["precision@1"] = 1.0
    with pytest.raises(RuntimeError, match="plot failed"):
        pipeline.evaluate_models([model], "data", out, runner)
    assert snapshot(out) == before  # no new results.json next to an old results.png
    monkeypatch.undo()
    pipeline.evaluate_models([model], "data", out, runner)
    assert json.loads((out / "results.json").read_text())["models"][0]["scores"][0]["precision@1"] == 1.0
    assert (out / "embedding_cache" / "entry.safetensors").read_bytes() == b"cached"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_build_verb_refuses_an_output_folder_holding_an_input_before_any_work(tmp_path: Path) -> None:
    from dataset_builders.build import run
    from xvlm2vec.cli import build_parser

    out = tmp_path / "out"
    build_parallel(corpus(tmp_path / "one", ["it"]), out)
    journal = out / "translations" / "MSCOCO" / "it" / "part-0.jsonl"  # hours of translation, kept in the old output
    journal.parent.mkdir(parents=True)
    journal.write_text('{"id": "0"}\n')
    (tmp_path / "mmeb").mkdir()
    args = build_parser("build").parse_args(
        [
            "build",
            "parallel",
            "--mmeb-train",
            str(tmp_path / "mmeb"),
            "--translations",
            str(out / "translations"),
            "--images",
            str(tmp_path),
            "--output-dir",
            str(out),
        ]
    )
    with pytest.raises(OutputDirError, match="holds the input"):
        run(args)
    assert journal.read_text() == '{"id": "0"}\n'


@pytest.mark.parametrize("name", ["..", "a/b", "/etc", "", ".hidden", "x" * 65, "it\u0000"])
def test_config_and_split_names_from_the_data_never_become_paths(name: str, tmp_path: Path) -> None:
    from dataset_builders.names import check_name
    from xvlm2vec.evaluation.cache import EmbeddingCache

    with pytest.raises(ValueError, match="unsafe config name"):
        check_name(name, "config")
    cache = EmbeddingCache(tmp_path / "cache")
    with pytest.raises(ValueError, match="unsafe"):
        cache.path("f" * 64, "d" * 64, name, "en")
    with pytest.raises(ValueError, match="unsafe"):
        cache.path("f" * 64, "d" * 64, "xtd_i2t", name)
    assert cache.path("f" * 64, "d" * 64, "imagenet-1k-val_c", "pt_BR").is_relative_to(tmp_path / "cache")


def test_an_output_folder_holding_the_source_is_a_one_line_user_error(tmp_path: Path, capsys) -> None:
    from xvlm2vec.cli import main

    src = corpus(tmp_path / "src", ["it"])
    before = snapshot(src)
    assert main(["build", "parallel", "--source", str(src), "--output-dir", str(src)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --output-dir ") and "holds the input" in err and err.count("\n") == 1
    assert snapshot(src) == before


def test_write_text_atomic_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "new" / "figures.json"
    assert write_text_atomic(path, "one\n") == path
    assert path.read_text(encoding="utf-8") == "one\n"
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()  # as a plain write: not the 0600 of mkstemp
    write_text_atomic(path, "two\n")
    assert path.read_text(encoding="utf-8") == "two\n"
    with pytest.raises(UnicodeEncodeError):
        write_text_atomic(path, "three \ud800")  # fails while writing: the old file stays, no sibling is left
    assert path.read_text(encoding="utf-8") == "two\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["figures.json"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
