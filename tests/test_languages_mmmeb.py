"""MMMEB in any language: an XM3600-style source with its 36 languages builds one split per language,
and the dataset card stays readable (one row per language)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from dataset_builders.mmmeb import build_mmmeb

# the 36 languages of Crossmodal-3600
XM3600_LANGUAGES = (
    "ar bn cs da de el en es fa fi fil fr he hi hr hu id it ja ko mi nl no pl pt quz ro ru sv sw te th tr uk vi zh"
).split()


@pytest.fixture(scope="module")
def xm36(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """An XM3600-style release: i2t and t2i files in 36 languages (2 queries each, 3 candidates), built."""
    root = tmp_path_factory.mktemp("xm36")
    release = root / "release"
    (release / "xm_images").mkdir(parents=True)
    colours = ["red", "green", "blue"]
    for colour in colours:
        Image.new("RGB", (8, 8), colour).save(release / "xm_images" / f"{colour}.jpg")
    for lang in XM3600_LANGUAGES:
        captions = [f"{lang} {colour}" for colour in colours]
        with open(release / f"xm_{lang}_1000_formatted_i2t.jsonl", "w", encoding="utf-8") as handle:
            for i in range(2):
                handle.write(json.dumps({"img": colours[i], "captions": captions[i:] + captions[:i]}) + "\n")
        with open(release / f"xm_{lang}_1000_formatted_t2i.jsonl", "w", encoding="utf-8") as handle:
            for i in range(2):
                handle.write(json.dumps({"text": captions[i], "images": colours[i:] + colours[:i]}) + "\n")
    # a file that follows the pattern around something that is not a language code is not read
    (release / "xm_NOT A CODE_1000_formatted_i2t.jsonl").write_text('{"img": "red", "captions": ["x"]}\n')
    report = build_mmmeb(release, root / "out")
    return root / "out", report


def test_xm3600_style_source_builds_every_language(xm36) -> None:
    out, report = xm36
    assert report.passed and report.rows_rejected == 0
    assert report.split_rows == {f"xm_{task}/{lang}": 2 for task in ("i2t", "t2i") for lang in XM3600_LANGUAGES}
    assert report.unknown_files == ["xm_NOT A CODE_1000_formatted_i2t.jsonl"]  # reported, not read
    card = (out / "README.md").read_text(encoding="utf-8")
    for lang in ("fil", "quz", "sw", "zh"):
        assert f"- {lang}\n" in card  # the card's language metadata lists every split's language


def test_dataset_card_lists_many_languages_as_rows(xm36) -> None:
    from hub_cards.dataset_card import render_dataset_card

    out, _ = xm36
    text = str(render_dataset_card(out))
    table = text[text.index("## Configurations and sizes") : text.index("Load one configuration")]
    header = next(line for line in table.splitlines() if line.startswith("| "))
    assert header.count("|") <= 5  # language | xm_i2t | xm_t2i | total: columns per config, not per language
    assert "| `sw` | 2 | 2 | 4 |" in table and "| **total** | 72 | 72 | **144** |" in table


def _document(languages: list[str]) -> dict:
    from xvlm2vec_common.results_document import model_entry, results_document

    def scores(base: float) -> list[dict]:
        return [
            {
                "dataset": "xm",
                "task": task,
                "config": f"xm_{task}",
                "language": lang,
                "style": "plain",
                "num_queries": 2,
                "skipped_queries": 0,
                "ties_at_top": 0,
                "precision@1": base + 0.01 * i,
                "recall@5": 1.0,
                "recall@10": 1.0,
                "mrr": 0.5,
                "ndcg@10": 0.5,
            }
            for task in ("i2t", "t2i")
            for i, lang in enumerate(languages)
        ]

    models = [
        model_entry("teacher", "xvlm2vec", "f" * 64, scores(0.1)),
        model_entry("student", "xvlm2vec", "e" * 64, scores(0.5)),
    ]
    return results_document(models, "data", {}, ["plain"])


def test_plot_stays_readable_at_36_languages() -> None:
    import matplotlib.pyplot as plt

    from xvlm2vec.evaluation.plot import results_figure

    fig = results_figure(_document(XM3600_LANGUAGES))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_yticklabels() and ax.get_label() != "<colorbar>"]
    assert len(axes) == 3  # per-language bars + one heatmap per model
    for ax in axes:
        labels = [label for label in ax.get_yticklabels() if label.get_text()]
        assert sorted(label.get_text() for label in labels) == sorted(XM3600_LANGUAGES)
        boxes = sorted((label.get_window_extent(renderer) for label in labels), key=lambda box: box.y0)
        assert all(lower.y1 <= upper.y0 + 0.5 for lower, upper in zip(boxes, boxes[1:]))  # no two labels overlap
        assert all(fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1) for box in boxes)
    plt.close(fig)


def test_results_tables_give_many_languages_rows_and_average_each_language() -> None:
    from xvlm2vec_common.results_document import markdown_table

    text = markdown_table(_document(XM3600_LANGUAGES))
    widest = max(line.count("|") for line in text.splitlines())
    assert widest <= 7  # the averages table (model, overall, en, non-en, two tasks): never a column per language
    # a language's P@1 is base + 0.01 x its index in XM3600_LANGUAGES: sw is index 29, en index 6
    assert "| student | xm_i2t | sw | 79.0 |" in text
    assert "| teacher | sw | 39.0 | 39.0 |" in text  # mean over styles, one column per config
    per_language = text[text.index("## Per language") :]
    assert "| language | teacher | student |" in per_language and "| sw | 39.0 | 79.0 |" in per_language
    assert len([line for line in per_language.splitlines() if line.startswith("| ") and "language" not in line]) == 36
    # English vs the rest: en 0.16; the other 35 average 0.1 + 0.01 x (630 - 6) / 35 = 0.2783; overall 0.275
    assert "| teacher | 27.5 | 16.0 | 27.8 | 27.5 | 27.5 |" in text
