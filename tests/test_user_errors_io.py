"""What a user meets besides bad rows (issue 21, item 7): a full disk, a read-only or file-blocked output or
cache, ``--device cuda`` without a GPU, a Hub id while offline, repeated ``--tasks``/``--languages``,
contradicting flags. Each is one line ``error: ...`` and exit 2, with nothing lost or half-written; and
the folders and files the verbs write get the user's umask.

Cases run in-process through the console script's ``main`` with model loading made to fail, so a case
that loads a model before refusing fails (as in ``test_cli_errors.py``).
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from test_eval_runner import ColourEmbedder, image, write_mmmeb_folder

from xvlm2vec.cli import main as cli_main
from xvlm2vec.evaluation.runner import RunConfig, Runner
from xvlm2vec.testing.fixtures import write_mmmeb
from xvlm2vec.testing.tiny_model import save_tiny_model
from xvlm2vec_common.safe_outputs import atomic_output_dir


class ModelLoaded(AssertionError):
    """Raised instead of loading model weights."""


@pytest.fixture(autouse=True)
def no_model_loads(monkeypatch):
    """User errors come before models: loading weights fails the case."""
    from transformers import PreTrainedModel

    def refuse(*args, **kwargs):
        raise ModelLoaded("a model was loaded before the user error was reported")

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(refuse))


@pytest.fixture(scope="module")
def paths(tmp_path_factory, built_mmmeb) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("io_errors")
    write_mmmeb(root / "release", rows_per_file=1, num_candidates=2)
    (root / "file.txt").write_text("a file, not a folder")
    return {
        "root": root,
        "model": save_tiny_model("qwen2_vl", root / "model"),
        "data": built_mmmeb,
        "release": root / "release",
        "file": root / "file.txt",
    }


def one_error_line(capsys) -> str:
    """The one line the failed command printed on stderr."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_disk_full_during_a_build_is_one_line_and_keeps_the_earlier_build(paths, monkeypatch, capsys):
    """The report write fails half-way with ENOSPC: exit 2, one line naming the file; the earlier build is
    byte-identical and no partial folder is left."""
    out = paths["root"] / "full"
    assert cli_main(["build", "mmmeb", "--source", str(paths["release"]), "--output-dir", str(out)]) == 0
    before = snapshot(out)
    capsys.readouterr()
    write_text = Path.write_text

    def disk_full(self, data, *args, **kwargs):
        if self.name == "build_report.json":
            write_text(self, data[: len(data) // 2], *args, **kwargs)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return write_text(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", disk_full)
    assert cli_main(["build", "mmmeb", "--source", str(paths["release"]), "--output-dir", str(out)]) == 2
    assert "No space left on device" in one_error_line(capsys)
    assert snapshot(out) == before
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".full")) == []


@pytest.mark.parametrize("error", ["OSError", "SafetensorError"])
def test_cache_that_cannot_be_written_loses_no_scores(error, tmp_path, monkeypatch, caplog, metric):
    """Disk full while saving the embedding cache (as an ``OSError``, or as safetensors reports it): a warning,
    the scores still come back, no partial file."""
    from safetensors import SafetensorError

    import xvlm2vec.evaluation.cache as cache_module

    def disk_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 10)
        if error == "SafetensorError":
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)

    data = write_mmmeb_folder(
        tmp_path / "data", {"toy_t2i": {"en": [{"id": "q", "query_text": "red", "candidate_images": [image("red")]}]}}
    )
    expected = Runner(RunConfig(styles=["plain"]), metric=metric).evaluate(ColourEmbedder(), str(data))
    monkeypatch.setattr(cache_module, "save_file", disk_full)
    runner = Runner(RunConfig(styles=["plain"], cache_dir=str(tmp_path / "cache")), metric=metric)
    assert runner.evaluate(ColourEmbedder(), str(data)) == expected
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []
    assert any("not written" in message for message in caplog.messages)


@pytest.mark.parametrize(
    ("case", "argv", "message"),
    [
        (
            "output folder under a file",
            lambda p: ["build", "mmmeb", "--source", str(p["release"]), "--output-dir", str(p["file"]) + "/out"],
            "is a file, so no folder can be made there",
        ),
        (
            "eval cache folder under a file",
            lambda p: [*_eval(p), "--cache-dir", str(p["file"]) + "/cache"],
            "--cache-dir",
        ),
        ("no cache and a cache folder", lambda p: [*_eval(p), "--no-cache", "--cache-dir", "c"], "--no-cache"),
        ("repeated tasks", lambda p: [*_eval(p), "--tasks", "t2i", "i2t", "t2i"], "--tasks: t2i given more than once"),
        ("repeated languages", lambda p: [*_eval(p), "--languages", "en", "en"], "--languages: en given more than"),
        ("repeated languages of translate", lambda p: _translate(p, "it,it"), "--languages: it given more than once"),
        ("offline Hub source", lambda p: _offline_build(), "no such folder, and the Hub dataset"),
        ("offline Hub data", lambda p: [*_eval(p)[:3], "--data", "nobody/no-data", "--output-dir", "o"], "Hub"),
    ],
)
def test_user_errors_are_one_line_before_any_model(case, argv, message, paths, capsys, monkeypatch):
    """Each case: exit status 2, one line naming the problem, no model loaded, nothing written."""
    import datasets
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(paths["root"])
    before = sorted(p.name for p in paths["root"].iterdir())
    assert cli_main(argv(paths)) == 2
    assert message in one_error_line(capsys)
    assert sorted(p.name for p in paths["root"].iterdir()) == before


def _eval(p) -> list[str]:
    return ["eval", "--model", str(p["model"]), "--data", str(p["data"]), "--output-dir", str(p["root"] / "scores")]


def _translate(p, languages: str) -> list[str]:
    return [
        "translate",
        "--model",
        str(p["model"]),
        "--source",
        str(p["data"]),
        "--output-dir",
        "t",
        "--languages",
    ] + [languages]


def _offline_build() -> list[str]:
    return ["build", "mmmeb", "--source", "nobody/no-data", "--revision", "main", "--output-dir", "b"]


def test_read_only_output_is_refused_before_work(paths, monkeypatch, capsys):
    """A folder the user cannot write to (simulated: ``os.access`` says no, as on a read-only mount; the
    tests may run as root, for whom permission bits do not count) is refused before the build starts."""
    locked = paths["root"] / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != locked and real_access(path, mode, **kw))
    argv = ["build", "mmmeb", "--source", str(paths["release"]), "--output-dir", str(locked / "out")]
    assert cli_main(argv) == 2
    assert "is not writable" in one_error_line(capsys)
    assert list(locked.iterdir()) == []


def test_device_without_gpu_is_one_line(paths, capsys):
    """``--device cuda`` on a machine without one: refused when parsed, not when the model moves."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit) as exit_info:
        cli_main([*_translate(paths, "it"), "--device", "cuda"])
    assert exit_info.value.code == 2
    assert "CUDA device" in one_error_line(capsys)


def test_outputs_get_the_users_umask(tmp_path):
    """Under umask 022 an output folder is 0755 and a language file 0644 (not mkdtemp's 0700, mkstemp's 0600)."""
    from modeling_xvlm2vec.languages import load_languages, write_language_file

    previous = os.umask(0o022)
    try:
        with atomic_output_dir(tmp_path / "out", "marker.json") as staging:
            (staging / "marker.json").write_text(json.dumps({}))
        path = write_language_file(tmp_path / "langs.json", [load_languages().get("it")])
    finally:
        os.umask(previous)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.fixture(scope="module")
def metric():
    import evaluate

    return evaluate.load(RunConfig().metric).compute


def test_a_full_disk_wrapped_by_a_library_is_one_line(capsys):
    """``datasets`` wraps a write's ENOSPC in its own ``DatasetGenerationError``: still one line, exit 2."""
    from datasets.exceptions import DatasetGenerationError

    from xvlm2vec_common.cli_errors import report_usage_errors

    def build() -> int:
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as error:
            raise DatasetGenerationError("An error occurred while generating the dataset") from error

    assert report_usage_errors(build) == 2
    assert one_error_line(capsys) == "error: No space left on device"

    def bug() -> int:
        raise DatasetGenerationError("a bug") from KeyError("x")

    with pytest.raises(DatasetGenerationError):
        report_usage_errors(bug)
