"""Release-format fixtures and the safe readers the builders rely on."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from datasets import load_dataset

from dataset_builders.mmeb_train import MMEB_TRAIN_SUBSETS
from dataset_builders.mmmeb import TASKS
from xvlm2vec.cli import build_parser
from xvlm2vec.testing.fixtures import run as fixtures_run
from xvlm2vec_common.safe_inputs import ImageStore, RowError, UnsafePathError, check_relative_path, iter_jsonl


def _fixtures(kind: str, out: Path, rows: int) -> None:
    args = build_parser("fixtures").parse_args(["fixtures", kind, "--output-dir", str(out), "--rows", str(rows)])
    assert fixtures_run(args) == 0


def test_mmmeb_fixture_file_names_and_fields_match_the_release(tmp_path: Path) -> None:
    _fixtures("mmmeb", tmp_path, 2)
    names = sorted(p.name for p in tmp_path.glob("*.jsonl"))
    assert names == sorted(spec.filename(lang) for spec in TASKS for lang in spec.languages)
    assert all(
        re.fullmatch(r"[\w.-]+_(en|it|es|fr|de)_(1000|100)_formatted_(i2t|t2i|c|vg|vqa)\.jsonl", n) for n in names
    )
    vqa = [json.loads(x) for x in (tmp_path / "maxm_v1_fr_100_formatted_vqa.jsonl").read_text().splitlines()]
    assert set(vqa[0]) == {"img", "question", "answers"} and len(vqa) == 2
    t2i = json.loads((tmp_path / "xtd_de_1000_formatted_t2i.jsonl").read_text().splitlines()[0])
    assert set(t2i) == {"text", "images"} and (tmp_path / "xtd_images" / f"{t2i['images'][0]}.jpg").is_file()


def test_parallel_fixture_lines_have_exactly_the_release_keys(tmp_path: Path) -> None:
    _fixtures("parallel", tmp_path, 6)
    lines = [json.loads(x) for x in (tmp_path / "parallel_shuffled.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 6
    assert all(set(line) == {"id", "text_en", "text_lang", "img_en", "img_lang"} for line in lines)
    assert all((tmp_path / line["img_en"]).is_file() for line in lines if line["img_en"])


def test_mmeb_train_fixture_loads_per_subset(tmp_path: Path) -> None:
    _fixtures("mmeb-train", tmp_path, 3)
    ds = load_dataset(str(tmp_path), "VisDial", split="train", cache_dir=str(tmp_path / "c"))
    assert ds.column_names == ["qry", "qry_image_path", "pos_text", "pos_image_path", "neg_text", "neg_image_path"]
    assert len(ds) == 3 and len(MMEB_TRAIN_SUBSETS) == len(list((tmp_path / "data").iterdir()))


@pytest.mark.parametrize(
    "path", ["../x.jpg", "a/../../x.jpg", "/etc/passwd", "C:\\x.jpg", "\\\\server\\x.jpg", "a/.."]
)
def test_unsafe_paths_are_refused(path: str) -> None:
    with pytest.raises(UnsafePathError):
        check_relative_path(path)


def test_safe_paths_are_normalised() -> None:
    assert check_relative_path("a/./b.jpg") == "a/b.jpg"
    assert check_relative_path("a\\b.jpg") == "a/b.jpg"


def test_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "outside.jpg").write_bytes(b"secret")
    os.symlink(tmp_path / "outside.jpg", tmp_path / "root" / "link.jpg")
    with pytest.raises(UnsafePathError):
        ImageStore(tmp_path / "root").read_bytes("link.jpg")


def test_jsonl_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n\n[1, 2]\n\xc3\x28\n{"a": ')
    items = list(iter_jsonl(path))
    assert items[0].record == {"a": 1} and items[0].line_no == 1
    errors = [item for item in items if isinstance(item, RowError)]
    assert [e.reason for e in errors] == ["not_an_object", "invalid_utf8", "invalid_json"]
    assert [str(e).split(": ")[0] for e in errors] == [f"{path}:3", f"{path}:4", f"{path}:5"]
