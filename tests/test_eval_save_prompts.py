"""``xvlm2vec eval --save-prompts`` on release-format data built by the project's builder: the prompt
log against the hand-written table of released prompts (``released_prompts.py``) for two backbones
and for a dual-encoder baseline, and the skipped null-text queries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from released_prompts import EXPECTED

from modeling_xvlm2vec.backbones import get_backbone
from xvlm2vec.cli import main
from xvlm2vec.evaluation.data import parse_config
from xvlm2vec.testing.tiny_model import save_tiny_model
from xvlm2vec_common.results_document import validate

SKIPPED = {("xtd_t2i", "en"), ("xm_t2i", "en"), ("maxm_v1_vqa", "en")}  # English t2i / vqa files hold a null-text q1
# The released VQA data (maxm_v1) is English and French only: the table's other VQA rows have no split to run on.
IN_DATA = {key for key in EXPECTED if not (key[0] == "vqa" and key[2] not in ("en", "fr"))}
# Qwen2-VL runs every split; Phi-3.5-V (slower on CPU: four crops per image) French vqa and vg.
RUNS = {"qwen2_vl": ([], None), "phi3_v": (["--tasks", "vqa", "vg", "--languages", "fr"], ("vqa", "vg"))}


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("backbone", sorted(RUNS))
def test_prompt_log_equals_the_released_prompts(released_table_mmmeb, tmp_path, backbone):
    model_dir = save_tiny_model(backbone, tmp_path / "model")
    out = tmp_path / "out"
    selection, tasks = RUNS[backbone]
    assert (
        main(
            [
                "eval",
                "--model",
                str(model_dir),
                "--data",
                str(released_table_mmmeb),
                "--output-dir",
                str(out),
                "--save-prompts",
                "--no-cache",
                "--batch-size",
                "4",
                *selection,
            ]
        )
        == 0
    )
    tag = get_backbone(backbone).image_tag
    checked = set()
    for line in read_log(out / "prompts.jsonl"):
        assert set(line) == {
            "model",
            "config",
            "language",
            "style",
            "side",
            "row_id",
            "candidate_index",
            "prompt",
            "image_id",
            "image_name",
        }
        task = parse_config(line["config"])[1]
        key = (task, line["side"], line["language"], line["style"])
        assert line["row_id"] == "q0", line  # the null-text q1 is never embedded
        if line["side"] == "candidate" and line["candidate_index"] == 1:
            if line["image_id"] is None:  # the second, untabled text candidate: styled like any text candidate
                assert line["prompt"].startswith("another candidate")
            else:
                assert line["prompt"] == EXPECTED[key].replace("<|image_1|>", tag)
            continue
        assert line["prompt"] == EXPECTED[key].replace("<|image_1|>", tag), key
        assert (line["image_id"] is not None) == (tag in line["prompt"])
        if line["image_id"] is not None:
            assert line["image_name"].endswith(".jpg")
        assert (*key, line["config"]) not in checked  # one line per embedded query / distinct candidate
        checked.add((*key, line["config"]))
    # Every (task, side, language, style) of the table the run covers was embedded and checked; i2t and
    # t2i once per dataset (xtd, xm).
    covered = {key for key in IN_DATA if tasks is None or (key[0] in tasks and key[2] == "fr")}
    assert {key[:4] for key in checked} == covered
    assert len(checked) == len(covered) + sum(1 for key in covered if key[0] in ("i2t", "t2i"))

    document = json.loads((out / "results.json").read_text())
    validate(document)
    for record in document["models"][0]["scores"]:
        skipped = (record["config"], record["language"]) in SKIPPED
        assert (record["num_queries"], record["skipped_queries"]) == ((1, 1) if skipped else (1, 0))
        assert record["style"] in ("plain", "punct", "newline")
