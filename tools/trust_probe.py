"""Trust probe: hostile or unlucky inputs across the project, tabulated by what happened.

Not a test (nothing here gates CI): a reviewer's instrument for issue 21's closing note. Every case
runs a verb the way a user would (``python -m xvlm2vec ...`` in a subprocess with a time limit) or
calls the library directly, then judges the outcome:

- ``clean``: the documented behaviour (a one-line ``error: ...`` with exit 2, or a counted rejection
  naming file and line, or a correct result);
- ``traceback``: a Python traceback reached the user;
- ``silently wrong``: exit 0 (or a result) that is wrong or accepts what it should refuse;
- ``data lost``: an input or an earlier output was changed or deleted;
- ``runaway``: the time limit was hit.

Usage: ``python tools/trust_probe.py [--work DIR] [--json FILE] [--areas AREA ...]``. Needs no network
and no GPU; a real tmpfs is mounted for the disk-full cases when the process may mount one (root with
``CAP_SYS_ADMIN``), otherwise those cases are simulated by a failing write.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUTCOMES = ("clean", "traceback", "silently wrong", "data lost", "runaway")
AREAS = ("training", "evaluation", "publish", "corpus and translation", "MMMEB builder", "CLI")
TAG = "<|image_1|>"
I2T = "xtd_{lang}_1000_formatted_i2t.jsonl"


@dataclass
class Result:
    """One probed input: its area, a short name, the outcome and what was seen."""

    area: str
    case: str
    outcome: str
    detail: str
    seconds: float


@dataclass
class Run:
    """A finished subprocess: exit status (None on timeout), stdout, stderr."""

    rc: int | None
    out: str
    err: str

    @property
    def traceback(self) -> bool:
        """Whether a Python traceback was printed."""
        return "Traceback (most recent call last)" in self.err

    @property
    def one_error_line(self) -> bool:
        """Exit 2 with one ``error:`` line on stderr (warnings from libraries aside)."""
        errors = [line for line in self.err.splitlines() if line.startswith("error:")]
        return self.rc == 2 and len(errors) == 1 and not self.traceback

    def last_error(self) -> str:
        """The ``error:`` line, else the last stderr line."""
        lines = [line for line in self.err.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error:")]
        return (errors or lines or [f"rc={self.rc}"])[-1][:160]


def xvlm2vec(*argv: str, timeout: int = 300, env: dict | None = None, cwd: Path | None = None) -> Run:
    """Run ``python -m xvlm2vec ARGV`` with this checkout first on the path."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "xvlm2vec", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=environment,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired as expired:
        return Run(None, str(expired.stdout or ""), str(expired.stderr or ""))
    return Run(proc.returncode, proc.stdout, proc.stderr)


def refused(run: Run, contains: str = "") -> tuple[str, str]:
    """Judge a case that must be refused with one line and exit 2."""
    if run.rc is None:
        return "runaway", "time limit hit"
    if run.traceback:
        return "traceback", run.last_error()
    if run.one_error_line and contains in run.last_error():
        return "clean", run.last_error()
    return "silently wrong", f"rc={run.rc}: {run.last_error()}"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (empty when it does not exist)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def save_image(path: Path, size: tuple[int, int], colour: str = "red") -> None:
    """A solid PNG of ``size``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def jsonl(path: Path, rows: list) -> Path:
    """Write ``rows`` (dicts or raw strings) as JSON lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


GOOD_I2T = {"img": "0.png", "captions": ["a red square", "a blue square"]}


def mmmeb_source(folder: Path, files: dict[str, list]) -> Path:
    """An i2t release: ``{lang: rows}``; images ``0.png`` and ``1.png`` (8x8), ``thin.png`` (1x300)."""
    for name, size in (("0", (8, 8)), ("1", (8, 8)), ("thin", (1, 300))):
        save_image(folder / "xtd_images" / f"{name}.png", size)
    for lang, rows in files.items():
        jsonl(folder / I2T.format(lang=lang), rows)
    return folder


def build_report(folder: Path) -> dict:
    """The build report of a built folder ({} when none)."""
    path = folder / "build_report.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def rejected_with_where(run: Run, out: Path, reason: str, line: int) -> tuple[str, str]:
    """Judge a build that must count one ``reason`` rejection at ``line`` (exit 1 under --max-rejects 0)."""
    if run.rc is None:
        return "runaway", "time limit hit"
    if run.traceback:
        return "traceback", run.last_error()
    report = build_report(out)
    examples = [e for e in report.get("examples", []) if e["reason"] == reason]
    if report.get("rejected", {}).get(reason) == 1 and examples and examples[0]["where"].endswith(f":{line}"):
        return "clean", f"{reason} at line {line}, rc={run.rc}"
    return "silently wrong", f"rc={run.rc}, rejected={report.get('rejected')}"


class Probe:
    """Holds the work folder, the shared inputs (a tiny model, built MMMEB) and the results."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.results: list[Result] = []
        self.model = work / "model"
        self.release = work / "release"
        self.mmmeb = work / "mmmeb"
        self.file = work / "a_file.txt"

    def setup(self) -> None:
        """Build the shared inputs once."""
        self.work.mkdir(parents=True, exist_ok=True)
        self.file.write_text("a file, not a folder")
        for argv in (
            ["tiny-model", "--backbone", "qwen2_vl", "--output-dir", str(self.model)],
            ["fixtures", "mmmeb", "--output-dir", str(self.release), "--rows", "2"],
            ["build", "mmmeb", "--source", str(self.release), "--output-dir", str(self.mmmeb)],
        ):
            run = xvlm2vec(*argv)
            if run.rc != 0:
                raise SystemExit(f"setup failed: {' '.join(argv)}: {run.err[-2000:]}")

    def case(self, area: str, name: str) -> Callable:
        """Decorator: run the function now, time it, and record its outcome (an exception is a traceback)."""

        def register(function: Callable[[Path], tuple[str, str]]) -> Callable:
            folder = self.work / f"case{len(self.results):02d}"
            folder.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            try:
                outcome, detail = function(folder)
            except Exception as error:  # noqa: BLE001 - a probe records, it does not stop
                outcome, detail = "traceback", f"{type(error).__name__}: {str(error)[:140]}"
            seconds = time.perf_counter() - start
            self.results.append(Result(area, name, outcome, detail, round(seconds, 1)))
            print(f"[{outcome:>14}] {area} / {name}: {detail}", flush=True)
            return function

        return register

    def eval_args(self, out: Path, *extra: str, data: Path | None = None) -> list[str]:
        """An ``eval`` command line on the shared model and data."""
        return [
            "eval",
            "--model",
            str(self.model),
            "--data",
            str(data or self.mmmeb),
            "--output-dir",
            str(out),
            *extra,
        ]


def mount_tmpfs(folder: Path, size: str = "300k") -> bool:
    """Mount a small tmpfs at ``folder``; False when not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    return proc.returncode == 0


def free_bytes(folder: Path) -> int:
    """Bytes a user may still write under ``folder``."""
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize


def umount(folder: Path) -> None:
    """Unmount a tmpfs mounted by :func:`mount_tmpfs`."""
    subprocess.run(["umount", str(folder)], capture_output=True)


def cli_cases(p: Probe) -> None:
    """Flags and paths a user mistypes."""

    @p.case("CLI", "eval --batch-size 0")
    def _(d):
        return refused(xvlm2vec(*p.eval_args(d / "o", "--batch-size", "0")), "--batch-size")

    @p.case("CLI", "eval --tasks t2i t2i")
    def _(d):
        return refused(xvlm2vec(*p.eval_args(d / "o", "--tasks", "t2i", "t2i")), "more than once")

    @p.case("CLI", "eval --languages en en")
    def _(d):
        return refused(xvlm2vec(*p.eval_args(d / "o", "--languages", "en", "en")), "more than once")

    @p.case("CLI", "eval --no-cache with --cache-dir")
    def _(d):
        return refused(xvlm2vec(*p.eval_args(d / "o", "--no-cache", "--cache-dir", str(d / "c"))), "--no-cache")

    @p.case("CLI", "translate --device cuda without a GPU")
    def _(d):
        run = xvlm2vec(
            "translate", "--model", str(p.model), "--source", str(d), "--output-dir", str(d / "t"), "--device", "cuda"
        )
        return refused(run, "CUDA")

    @p.case("CLI", "build mmmeb from a Hub id, HF_HUB_OFFLINE=1")
    def _(d):
        run = xvlm2vec(
            "build",
            "mmmeb",
            "--source",
            "nobody/nothing",
            "--revision",
            "main",
            "--output-dir",
            str(d / "o"),
            env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(d / "hf")},
        )
        return refused(run, "offline")

    @p.case("CLI", "eval --data Hub id, HF_HUB_OFFLINE=1")
    def _(d):
        argv = ["eval", "--model", str(p.model), "--data", "nobody/nothing", "--output-dir", str(d / "o")]
        return refused(xvlm2vec(*argv, env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(d / "hf")}), "Hub")

    @p.case("CLI", "build --output-dir under a file")
    def _(d):
        run = xvlm2vec("build", "mmmeb", "--source", str(p.release), "--output-dir", str(p.file) + "/out")
        return refused(run, "is a file")

    @p.case("CLI", "eval --cache-dir under a file")
    def _(d):
        return refused(xvlm2vec(*p.eval_args(d / "o", "--cache-dir", str(p.file) + "/c")), "--cache-dir")

    @p.case("CLI", "build --output-dir equal to --source")
    def _(d):
        before = snapshot(p.release)
        run = xvlm2vec("build", "mmmeb", "--source", str(p.release), "--output-dir", str(p.release))
        if snapshot(p.release) != before:
            return "data lost", "the source changed"
        return refused(run, "input")

    @p.case("CLI", "eval into a foreign non-empty folder")
    def _(d):
        (d / "mine").mkdir()
        (d / "mine" / "notes.txt").write_text("keep me")
        run = xvlm2vec(*p.eval_args(d / "mine", "--tasks", "t2i", "--languages", "en", "--styles", "plain"))
        if (d / "mine" / "notes.txt").read_text() != "keep me":
            return "data lost", "notes.txt gone"
        return refused(run, "was not written by this command")

    @p.case("CLI", "unknown verb")
    def _(d):
        return refused(xvlm2vec("frobnicate"), "invalid choice")

    @p.case("CLI", "fixtures under umask 022: folder mode")
    def _(d):
        code = (
            "import os, sys; os.umask(0o022); from xvlm2vec.cli import main; "
            f"sys.exit(main(['fixtures', 'mmmeb', '--output-dir', {str(d / 'fx')!r}]))"
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
        mode = (d / "fx").stat().st_mode & 0o777
        return ("clean" if mode == 0o755 else "silently wrong"), f"mode {oct(mode)}"


def mmmeb_cases(p: Probe) -> None:
    """Release folders a user may hand to ``build mmmeb``."""

    def build(d: Path, src: Path, *extra: str) -> Run:
        return xvlm2vec("build", "mmmeb", "--source", str(src), "--output-dir", str(d / "out"), *extra)

    @p.case("MMMEB builder", "release file with a region code (pt-BR)")
    def _(d):
        run = build(d, mmmeb_source(d / "src", {"en": [GOOD_I2T], "pt-BR": [GOOD_I2T]}))
        rows = build_report(d / "out").get("split_rows", {})
        if run.traceback:
            return "traceback", run.last_error()
        return ("clean" if rows.get("xtd_i2t/pt_BR") == 1 else "silently wrong"), f"rc={run.rc}, splits {rows}"

    @p.case("MMMEB builder", "image of aspect ratio 300 (1x300)")
    def _(d):
        run = build(d, mmmeb_source(d / "src", {"en": [GOOD_I2T, {**GOOD_I2T, "img": "thin.png"}]}))
        return rejected_with_where(run, d / "out", "extreme_aspect_ratio", 2)

    @p.case("MMMEB builder", "100,000-character caption")
    def _(d):
        row = {**GOOD_I2T, "captions": ["x" * 100_000, "y"]}
        return rejected_with_where(
            build(d, mmmeb_source(d / "src", {"en": [GOOD_I2T, row]})), d / "out", "text_too_long", 2
        )

    @p.case("MMMEB builder", "release file symlinked outside the source")
    def _(d):
        src = mmmeb_source(d / "src", {"en": [GOOD_I2T]})
        jsonl(d / "outside" / "x.jsonl", [GOOD_I2T])
        (src / I2T.format(lang="it")).symlink_to(d / "outside" / "x.jsonl")
        run = build(d, src)
        rows = build_report(d / "out").get("split_rows", {})
        ok = run.rc == 0 and rows == {"xtd_i2t/en": 1} and "outside" in run.out
        return ("clean" if ok else "silently wrong"), f"rc={run.rc}, splits {rows}"

    @p.case("MMMEB builder", "image symlinked outside the root")
    def _(d):
        src = mmmeb_source(d / "src", {"en": [GOOD_I2T, {**GOOD_I2T, "img": "leak.png"}]})
        save_image(d / "secret.png", (8, 8))
        (src / "xtd_images" / "leak.png").symlink_to(d / "secret.png")
        return rejected_with_where(build(d, src), d / "out", "unsafe_path", 2)

    @p.case("MMMEB builder", "image id with ../")
    def _(d):
        src = mmmeb_source(d / "src", {"en": [GOOD_I2T, {**GOOD_I2T, "img": "../../etc/passwd"}]})
        return rejected_with_where(build(d, src), d / "out", "unsafe_path", 2)

    @p.case("MMMEB builder", "a JSON array line")
    def _(d):
        return rejected_with_where(
            build(d, mmmeb_source(d / "src", {"en": [GOOD_I2T, "[1, 2]"]})), d / "out", "not_an_object", 2
        )

    @p.case("MMMEB builder", "the same id twice")
    def _(d):
        rows = [{**GOOD_I2T, "id": "a"}, {**GOOD_I2T, "id": "a"}]
        return rejected_with_where(build(d, mmmeb_source(d / "src", {"en": rows})), d / "out", "duplicate_id", 2)

    @p.case("MMMEB builder", "CRLF line endings")
    def _(d):
        src = mmmeb_source(d / "src", {"en": []})
        (src / I2T.format(lang="en")).write_bytes(b"".join(json.dumps(GOOD_I2T).encode() + b"\r\n" for _ in range(2)))
        run = build(d, src)
        rows = build_report(d / "out").get("rows_out")
        return ("clean" if run.rc == 0 and rows == 2 else "silently wrong"), f"rc={run.rc}, rows_out={rows}"

    @p.case("MMMEB builder", "a caption that is only the image tag")
    def _(d):
        row = {**GOOD_I2T, "captions": [TAG, "y"]}
        return rejected_with_where(
            build(d, mmmeb_source(d / "src", {"en": [GOOD_I2T, row]})), d / "out", "empty_text", 2
        )

    @p.case("MMMEB builder", "disk full during a rebuild (tmpfs or simulated)")
    def _(d):
        src = mmmeb_source(d / "src", {"en": [GOOD_I2T]})
        mounted = mount_tmpfs(d / "disk", "2m")
        try:
            out = d / "disk" / "out"
            first = build(d, src, "--output-dir", str(out))
            if first.rc != 0:
                return "traceback" if first.traceback else "silently wrong", first.last_error()
            before = snapshot(out)
            if mounted:
                (d / "disk" / "filler").write_bytes(b"\0" * (free_bytes(d / "disk") - 16384))
                big = {**GOOD_I2T, "captions": [f"caption {i}" for i in range(40)]}
                jsonl(src / I2T.format(lang="it"), [{**big, "id": str(i)} for i in range(300)])
                run = build(d, src, "--output-dir", str(out))
            else:
                run = _simulated_disk_full(src, out)
            leftovers = [x.name for x in (d / "disk").iterdir() if ".partial-" in x.name]
            if snapshot(out) != before or leftovers:
                return "data lost", f"earlier build changed, leftovers {leftovers}"
            outcome, detail = refused(run, "No space left")
            return outcome, f"{'tmpfs' if mounted else 'simulated'}: {detail}"
        finally:
            if mounted:
                umount(d / "disk")


def _simulated_disk_full(src: Path, out: Path) -> Run:
    """``build mmmeb`` in a subprocess whose report write fails with ENOSPC."""
    code = f"""
import errno, os, sys
from pathlib import Path
real = Path.write_text
def full(self, *a, **k):
    if self.name == "build_report.json":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
    return real(self, *a, **k)
Path.write_text = full
from xvlm2vec.cli import main
sys.exit(main(["build", "mmmeb", "--source", {str(src)!r}, "--output-dir", {str(out)!r}]))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def corpus_cases(p: Probe) -> None:
    """Parallel corpora and translation requests."""

    def corpus(d: Path, rows: list[dict]) -> Path:
        save_image(d / "src" / "images" / "a.png", (8, 8))
        good = {"id": "g", "text_en": f"{TAG}\na red square", "text_lang": f"{TAG}\nun quadrato rosso"}
        lines = [{**good, "img_en": "images/a.png", "img_lang": "images/a.png", "lang": "it"}]
        lines += [{"img_en": None, "img_lang": None, "lang": "it", **row} for row in rows]
        jsonl(d / "src" / "parallel_shuffled.jsonl", lines)
        return d / "src"

    def build(d: Path, src: Path) -> Run:
        return xvlm2vec(
            "build", "parallel", "--source", str(src), "--output-dir", str(d / "out"), "--max-dev-rows", "0"
        )

    def one_rejection(d: Path, row: dict, reason: str) -> tuple[str, str]:
        return rejected_with_where(build(d, corpus(d, [row])), d / "out", reason, 2)

    @p.case("corpus and translation", "image tag without an image")
    def _(d):
        return one_rejection(
            d, {"id": "b", "text_en": f"{TAG} a cat", "text_lang": f"{TAG} un gatto"}, "image_tag_mismatch"
        )

    @p.case("corpus and translation", "image tag on the translated side only")
    def _(d):
        return one_rejection(d, {"id": "b", "text_en": "a dog", "text_lang": f"{TAG}\nun cane"}, "lost_image_tag")

    @p.case("corpus and translation", "two image tags for one image")
    def _(d):
        row = {"id": "b", "text_en": f"{TAG}{TAG}\ntwo", "text_lang": f"{TAG}{TAG}\ndue", "img_en": "images/a.png"}
        return one_rejection(d, row, "image_tag_mismatch")

    @p.case("corpus and translation", "100,000-character translation")
    def _(d):
        return one_rejection(d, {"id": "b", "text_en": "a dog", "text_lang": "cane " * 20_000}, "text_too_long")

    @p.case("corpus and translation", "row language pt-BR")
    def _(d):
        run = build(d, corpus(d, [{"id": "b", "text_en": "a dog", "text_lang": "um cão", "lang": "pt-BR"}]))
        rows = build_report(d / "out").get("split_rows", {})
        if run.traceback:
            return "traceback", run.last_error()
        return ("clean" if rows.get("pt-BR/train") == 1 else "silently wrong"), f"rc={run.rc}, {rows}"

    @p.case("corpus and translation", "parallel_shuffled.jsonl symlinked outside")
    def _(d):
        (d / "src").mkdir()
        jsonl(d / "elsewhere.jsonl", [{"id": 1, "text_en": "a", "text_lang": "b", "img_en": None, "img_lang": None}])
        (d / "src" / "parallel_shuffled.jsonl").symlink_to(d / "elsewhere.jsonl")
        return refused(build(d, d / "src"), "outside")

    @p.case("corpus and translation", "build parallel --languages it,it")
    def _(d):
        for name in ("mmeb", "journals", "images"):
            (d / name).mkdir()
        run = xvlm2vec(
            "build",
            "parallel",
            "--mmeb-train",
            str(d / "mmeb"),
            "--translations",
            str(d / "journals"),
            "--images",
            str(d / "images"),
            "--output-dir",
            str(d / "out"),
            "--languages",
            "it,it",
        )
        return refused(run, "more than once")

    def translate_languages(d: Path, languages: str) -> Run:
        """`xvlm2vec translate` of folder ``d`` with the probe's tiny model into ``--languages languages``."""
        return xvlm2vec(
            "translate",
            "--model",
            str(p.model),
            "--source",
            str(d),
            "--output-dir",
            str(d / "t"),
            "--languages",
            languages,
        )

    @p.case("corpus and translation", "translate --languages it,it")
    def _(d):
        return refused(translate_languages(d, "it,it"), "more than once")

    @p.case("corpus and translation", "translate --languages en")
    def _(d):
        return refused(translate_languages(d, "en"), "other than en")

    @p.case("corpus and translation", "translate --languages 'it;es' (a bad code)")
    def _(d):
        return refused(translate_languages(d, "it;es"), "--languages")

    @p.case("corpus and translation", "translate --source a folder that is not MMEB-train")
    def _(d):
        sys.path.insert(0, str(ROOT / "tests"))
        from test_datasets_translate import _tiny_t5

        _tiny_t5(d / "t5")
        run = xvlm2vec(
            "translate",
            "--model",
            str(d / "t5"),
            "--source",
            str(p.release),
            "--output-dir",
            str(d / "t"),
            "--languages",
            "it",
        )
        return refused(run, "not an MMEB-train folder")

    @p.case("corpus and translation", "translate into the journal folder of a file")
    def _(d):
        sys.path.insert(0, str(ROOT / "tests"))
        from test_datasets_translate import _tiny_t5

        from xvlm2vec.testing.fixtures import write_mmeb_train

        _tiny_t5(d / "t5")
        write_mmeb_train(d / "mmeb", rows_per_subset=2)
        run = xvlm2vec(
            "translate",
            "--model",
            str(d / "t5"),
            "--source",
            str(d / "mmeb"),
            "--output-dir",
            str(p.file),
            "--languages",
            "it",
        )
        if p.file.read_text() != "a file, not a folder":
            return "data lost", "the file was changed"
        return refused(run, str(p.file))


def evaluation_cases(p: Probe) -> None:
    """Evaluation data, caches and outputs."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests"))
    import evaluate
    from test_eval_runner import ColourEmbedder, image, write_mmmeb_folder

    from xvlm2vec.evaluation.embedders import Embedder
    from xvlm2vec.evaluation.runner import RunConfig, Runner

    metric = evaluate.load(RunConfig().metric).compute
    plain = ["--tasks", "t2i", "--languages", "en", "--styles", "plain"]

    class Table(Embedder):
        kind, image_tag, uses_instructions, name, fingerprint = "custom", TAG, False, "table", "t1"

        def __init__(self, table):
            self.table = table

        def embed(self, texts, images, batch_size):
            return np.stack([self.table[t] for t in texts]).astype(np.float32)

    @p.case("evaluation", "byte-identical candidates with float noise")
    def _(d):
        for seed in range(1000):
            rng = np.random.default_rng(seed)
            a, b, q = (v / np.linalg.norm(v) for v in rng.standard_normal((3, 8)).astype(np.float32))
            s = np.stack([a, b, a]) @ q
            if s[0] != s[2] and s[0] > s[1]:
                break
        data = write_mmmeb_folder(
            d, {"toy_t2i": {"en": [{"id": "q", "query_text": "q", "candidate_texts": ["a", "b", "a"]}]}}
        )
        (record,) = Runner(RunConfig(ties="optimistic"), metric=metric).evaluate(
            Table({"q": q, "a": a, "b": b}), str(data)
        )
        ok = record["ties_at_top"] == 1 and record["precision@1"] == 1.0
        return ("clean" if ok else "silently wrong"), f"ties_at_top={record['ties_at_top']}"

    def cached(d: Path) -> tuple[Path, RunConfig, list[dict], Path]:
        rows = [{"id": "q", "query_text": "a red car", "candidate_images": [image("red"), image("blue")]}]
        data = write_mmmeb_folder(d / "data", {"toy_t2i": {"en": rows}})
        config = RunConfig(styles=["plain"], cache_dir=str(d / "cache"))
        first = Runner(config, metric=metric).evaluate(ColourEmbedder(), str(data))
        return data, config, first, next((d / "cache").rglob("*.safetensors"))

    @p.case("evaluation", "zeroed embeddings in the cache file")
    def _(d):
        data, config, first, path = cached(d)
        raw = bytearray(path.read_bytes())
        size = int.from_bytes(raw[:8], "little")
        start, end = (8 + size + o for o in json.loads(raw[8 : 8 + size])["embeddings"]["data_offsets"])
        raw[start:end] = bytes(end - start)
        path.write_bytes(bytes(raw))
        second = Runner(config, metric=metric).evaluate(ColourEmbedder(), str(data))
        return (
            "clean" if second == first else "silently wrong"
        ), f"p@1 {first[0]['precision@1']} -> {second[0]['precision@1']}"

    @p.case("evaluation", "truncated cache file")
    def _(d):
        data, config, first, path = cached(d)
        path.write_bytes(path.read_bytes()[:50])
        second = Runner(config, metric=metric).evaluate(ColourEmbedder(), str(data))
        return ("clean" if second == first else "silently wrong"), "recomputed" if second == first else "changed"

    @p.case("evaluation", "cache folder on a full disk")
    def _(d):
        mounted = mount_tmpfs(d / "disk", "64k")
        try:
            if mounted:
                (d / "disk" / "filler").write_bytes(b"\0" * free_bytes(d / "disk"))
            else:
                return "clean", "skipped: no tmpfs (covered by tests/test_user_errors_io.py)"
            rows = [{"id": "q", "query_text": "a red car", "candidate_images": [image("red"), image("blue")]}]
            data = write_mmmeb_folder(d / "data", {"toy_t2i": {"en": rows}})
            records = Runner(RunConfig(styles=["plain"], cache_dir=str(d / "disk" / "c")), metric=metric).evaluate(
                ColourEmbedder(), str(data)
            )
            partial = [x for x in (d / "disk").rglob("*tmp*")]
            ok = records[0]["precision@1"] == 1.0 and not partial
            return ("clean" if ok else "silently wrong"), f"scores kept, partial files {partial}"
        finally:
            if mounted:
                umount(d / "disk")

    def data_with(d: Path, row: dict) -> Path:
        return write_mmmeb_folder(d / "data", {"toy_t2i": {"en": [row]}})

    @p.case("evaluation", "a 100,000-character query in --data")
    def _(d):
        data = data_with(d, {"id": "long", "query_text": "red " * 25_000, "candidate_texts": ["red"]})
        return refused(
            xvlm2vec(*p.eval_args(d / "o", "--styles", "plain", data=data), timeout=120), "100000 characters"
        )

    @p.case("evaluation", "a 1x300 candidate image in --data")
    def _(d):
        thin = Image.new("RGB", (1, 300), "red")
        data = data_with(d, {"id": "q", "query_text": "red", "candidate_images": [thin, image("blue")]})
        return refused(xvlm2vec(*p.eval_args(d / "o", "--styles", "plain", data=data)), "aspect ratio")

    @p.case("evaluation", "a card with data_files ../ outside the folder")
    def _(d):
        elsewhere = data_with(d / "x", {"id": "q", "query_text": "red", "candidate_texts": ["red"]})
        (d / "data").mkdir()
        card = (elsewhere / "README.md").read_text().replace("path: toy_t2i/", "path: ../x/data/toy_t2i/")
        (d / "data" / "README.md").write_text(card)
        return refused(xvlm2vec(*p.eval_args(d / "o", data=d / "data")), "outside the dataset folder")

    @p.case("evaluation", "a row without candidates in --data")
    def _(d):
        data = data_with(d, {"id": "q", "query_text": "red"})
        return refused(xvlm2vec(*p.eval_args(d / "o", "--styles", "plain", data=data)), "candidate")

    @p.case("evaluation", "positive index out of range in --data")
    def _(d):
        data = data_with(d, {"id": "q", "query_text": "red", "candidate_texts": ["red"], "positive_index": 3})
        return refused(xvlm2vec(*p.eval_args(d / "o", "--styles", "plain", data=data)), "out of range")

    @p.case("evaluation", "--languages pt-BR on a pt-BR build")
    def _(d):
        src = mmmeb_source(d / "src", {"en": [GOOD_I2T], "pt-BR": [GOOD_I2T]})
        xvlm2vec("build", "mmmeb", "--source", str(src), "--output-dir", str(d / "built"))
        lang = d / "langs.json"
        from modeling_xvlm2vec.languages import load_languages, write_language_file

        entry = load_languages().get("en")
        write_language_file(lang, [dataclasses.replace(entry, code="pt-BR", name="Portuguese (Brazil)")])
        run = xvlm2vec(
            *p.eval_args(
                d / "o", "--languages", "pt-BR", "--styles", "plain", "--languages-file", str(lang), data=d / "built"
            )
        )
        if run.rc != 0:
            return ("traceback" if run.traceback else "silently wrong"), run.last_error()
        records = json.loads((d / "o" / "results.json").read_text())["models"][0]["scores"]
        langs = sorted({r["language"] for r in records})
        return ("clean" if langs == ["pt-BR"] else "silently wrong"), f"languages {langs}"

    @p.case("evaluation", "rerun over an earlier result: earlier kept on failure")
    def _(d):
        out = d / "o"
        first = xvlm2vec(*p.eval_args(out, *plain))
        before = snapshot(out)
        run = xvlm2vec(*p.eval_args(out, "--tasks", "nosuchtask"))
        if snapshot(out) != before:
            return "data lost", "earlier results changed"
        return refused(run, "nosuchtask") if first.rc == 0 else ("traceback", first.last_error())

    @p.case("evaluation", "--max-queries 1 --save-prompts")
    def _(d):
        run = xvlm2vec(*p.eval_args(d / "o", *plain, "--max-queries", "1", "--save-prompts"))
        ok = run.rc == 0 and (d / "o" / "prompts.jsonl").is_file()
        return ("clean" if ok else ("traceback" if run.traceback else "silently wrong")), f"rc={run.rc}"


def publish_cases(p: Probe) -> None:
    """``publish --dry-run``: what would reach a public repository."""

    def dry(d: Path, folder: Path, kind: str = "model", *extra: str) -> Run:
        return xvlm2vec(
            "publish",
            kind,
            str(folder),
            "--repo-id",
            "someone/thing",
            "--dry-run",
            "--dry-run-dir",
            str(d / "dry"),
            *extra,
            env={"HF_HUB_OFFLINE": "1"},
        )

    def model_copy(d: Path) -> Path:
        shutil.copytree(p.model, d / "m")
        return d / "m"

    def leak(d: Path, name: str, make: Callable[[Path], None]) -> tuple[str, str]:
        folder = model_copy(d)
        make(folder)
        run = dry(d, folder)
        staged = (
            [str(x.relative_to(d / "dry")) for x in (d / "dry").rglob("*") if x.is_file()]
            if (d / "dry").exists()
            else []
        )
        if any(name in s for s in staged):
            return "silently wrong", f"{name} staged for upload"
        if run.traceback:
            return "traceback", run.last_error()
        if run.one_error_line and name in run.last_error():
            return "clean", run.last_error()
        return "silently wrong", f"rc={run.rc}: {name} not staged but not named either ({run.last_error()})"

    @p.case("publish", "dry run of a tiny model")
    def _(d):
        run = dry(d, p.model)
        ok = run.rc == 0 and (d / "dry" / "config.json").is_file()
        return ("clean" if ok else ("traceback" if run.traceback else "silently wrong")), f"rc={run.rc}"

    @p.case("publish", "a private key id_rsa in the model folder")
    def _(d):
        return leak(d, "id_rsa", lambda f: (f / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----"))

    @p.case("publish", "credentials.json in the model folder")
    def _(d):
        return leak(d, "credentials.json", lambda f: (f / "credentials.json").write_text('{"token": "x"}'))

    @p.case("publish", "a symlink to a file outside the folder")
    def _(d):
        (d / "outside.txt").write_text("private")
        return leak(d, "notes.txt", lambda f: (f / "notes.txt").symlink_to(d / "outside.txt"))

    @p.case("publish", "--repo-id without a namespace")
    def _(d):
        run = xvlm2vec(
            "publish", "model", str(p.model), "--repo-id", "justaname", "--dry-run", "--dry-run-dir", str(d / "dry")
        )
        return refused(run, "repo")

    @p.case("publish", "a folder that does not exist")
    def _(d):
        return refused(dry(d, d / "nothing"), "nothing")


def training_cases(p: Probe) -> None:
    """Small, cheap training inputs (one step on the tiny recipe at most)."""
    from xvlm2vec.training.collator import ParallelCollator

    def clean_rows(rows: list[dict]) -> tuple[int, int]:
        good, rejected = ParallelCollator(lambda *a, **k: None).clean(rows)  # rejected: one Rejection per row
        return len(good), len(rejected)

    png = {"bytes": None, "path": None}
    buffer = __import__("io").BytesIO()
    Image.new("RGB", (1, 300), "red").save(buffer, "PNG")
    png["bytes"] = buffer.getvalue()

    @p.case("training", "collator: a row with a 1x300 image")
    def _(d):
        good, skipped = clean_rows([{"id": 1, "text_en": f"{TAG}\na", "text_lang": f"{TAG}\nb", "image": png}])
        return ("clean" if (good, skipped) == (0, 1) else "silently wrong"), f"kept {good}, skipped {skipped}"

    @p.case("training", "collator: image tag without an image")
    def _(d):
        good, skipped = clean_rows([{"id": 1, "text_en": f"{TAG} a", "text_lang": f"{TAG} b", "image": None}])
        return ("clean" if (good, skipped) == (0, 1) else "silently wrong"), f"kept {good}, skipped {skipped}"

    def train(d: Path, *extra: str, timeout: int = 400) -> Run:
        return xvlm2vec("train", "--config", "tiny_cpu", "--output_dir", str(d / "run"), *extra, timeout=timeout)

    @p.case("training", "--per_device_train_batch_size 0")
    def _(d):
        return refused(train(d, "--per_device_train_batch_size", "0", "--max_steps", "1"))

    @p.case("training", "--output_dir equal to the base model")
    def _(d):
        model = d / "base"
        shutil.copytree(p.model, model)
        before = snapshot(model)
        run = xvlm2vec(
            "train",
            "--config",
            "tiny_cpu",
            "--model_name_or_path",
            str(model),
            "--output_dir",
            str(model),
            "--max_steps",
            "1",
            timeout=400,
        )
        if snapshot(model) != before:
            return "data lost", f"the base model was overwritten (rc={run.rc})"
        return refused(run)

    @p.case("training", "--num_train_epochs 0")
    def _(d):
        run = train(d, "--num_train_epochs", "0", "--max_steps", "-1")
        return refused(run)


def table(results: list[Result]) -> str:
    """The markdown table: inputs and outcomes per area, then the total."""
    lines = ["| area | inputs | " + " | ".join(OUTCOMES) + " |", "|---" * (len(OUTCOMES) + 2) + "|"]
    for area in [*AREAS, "total"]:
        rows = [r for r in results if area in ("total", r.area)]
        counts = [sum(r.outcome == outcome for r in rows) for outcome in OUTCOMES]
        lines.append(f"| {area} | {len(rows)} | " + " | ".join(map(str, counts)) + " |")
    return "\n".join(lines)


GROUPS: dict[str, Callable[[Probe], None]] = {
    "CLI": cli_cases,
    "MMMEB builder": mmmeb_cases,
    "corpus and translation": corpus_cases,
    "evaluation": evaluation_cases,
    "publish": publish_cases,
    "training": training_cases,
}


def main(argv: list[str] | None = None) -> int:
    """Run the probe and print the table (and the cases that were not clean)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one, deleted)")
    parser.add_argument("--json", type=Path, default=None, help="also write every case's result here")
    parser.add_argument("--areas", nargs="+", choices=list(GROUPS), default=list(GROUPS), help="areas to probe")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="trust_probe_"))
    probe = Probe(work)
    probe.setup()
    try:
        for area in args.areas:
            GROUPS[area](probe)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(probe.results))
    print()
    for result in probe.results:
        if result.outcome != "clean":
            print(f"- {result.area} / {result.case}: {result.outcome} ({result.detail})")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in probe.results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
