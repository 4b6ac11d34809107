"""Translation step: kill-and-restart resumability, rejects kept with reasons, and a real
(tiny, random) transformers seq2seq model behind the same interface."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from dataset_builders.mmeb_train import journal_path, language_markers, translated_fields
from dataset_builders.translate import (
    MAX_NEW_TOKENS,
    Seq2SeqTranslator,
    Translated,
    hit_token_limit,
    load_translator,
    repair_journal,
    translate_subset,
    write_rejects,
)
from xvlm2vec.testing.fixtures import mmeb_train_rows
from xvlm2vec.testing.tiny_mt import tiny_t5 as _tiny_t5
from xvlm2vec_common.cli_errors import UsageError

SUBSET, LANG = "OK-VQA", "it"


class StandInTranslator:
    """Deterministic translator: swaps the markers, tags each part; rows mentioning a diamond fail.

    ``delay`` sleeps per batch so a test can kill a run in the middle.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def translate(self, texts: Sequence[str], lang: str) -> list[str]:
        time.sleep(self.delay)
        question, answer = language_markers(lang)
        return [
            "no markers at all"
            if " diamond" in t
            else t.replace("Question: ", f"{question}: <{lang}> ").replace("Answer: ", f"{answer}: <{lang}> ")
            for t in texts
        ]


def _records(folder: Path) -> list[dict]:
    lines = [
        json.loads(x)
        for p in sorted((folder / SUBSET / LANG).glob("part-*.jsonl"))
        for x in p.read_text(encoding="utf-8").splitlines()
    ]
    return sorted(lines, key=lambda r: r["id"])


def test_journal_records_translations_and_rejects(tmp_path: Path) -> None:
    rows = mmeb_train_rows(SUBSET, 12)
    assert translate_subset(StandInTranslator(), rows, SUBSET, LANG, tmp_path, batch_size=5) == 12
    records = _records(tmp_path)
    assert [r["id"] for r in records] == list(range(12))
    for record, row in zip(records, rows):
        if " diamond" in row["qry"] + row["pos_text"] + row["neg_text"]:
            assert record["rejected"] == "part_count_mismatch" and record["output"] == "no markers at all"
        else:
            assert set(record["fields"]) == set(translated_fields(SUBSET))
            assert record["fields"]["qry"].startswith("<|image_1|>\n<it> ") == row["qry"].startswith("<|image_1|>\n")
    rejected = sum("rejected" in r for r in records)
    assert 0 < rejected < 12  # the fixture has both kinds
    assert write_rejects(tmp_path, [SUBSET], [LANG]).rejected == rejected
    # a second run finds everything done and repeats nothing
    assert translate_subset(StandInTranslator(), rows, SUBSET, LANG, tmp_path) == 0
    assert len(_records(tmp_path)) == 12


def test_repair_cuts_a_partial_last_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"id": 0}\n{"id": 1, "fie')
    repair_journal(path)
    assert path.read_bytes() == b'{"id": 0}\n'


_CHILD = """
import sys
sys.path.insert(0, {tests!r})
from test_datasets_translate import StandInTranslator, SUBSET, LANG
from xvlm2vec.testing.fixtures import mmeb_train_rows
from dataset_builders.translate import translate_subset
translate_subset(StandInTranslator(delay=0.15), mmeb_train_rows(SUBSET, {n}), SUBSET, LANG, {out!r}, batch_size=2)
"""


def test_kill_mid_run_then_restart_gives_the_uninterrupted_rows(tmp_path: Path) -> None:
    n = 24
    rows = mmeb_train_rows(SUBSET, n)
    translate_subset(StandInTranslator(), rows, SUBSET, LANG, tmp_path / "clean", batch_size=2)
    out = tmp_path / "killed"
    script = _CHILD.format(tests=str(Path(__file__).parent), n=n, out=str(out))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    child = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=tmp_path)
    journal = journal_path(out, SUBSET, LANG, 0)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if journal.exists() and journal.read_text(encoding="utf-8").count("\n") >= 4:
            break
        time.sleep(0.05)
    assert child.poll() is None, "the child finished before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait()
    done = journal.read_text(encoding="utf-8").count("\n")
    assert 4 <= done < n
    with open(journal, "ab") as handle:  # as if the kill had landed in the middle of a write
        handle.write(b'{"id": 23, "subset": "OK-VQA", "la')
    written = translate_subset(StandInTranslator(), rows, SUBSET, LANG, out, batch_size=3)
    assert written == n - done
    assert _records(out) == _records(tmp_path / "clean")


def test_tiny_random_seq2seq_model_end_to_end(tmp_path: Path) -> None:
    _tiny_t5(tmp_path / "t5")
    translator = load_translator(str(tmp_path / "t5"), max_new_tokens=6)
    assert isinstance(translator, Seq2SeqTranslator)
    rows = mmeb_train_rows(SUBSET, 5)
    assert translate_subset(translator, rows, SUBSET, LANG, tmp_path / "out", batch_size=2) == 5
    records = _records(tmp_path / "out")
    assert [r["id"] for r in records] == list(range(5))
    # the vocabulary cannot spell the markers: every row is kept as a reject with its output
    assert all(r["rejected"] == "part_count_mismatch" and isinstance(r["output"], str) for r in records)
    assert write_rejects(tmp_path / "out", [SUBSET], [LANG]).rejected == 5


def test_output_that_reaches_the_token_limit_is_rejected_as_truncated(tmp_path: Path) -> None:
    _tiny_t5(tmp_path / "t5", end="no_eos")
    translator = load_translator(str(tmp_path / "t5"), max_new_tokens=6)
    translate_subset(translator, mmeb_train_rows(SUBSET, 3), SUBSET, LANG, tmp_path / "out", batch_size=2)
    records = _records(tmp_path / "out")
    assert [r["rejected"] for r in records] == ["truncated"] * 3
    assert all(len(r["output"].split()) == 6 for r in records)  # the 6 words generated before the cut
    assert write_rejects(tmp_path / "out", [SUBSET], [LANG]).rejected == 3


def test_truncated_output_is_rejected_even_when_it_splits_into_the_right_parts(tmp_path: Path) -> None:
    class Cut(StandInTranslator):
        def translate(self, texts: Sequence[str], lang: str) -> list[Translated]:
            # row 0 reached the limit, row 1 ended on its own; both parse
            return [Translated(text, index == 0) for index, text in enumerate(super().translate(texts, lang))]

    rows = [
        row for row in mmeb_train_rows(SUBSET, 12) if " diamond" not in row["qry"] + row["pos_text"] + row["neg_text"]
    ][:2]
    translate_subset(Cut(), rows, SUBSET, LANG, tmp_path, batch_size=2)
    first, second = _records(tmp_path)
    assert first["rejected"] == "truncated" and first["output"].count("Risposta: ") == 2
    assert "rejected" not in second and set(second["fields"]) == set(translated_fields(SUBSET))


def test_token_limit_rule_on_generated_ids() -> None:
    import torch

    eos = {1}
    assert hit_token_limit(torch.tensor([[5, 6, 7], [5, 1, 0], [5, 6, 1]]), eos, 3) == [True, False, False]
    assert hit_token_limit(torch.tensor([[5, 6]]), eos, 3) == [False]  # stopped before the limit


def test_translator_failure_becomes_rejects_not_a_crash(tmp_path: Path) -> None:
    class Broken:
        def translate(self, texts: Sequence[str], lang: str) -> list[str]:
            raise RuntimeError("CUDA out of memory")

    translate_subset(Broken(), mmeb_train_rows(SUBSET, 3), SUBSET, LANG, tmp_path)
    records = _records(tmp_path)
    # journalled with the reason, as a transient failure (retried on restart), not as a final rejection
    assert len(records) == 3 and all(r["failed"].startswith("translator_error: CUDA out of memory") for r in records)
    assert not any("rejected" in r for r in records)


def test_transient_failures_are_retried_on_restart_and_reported_apart(tmp_path: Path) -> None:
    class FailsOnce(StandInTranslator):
        """Raises (an OOM, say) on its first call only."""

        calls = 0

        def translate(self, texts: Sequence[str], lang: str) -> list[str]:
            FailsOnce.calls += 1
            if FailsOnce.calls == 1:
                raise RuntimeError("CUDA out of memory")
            return super().translate(texts, lang)

    rows = mmeb_train_rows(SUBSET, 6)
    translator = FailsOnce()
    assert translate_subset(translator, rows, SUBSET, LANG, tmp_path, batch_size=3) == 6
    report = write_rejects(tmp_path, [SUBSET], [LANG])
    assert (report.rejected, report.failed) == (0, 3)  # the first batch failed; nothing is final yet
    failures = [json.loads(x) for x in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert [r["id"] for r in failures] == [0, 1, 2] and all("out of memory" in r["failed"] for r in failures)

    assert translate_subset(translator, rows, SUBSET, LANG, tmp_path, batch_size=3) == 3  # the failed rows only
    uninterrupted = tmp_path / "uninterrupted"
    translate_subset(StandInTranslator(), rows, SUBSET, LANG, uninterrupted, batch_size=3)
    final = {r["id"]: r for r in _records(tmp_path) if "failed" not in r}
    assert sorted(final) == list(range(6)) and list(final.values()) == _records(uninterrupted)
    dogs = sum(" diamond" in row["qry"] + row["pos_text"] + row["neg_text"] for row in rows)
    report = write_rejects(tmp_path, [SUBSET], [LANG])
    assert (report.rejected, report.failed) == (dogs, 0)
    assert (tmp_path / "failures.jsonl").read_text() == ""


def test_cli_parses_and_rejects_unknown_language(tmp_path: Path) -> None:
    from xvlm2vec.cli import build_parser

    _tiny_t5(tmp_path / "t5")
    args = build_parser("translate").parse_args(
        [
            "translate",
            "--model",
            str(tmp_path / "t5"),
            "--source",
            str(tmp_path),
            "--output-dir",
            str(tmp_path / "o"),
            "--languages",
            "it,xx",
        ]
    )
    # the release's defaults: 2048 new tokens, the 20 translated subsets (no VisDial), MMEB-train at 0c3f4b8
    assert args.max_new_tokens == MAX_NEW_TOKENS == 2048 and args.revision == "0c3f4b8"
    subsets = args.subsets.split(",")
    assert len(subsets) == 20 and "VisDial" not in subsets and "WebQA" in subsets
    from dataset_builders.translate import run

    with pytest.raises(UsageError, match="xx"):
        run(args)


_TWO_PROCESS = """
import sys
sys.path.insert(0, {tests!r})
from test_datasets_translate import StandInTranslator, SUBSET, LANG
from xvlm2vec.testing.fixtures import mmeb_train_rows
from dataset_builders.translate import process_state, translate_subset
state = process_state()
assert state.num_processes == 2, state.num_processes
translate_subset(StandInTranslator(), mmeb_train_rows(SUBSET, {n}), SUBSET, LANG, {out!r}, batch_size=2, state=state)
"""


@pytest.mark.slow  # two torchrun workers each import torch: ~10-25 s on a loaded 2-core machine
def test_two_processes_split_the_rows_without_overlap(tmp_path: Path) -> None:
    n = 9
    script = tmp_path / "two.py"
    script.write_text(_TWO_PROCESS.format(tests=str(Path(__file__).parent), n=n, out=str(tmp_path / "out")))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", str(script)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    parts = sorted((tmp_path / "out" / SUBSET / LANG).glob("part-*.jsonl"))
    assert [p.name for p in parts] == ["part-00000.jsonl", "part-00001.jsonl"]
    per_rank = [[json.loads(x)["id"] for x in p.read_text().splitlines()] for p in parts]
    assert all(per_rank) and sorted(per_rank[0] + per_rank[1]) == list(range(n))
    translate_subset(StandInTranslator(), mmeb_train_rows(SUBSET, n), SUBSET, LANG, tmp_path / "one", batch_size=4)
    assert _records(tmp_path / "out") == _records(tmp_path / "one")
