"""Results outputs: the paper's averages by hand, schema validation, markdown, PNG and model-index."""

from __future__ import annotations

import json

import jsonschema
import pytest
from huggingface_hub import EvalResult
from PIL import Image

from xvlm2vec.evaluation.plot import plot_results
from xvlm2vec_common.results_document import (
    markdown_table,
    model_entry,
    model_index_entries,
    results_document,
    validate,
)


def record(config: str, lang: str, style: str | None, p1: float, ties: int = 0) -> dict:
    dataset, _, task = config.rpartition("_")
    return {
        "dataset": dataset,
        "task": task,
        "config": config,
        "language": lang,
        "style": style,
        "num_queries": 4,
        "skipped_queries": 0,
        "ties_at_top": ties,
        "precision@1": p1,
        "recall@5": 1.0,
        "recall@10": 1.0,
        "mrr": p1,
        "ndcg@10": p1,
    }


SCORES = [
    record("xtd_i2t", "en", "plain", 0.5, ties=2),
    record("xtd_i2t", "en", "punct", 1.0),  # cell 0.75
    record("xtd_i2t", "it", "plain", 0.25),
    record("xtd_i2t", "it", "punct", 0.25),  # cell 0.25
    record("maxm_v1_vqa", "en", "plain", 1.0),
    record("maxm_v1_vqa", "en", "punct", 0.0),  # cell 0.5
    record("maxm_v1_vqa", "fr", "plain", 0.0),
    record("maxm_v1_vqa", "fr", "punct", 0.0),  # cell 0.0
]


@pytest.fixture()
def document() -> dict:
    teacher = model_entry("teacher", "xvlm2vec", "f" * 64, SCORES)
    student_scores = [{**r, "precision@1": 1.0} for r in SCORES]
    student = model_entry("student", "xvlm2vec", "e" * 64, student_scores)
    baseline = model_entry(
        "clip",
        "transformers-dual-encoder",
        "d" * 64,
        [record("xtd_i2t", "en", None, 0.25), record("maxm_v1_vqa", "fr", None, 0.5)],
    )
    return results_document([teacher, student, baseline], "data/mmmeb", {"xtd_i2t/en": "abc"}, ["plain", "punct"])


def test_averages_by_hand(document):
    # Cells (config, language) average the styles; every average is an unweighted mean of cells.
    # All values are dyadic fractions, exact in binary floating point, so equality is exact.
    avg = document["models"][0]["averages"]
    assert avg["per_config"] == {"maxm_v1_vqa": {"en": 0.5, "fr": 0.0}, "xtd_i2t": {"en": 0.75, "it": 0.25}}
    assert avg["per_task"] == {"i2t": 0.5, "vqa": 0.25}
    assert avg["per_language"] == {"en": 0.625, "fr": 0.0, "it": 0.25}
    assert avg["overall"] == 0.375
    assert avg["english"] == 0.625
    assert avg["non_english"] == 0.125
    assert avg["per_style"] == {"plain": 0.4375, "punct": 0.3125}
    assert avg["over_styles"] == ["plain", "punct"]
    # A baseline has one record per split (no style): its cells are those records.
    base = document["models"][2]["averages"]
    assert base["over_styles"] == [] and base["per_style"] == {}
    assert base["per_config"] == {"maxm_v1_vqa": {"fr": 0.5}, "xtd_i2t": {"en": 0.25}}
    assert document["ties"] == "pessimistic" and document["score_dtype"] == "float32"


def test_document_validates_and_schema_rejects_bad(document):
    validate(json.loads(json.dumps(document)))
    broken = json.loads(json.dumps(document))
    broken["models"][0]["scores"][0]["precision@1"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
    del broken["models"][0]["averages"]
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


def test_markdown_table(document):
    text = markdown_table(document)
    # Primary: one row per config and style, tie counts shown; a baseline's style is "–".
    assert "## MMMEB precision@1 (%) per formatting style (ties pessimistic, cosine scores in float32)" in text
    assert "| model | config | style | en | fr | it |" in text
    assert "| teacher | xtd_i2t | plain | 50.0 (t=2) | – | 25.0 |" in text
    assert "| teacher | xtd_i2t | punct | 100.0 | – | 25.0 |" in text
    assert "| clip | maxm_v1_vqa | – | – | 50.0 | – |" in text
    # Then the means over styles, labelled as such.
    assert "## Mean over styles plain, punct: precision@1 (%) per config" in text
    assert "| model | config | en | fr | it |" in text
    assert "| teacher | xtd_i2t | 75.0 | – | 25.0 |" in text
    assert "| teacher | 37.5 | 62.5 | 12.5 | 50.0 | 25.0 |" in text
    assert "| student | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 |" in text


def test_plot_is_a_valid_png(document, tmp_path):
    path = plot_results(document, tmp_path / "results.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 300 and img.height > 200


def test_model_index_entries(document):
    entries = model_index_entries(document, "teacher", dataset_id="org/MMMEB")
    assert all(isinstance(e, EvalResult) for e in entries)
    mean = {
        (e.dataset_config, e.dataset_split): e for e in entries if e.metric_type == "precision_at_1_mean_over_styles"
    }
    assert set(mean) == {("xtd_i2t", "en"), ("xtd_i2t", "it"), ("maxm_v1_vqa", "en"), ("maxm_v1_vqa", "fr")}
    assert mean[("xtd_i2t", "en")].metric_value == 75.0
    assert mean[("xtd_i2t", "en")].metric_name == "Precision@1 (mean over formatting styles)"
    by_cell = mean
    # The primary entries: one per config, language and style, named after the style.
    styled = {
        (e.dataset_config, e.dataset_split, e.metric_type): e.metric_value for e in entries if e not in mean.values()
    }
    assert len(styled) == len(SCORES)
    assert styled[("xtd_i2t", "en", "precision_at_1_plain")] == 50.0
    assert styled[("xtd_i2t", "en", "precision_at_1_punct")] == 100.0
    baseline = model_index_entries(document, "clip", dataset_id="org/MMMEB")
    assert [(e.dataset_config, e.metric_type, e.metric_name, e.metric_value) for e in baseline] == [
        ("xtd_i2t", "precision_at_1", "Precision@1", 25.0),
        ("maxm_v1_vqa", "precision_at_1", "Precision@1", 50.0),
    ]
    assert by_cell[("maxm_v1_vqa", "fr")].task_type == "visual-question-answering"
    assert {e.dataset_type for e in entries} == {"org/MMMEB"}
    with pytest.raises(ValueError, match="model 'nobody' not in results"):
        model_index_entries(document, "nobody")
