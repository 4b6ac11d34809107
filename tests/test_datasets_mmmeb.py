"""MMMEB builder: Hub-layout output readable by the stock client, and every kind of bad input."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from datasets import load_dataset

from dataset_builders import build
from dataset_builders.mmmeb import FEATURES, TASKS, build_mmmeb, resolve_image_id
from dataset_builders.source import resolve_source
from xvlm2vec.cli import build_parser
from xvlm2vec.testing.fixtures import write_image, write_mmmeb
from xvlm2vec_common.cli_errors import UsageError


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    """The full fixture release (2 rows per file) and its build."""
    root = tmp_path_factory.mktemp("mmmeb")
    write_mmmeb(root / "release", rows_per_file=2)
    report = build_mmmeb(root / "release", root / "out")
    return root / "release", root / "out", report


def test_resolve_image_id_follows_the_four_cases() -> None:
    assert resolve_image_id("a/b.png", "xm") == "a/b.png"
    assert resolve_image_id("a/b", "xm") == "a/b.jpg"
    assert resolve_image_id("b.png", "xm") == "xm_images/b.png"
    assert resolve_image_id("b", "xm") == "xm_images/b.jpg"


def test_every_config_and_language_loads_with_declared_features(built, tmp_path: Path) -> None:
    _, out, report = built
    assert report.passed and report.rows_rejected == 0
    expected = {f"{spec.config_name}/{lang}": 2 for spec in TASKS for lang in spec.languages}
    assert report.split_rows == expected
    ds = load_dataset(str(out), "xtd_t2i", split="it", cache_dir=str(tmp_path))
    assert ds.features == FEATURES
    row = ds[0]
    assert row["query_image"] is None and row["candidate_texts"] == []
    assert len(row["candidate_images"]) == 4 and row["positive_index"] == 0
    assert row["query_text"].startswith("un ")  # Italian fixture caption
    vg = load_dataset(str(out), "flickr30k_entities_vg", split="fr", cache_dir=str(tmp_path))
    assert vg[0]["query_image"].size == (16, 16) and vg[0]["query_text"]


def test_streaming_reads_the_same_rows(built, tmp_path: Path) -> None:
    _, out, _ = built
    eager = load_dataset(str(out), "maxm_v1_vqa", split="en", cache_dir=str(tmp_path))
    streamed = list(load_dataset(str(out), "maxm_v1_vqa", split="en", streaming=True))
    assert [r["id"] for r in streamed] == eager["id"]
    assert [r["candidate_texts"] for r in streamed] == eager["candidate_texts"]


def test_card_declares_configs_and_dataset_info(built) -> None:
    _, out, _ = built
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "config_name: imagenet-1k-val_c" in card and "path: data/xtd_t2i/it-*.parquet" in card
    assert "dataset_info:" in card and "positive_index" in card
    saved = json.loads((out / "build_report.json").read_text(encoding="utf-8"))
    assert saved["rows_in"] == saved["rows_out"] + saved["rows_rejected"]


def test_sample_keeps_first_rows(tmp_path: Path) -> None:
    write_mmmeb(tmp_path / "release", rows_per_file=3)
    report = build_mmmeb(tmp_path / "release", tmp_path / "out", sample=1)
    assert set(report.split_rows.values()) == {1}
    assert report.rows_in == report.rows_out  # reading stops once the sample is full


def _bad_release(root: Path) -> Path:
    """An xtd t2i file with one good line and one line per kind of bad input."""
    src = root / "src"
    for name, colour in (("good0", "red"), ("good1", "blue"), ("good2", "green")):
        write_image(src / "xtd_images" / f"{name}.jpg", colour)
    (src / "xtd_images" / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    write_image(root / "secret.jpg", "black")  # outside the data root: must never be used
    good = ["good0", "good1", "good2"]
    lines = [
        json.dumps({"id": "q0", "text": "a red dog", "images": good}),
        json.dumps({"id": "q1", "text": "a blue dog", "images": ["corrupt", "good1"]}),
        json.dumps({"id": "q2", "text": "a blue dog", "images": ["nothere", "good1"]}),
        json.dumps({"id": "q3", "text": "  ", "images": good}),
        json.dumps({"id": "q0", "text": "a red dog again", "images": good}),
        json.dumps({"id": "q4", "text": "no candidates", "images": []}),
        json.dumps({"id": "q5", "text": "twice", "images": ["good0", "good0"]}),
        json.dumps({"id": "q6", "text": "dotdot", "images": ["../../secret", "good1"]}),
        json.dumps({"id": "q7", "text": "absolute", "images": [str(root / "secret.jpg"), "good1"]}),
    ]
    data = ("\n".join(lines) + "\n").encode() + b'{"id": "q8", "text": "\xff\xfe bad", "images": []}\n'
    data += b'{"id": "q9", "text": "truncat'  # a kill mid-write
    (src / "xtd_en_1000_formatted_t2i.jsonl").write_bytes(data)
    return src


def test_bad_inputs_are_counted_rejections_naming_file_and_line(tmp_path: Path) -> None:
    src = _bad_release(tmp_path)
    report = build_mmmeb(src, tmp_path / "out", max_rejects=None)
    assert report.rejected == {
        "corrupt_image": 1,
        "missing_image": 1,
        "empty_text": 1,
        "duplicate_id": 1,
        "empty_candidates": 1,
        "duplicate_candidates": 1,
        "unsafe_path": 2,
        "invalid_utf8": 1,
        "invalid_json": 1,
    }
    assert (report.rows_in, report.rows_out) == (11, 1) and report.balanced
    where = {e["reason"]: e["where"] for e in report.examples}
    assert where["corrupt_image"].endswith("xtd_en_1000_formatted_t2i.jsonl:2")
    assert where["invalid_utf8"].endswith("formatted_t2i.jsonl:10")  # where names the file and the line
    assert any(":11:" in e["message"] for e in report.examples if e["reason"] == "invalid_json")
    assert report.split_rows == {"xtd_t2i/en": 1}


def test_rejects_over_threshold_fail_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = _bad_release(tmp_path)
    parser = build_parser("build")
    args = parser.parse_args(["build", "mmmeb", "--source", str(src), "--output-dir", str(tmp_path / "out")])
    assert build.run(args) == 1  # default --max-rejects 0 for MMMEB
    assert "FAILED" in capsys.readouterr().out
    args = parser.parse_args(
        ["build", "mmmeb", "--source", str(src), "--output-dir", str(tmp_path / "o2"), "--max-rejects", "10"]
    )
    assert build.run(args) == 0


def test_images_from_zip_archive_and_zip_slip_member(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_image(tmp_path / "img.jpg", "red")
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(tmp_path / "img.jpg", "xtd_images/ok.jpg")
        zf.write(tmp_path / "img.jpg", "../evil.jpg")  # zip-slip member
    src.mkdir()
    lines = [{"text": "fine", "images": ["ok"]}, {"text": "escape", "images": ["../evil.jpg"]}]
    (src / "xtd_fr_1000_formatted_t2i.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    report = build_mmmeb(src, tmp_path / "out", images=archive, max_rejects=None)
    assert report.rejected == {"unsafe_path": 1} and report.rows_out == 1
    assert any("../evil.jpg" in note for note in report.notes)
    assert not (tmp_path.parent / "evil.jpg").exists()  # nothing extracted anywhere
    ds = load_dataset(str(tmp_path / "out"), "xtd_t2i", split="fr", cache_dir=str(tmp_path / "cache"))
    assert ds[0]["id"] == "xtd_t2i-fr-1" and ds[0]["candidate_images"][0].size == (16, 16)


def test_hub_source_is_snapshot_at_pinned_revision(tmp_path: Path) -> None:
    write_mmmeb(tmp_path / "hub_copy", rows_per_file=1)
    calls = []

    def fake_download(**kwargs) -> str:  # stands in for huggingface_hub.snapshot_download
        calls.append(kwargs)
        return str(tmp_path / "hub_copy")

    with pytest.raises(ValueError, match="--revision"):
        resolve_source("someone/mmmeb", None, download=fake_download)
    folder = resolve_source("someone/mmmeb", "abc123", download=fake_download)
    assert calls == [
        {"repo_id": "someone/mmmeb", "repo_type": "dataset", "revision": "abc123", "allow_patterns": None}
    ]
    report = build_mmmeb(folder, tmp_path / "out")
    assert report.passed and report.rows_out == sum(len(spec.languages) for spec in TASKS)
    with pytest.raises(UsageError, match="not a Hub repo id"):
        resolve_source(str(tmp_path / "missing" / "deeper" / "x"))
