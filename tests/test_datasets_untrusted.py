"""Untrusted rows never abort a build (issue 12, defects 2 and 3): each bad input is made here,
built next to good rows, and must come out as one counted rejection naming its file and line,
with the report balanced (rows in = rows out + rows rejected)."""

from __future__ import annotations

import io
import json
import random
import struct
import zlib
from pathlib import Path

import pytest
from datasets import load_dataset
from PIL import Image

from dataset_builders.mmmeb import build_mmmeb
from dataset_builders.parallel import build_parallel
from xvlm2vec_common.safe_inputs import MAX_IMAGE_PIXELS

I2T = "xtd_en_1000_formatted_i2t.jsonl"
T2I = "xtd_en_1000_formatted_t2i.jsonl"


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and holds none (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def release(root: Path, filename: str, bad: dict | str) -> Path:
    """A one-file MMMEB release: two good rows around ``bad`` (a record, or a raw line) on line 2."""
    src = root / "src"
    (src / "xtd_images").mkdir(parents=True)
    for i, colour in enumerate(["red", "blue", "green"]):
        Image.new("RGB", (8, 8), colour).save(src / "xtd_images" / f"{i}.jpg")
    (src / "xtd_images" / "bomb.png").write_bytes(png_header(20000, 20000))
    noise = io.BytesIO()  # a JPEG cut at 3/4: its header is whole (Image.verify passes), its pixels are not
    Image.frombytes("RGB", (64, 64), random.Random(0).randbytes(64 * 64 * 3)).save(noise, "JPEG")
    (src / "xtd_images" / "cut.jpg").write_bytes(noise.getvalue()[: len(noise.getvalue()) * 3 // 4])
    good = (
        {"img": "0", "captions": ["a red square", "a blue square"]}
        if filename == I2T
        else {"text": "a red square", "images": ["0", "1"]}
    )
    raw = bad if isinstance(bad, str) else json.dumps(bad)
    (src / filename).write_text(f"{json.dumps(good)}\n{raw}\n{json.dumps(good)}\n", encoding="utf-8")
    return src


BAD_MMMEB = {
    "decompression_bomb": (I2T, {"img": "bomb.png", "captions": ["x", "y"]}, "image_too_large"),
    "truncated_jpeg": (I2T, {"img": "cut.jpg", "captions": ["x", "y"]}, "corrupt_image"),
    "nul_in_image_id": (I2T, {"img": "0\u0000.jpg", "captions": ["x", "y"]}, "invalid_image_id"),
    "image_name_over_255_bytes": (I2T, {"img": "é" * 200, "captions": ["x", "y"]}, "name_too_long"),
    "lone_surrogate_in_text": (T2I, '{"text": "a \\ud800 square", "images": ["0", "1"]}', "invalid_unicode"),
    "aliases_of_one_image": (T2I, {"text": "x", "images": ["1", "1.jpg", "xtd_images/1"]}, "duplicate_candidates"),
}


@pytest.mark.parametrize("case", sorted(BAD_MMMEB))
def test_a_bad_mmmeb_row_is_a_counted_rejection(case: str, tmp_path: Path) -> None:
    filename, bad, reason = BAD_MMMEB[case]
    src = release(tmp_path, filename, bad)
    report = build_mmmeb(src, tmp_path / "out", max_rejects=None)
    assert report.rejected == {reason: 1}
    assert report.rows_in == 3 and report.rows_out == 2 and report.balanced
    assert report.examples[0]["where"] == f"{src / filename}:2"
    config = "xtd_i2t" if filename == I2T else "xtd_t2i"
    assert load_dataset(str(tmp_path / "out"), config, split="en").num_rows == 2


def test_the_pixel_limit_is_stated_and_applied_before_decoding(tmp_path: Path) -> None:
    # Just over the limit (fits in PIL's warning band, below its hard error): still refused.
    side = int(MAX_IMAGE_PIXELS**0.5) + 1
    src = release(tmp_path, I2T, {"img": "big.png", "captions": ["x", "y"]})
    (src / "xtd_images" / "big.png").write_bytes(png_header(side, side))
    report = build_mmmeb(src, tmp_path / "out", max_rejects=None)
    assert report.rejected == {"image_too_large": 1}
    assert f"over the limit of {MAX_IMAGE_PIXELS}" in report.examples[0]["message"]


def test_unknown_and_empty_source_files_are_listed(tmp_path: Path) -> None:
    src = release(tmp_path, I2T, {"img": "1", "captions": ["x", "y"]})
    (src / "xtd_en_1000_formatted_t2i.jsonl").write_text("\n  \n", encoding="utf-8")
    (src / "xtd_en_1000_formated_i2t.jsonl").write_text("{}\n", encoding="utf-8")  # a typo in the name
    report = build_mmmeb(src, tmp_path / "out")
    assert report.unknown_files == ["xtd_en_1000_formated_i2t.jsonl"]
    assert report.empty_files == ["xtd_en_1000_formatted_t2i.jsonl"]
    saved = json.loads((tmp_path / "out" / "build_report.json").read_text(encoding="utf-8"))
    assert saved["unknown_files"] == report.unknown_files and saved["empty_files"] == report.empty_files
    assert "unknown source file (not read): xtd_en_1000_formated_i2t.jsonl" in report.table()


def corpus(root: Path, lines: list[dict | str]) -> Path:
    src = root / "src"
    src.mkdir(parents=True, exist_ok=True)
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    (src / "parallel_shuffled.jsonl").write_text(text, encoding="utf-8")
    return src


def pair(i: int, lang: str) -> dict:
    return {
        "id": i,
        "lang": lang,
        "source_dataset": "MSCOCO",
        "text_en": f"a dog {i}.",
        "text_lang": f"un cane {i}.",
        "img_en": None,
        "img_lang": None,
    }


def test_exact_duplicate_lines_are_rejected_as_duplicate_id(tmp_path: Path) -> None:
    src = corpus(tmp_path, [pair(0, "it"), pair(1, "it"), pair(0, "it"), {**pair(0, "it"), "text_lang": "un gatto."}])
    report = build_parallel(src, tmp_path / "out")
    assert report.rejected == {"duplicate_id": 1} and report.rows_out == 3 and report.balanced
    assert report.examples[0]["where"].endswith("parallel_shuffled.jsonl:3")
    assert "line 1" in report.examples[0]["message"]


@pytest.mark.parametrize("lang", ["all", "..", "a/b", "/tmp", "it\u0000"])
def test_a_language_that_is_not_a_code_is_a_rejected_row_never_a_path(lang: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_parallel(corpus(tmp_path / "one", [pair(0, "it"), pair(1, "it")]), out)
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    report = build_parallel(corpus(tmp_path / "two", [pair(0, "it"), pair(1, lang), pair(2, "it")]), out)
    assert report.rejected == {"invalid_lang": 1} and report.rows_out == 2 and report.balanced
    assert report.examples[0]["where"].endswith("parallel_shuffled.jsonl:2")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before  # same layout: all + it
    assert (
        load_dataset(str(out), "all", split="train").num_rows + load_dataset(str(out), "all", split="dev").num_rows
        == 2
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "out", "two"]  # nothing written beside it


def test_a_corrupt_or_oversized_zip_member_is_a_counted_rejection(tmp_path: Path, monkeypatch) -> None:
    import zipfile

    import xvlm2vec_common.safe_inputs as safe_io

    src = release(tmp_path, I2T, {"img": "2", "captions": ["x", "y"]})
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("0", "1", "2"):
            zf.write(src / "xtd_images" / f"{name}.jpg", f"xtd_images/{name}.jpg")
    raw = bytearray(archive.read_bytes())
    info = zipfile.ZipFile(archive).getinfo("xtd_images/2.jpg")
    start = info.header_offset + 30 + len(info.filename)
    raw[start : start + 8] = b"\xff" * 8  # member 2's deflate stream no longer inflates
    archive.write_bytes(bytes(raw))
    report = build_mmmeb(src, tmp_path / "out", images=archive, max_rejects=None)
    assert report.rejected == {"unreadable_image": 1} and report.rows_out == 2 and report.balanced
    monkeypatch.setattr(safe_io, "MAX_IMAGE_BYTES", 100)  # every 8x8 JPEG is over 100 bytes: none is read
    report = build_mmmeb(src, tmp_path / "out", images=archive, max_rejects=None)
    assert report.rejected == {"image_too_large": 3} and report.rows_out == 0 and report.balanced


def test_an_empty_corpus_and_stray_jsonl_files_are_listed(tmp_path: Path) -> None:
    src = corpus(tmp_path, [])
    (src / "parallel_shuffled (1).jsonl").write_text(json.dumps(pair(0, "it")) + "\n", encoding="utf-8")
    report = build_parallel(src, tmp_path / "out")
    assert report.empty_files == ["parallel_shuffled.jsonl"] and report.unknown_files == [
        "parallel_shuffled (1).jsonl"
    ]
    assert report.rows_in == 0 and not report.passed
