"""MMMEB results as plain data: the ``results.json`` document and its schema, the markdown tables,
and ``model-index`` entries for model cards.

Pure functions of data (score records in, a document, text or ``EvalResult`` entries out), so both
``xvlm2vec eval`` (which writes the document) and the model card (which reads it) use them from here,
below the evaluation in the layers.

The primary numbers are the score records, one per (dataset, task, language, style) as the
released evaluation reports them (baselines have no style: one per split). Each record also counts
the queries whose positive was tied at the top and the queries skipped (null text).

The averages are derived, and labelled as means over styles: a *cell* is one (config, language)
averaged over the formatting styles run (its single record for a baseline); per-task,
per-language, overall, English and non-English averages are unweighted means over cells.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import jsonschema
from huggingface_hub import EvalResult

from modeling_xvlm2vec.instructions import STYLES

SCHEMA_PATH = Path(__file__).with_name("results_schema.json")
SCHEMA_VERSION = 2
SCORE_DTYPE = "float32"
HEADLINE = "precision@1"
LANGUAGE_COLUMNS_MAX = 8  # more languages: tables give each language a row instead of a column
METRIC_KEYS = ("precision@1", "recall@5", "recall@10", "mrr", "ndcg@10")
TASK_TYPES = {
    "i2t": ("image-to-text", "Image-to-text retrieval"),
    "t2i": ("text-to-image", "Text-to-image retrieval"),
    "c": ("image-classification", "Image classification"),
    "vg": ("visual-grounding", "Visual grounding"),
    "vqa": ("visual-question-answering", "Visual question answering"),
}


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values))


def averages(scores: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over styles of precision@1 from one model's score records (``over_styles`` lists the styles averaged)."""
    by_cell: dict[tuple[str, str], list[float]] = defaultdict(list)
    by_style: dict[str, list[float]] = defaultdict(list)
    task_of = {}
    for record in scores:
        by_cell[(record["config"], record["language"])].append(record[HEADLINE])
        by_style[record["style"]].append(record[HEADLINE])
        task_of[record["config"]] = record["task"]
    cells = {key: _mean(values) for key, values in by_cell.items()}
    per_task: dict[str, list[float]] = defaultdict(list)
    per_language: dict[str, list[float]] = defaultdict(list)
    per_config: dict[str, dict[str, float]] = defaultdict(dict)
    for (config, lang), value in cells.items():
        per_task[task_of[config]].append(value)
        per_language[lang].append(value)
        per_config[config][lang] = value
    english = [value for (_, lang), value in cells.items() if lang == "en"]
    non_english = [value for (_, lang), value in cells.items() if lang != "en"]
    return {
        "metric": HEADLINE,
        "over_styles": sorted(style for style in by_style if style is not None),
        "overall": _mean(list(cells.values())),
        "english": _mean(english) if english else None,
        "non_english": _mean(non_english) if non_english else None,
        "per_task": {task: _mean(values) for task, values in sorted(per_task.items())},
        "per_language": {lang: _mean(values) for lang, values in sorted(per_language.items())},
        "per_style": {style: _mean(values) for style, values in sorted(by_style.items()) if style is not None},
        "per_config": {config: dict(sorted(langs.items())) for config, langs in sorted(per_config.items())},
    }


def model_entry(name: str, kind: str, fingerprint: str, scores: list[dict[str, Any]]) -> dict[str, Any]:
    """One model's block of ``results.json``."""
    return {"name": name, "kind": kind, "fingerprint": fingerprint, "scores": scores, "averages": averages(scores)}


def results_document(
    models: list[dict[str, Any]],
    data: str,
    data_fingerprints: dict[str, str],
    styles: list[str],
    ties: str = "pessimistic",
) -> dict[str, Any]:
    """The ``results.json`` document, validated against ``results_schema.json``.

    ``ties`` is the tie rule the scores used; cosine scores are computed in float32 (``score_dtype``).
    """
    document = {
        "schema_version": SCHEMA_VERSION,
        "benchmark": "MMMEB",
        "headline_metric": HEADLINE,
        "data": {"source": data, "fingerprints": dict(sorted(data_fingerprints.items()))},
        "styles": list(styles),
        "ties": ties,
        "score_dtype": SCORE_DTYPE,
        "models": models,
    }
    validate(document)
    return document


def validate(document: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``document`` does not follow the results schema."""
    jsonschema.validate(document, json.loads(SCHEMA_PATH.read_text()))


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _style_label(style: str | None) -> str:
    return "–" if style is None else style


def _style_rank(style: str | None) -> int:
    return -1 if style is None else STYLES.index(style)


def _language_order(models: list[dict[str, Any]]) -> list[str]:
    languages = {lang for m in models for lang in m["averages"]["per_language"]}
    return sorted(languages, key=lambda lang: (lang != "en", lang))


def _record_cell(record: dict | None) -> str:
    ties = f" (t={record['ties_at_top']})" if record and record["ties_at_top"] else ""
    return _percent(record[HEADLINE] if record else None) + ties


def _style_tables(models: list[dict[str, Any]], languages: list[str]) -> list[str]:
    """The primary numbers, one column per language (few languages) or per style (many: one row per language)."""
    cells: dict[tuple[str, str, str | None], dict[str, dict]] = defaultdict(dict)
    for model in models:
        for record in model["scores"]:
            cells[(model["name"], record["config"], record["style"])][record["language"]] = record
    order = sorted(cells, key=lambda key: ([m["name"] for m in models].index(key[0]), key[1], _style_rank(key[2])))
    if len(languages) <= LANGUAGE_COLUMNS_MAX:
        lines = [
            "| model | config | style | " + " | ".join(languages) + " |",
            "|---|---|---|" + "---|" * len(languages),
        ]
        for name, config, style in order:
            by_lang = cells[(name, config, style)]
            lines.append(
                f"| {name} | {config} | {_style_label(style)} | "
                + " | ".join(_record_cell(by_lang.get(lang)) for lang in languages)
                + " |"
            )
        return lines
    styles = sorted({key[2] for key in cells}, key=_style_rank)
    lines = [
        "| model | config | language | " + " | ".join(map(_style_label, styles)) + " |",
        "|---|---|---|" + "---|" * len(styles),
    ]
    for name, config in dict.fromkeys((name, config) for name, config, _ in order):
        for lang in languages:
            records = [cells.get((name, config, style), {}).get(lang) for style in styles]
            if any(records):
                lines.append(f"| {name} | {config} | {lang} | " + " | ".join(_record_cell(r) for r in records) + " |")
    return lines


def _mean_tables(models: list[dict[str, Any]], languages: list[str]) -> list[str]:
    """Means over styles per config, one column per language (few) or per config (many: one row per language)."""
    if len(languages) <= LANGUAGE_COLUMNS_MAX:
        lines = ["| model | config | " + " | ".join(languages) + " |", "|---|---|" + "---|" * len(languages)]
        for model in models:
            for config, by_lang in model["averages"]["per_config"].items():
                lines.append(
                    f"| {model['name']} | {config} | "
                    + " | ".join(_percent(by_lang.get(lang)) for lang in languages)
                    + " |"
                )
        return lines
    configs = sorted({config for m in models for config in m["averages"]["per_config"]})
    lines = ["| model | language | " + " | ".join(configs) + " |", "|---|---|" + "---|" * len(configs)]
    for model in models:
        for lang in languages:
            per_config = model["averages"]["per_config"]
            lines.append(
                f"| {model['name']} | {lang} | "
                + " | ".join(_percent(per_config.get(config, {}).get(lang)) for config in configs)
                + " |"
            )
    return lines


def markdown_table(document: dict[str, Any]) -> str:
    """Readable tables: precision@1 (%) per config, style and language (the primary numbers, with tie
    counts), then the means over styles per config and language, each model's averages (English vs
    the rest) and the per-language averages. Past :data:`LANGUAGE_COLUMNS_MAX` languages the tables
    give languages rows instead of columns, so they stay readable at XM3600's 36."""
    models = document["models"]
    languages = _language_order(models)
    tasks = sorted({task for m in models for task in m["averages"]["per_task"]})
    lines = [
        f"## MMMEB precision@1 (%) per formatting style (ties {document['ties']}, "
        f"cosine scores in {document['score_dtype']})",
        "",
        "`(t=N)`: N queries had the positive tied with another candidate at the top score. "
        "Style `–`: a baseline, run without instructions or styles.",
        "",
        *_style_tables(models, languages),
        "",
        f"## Mean over styles {', '.join(document['styles'])}: precision@1 (%) per config "
        "(derived, not a released number)",
        "",
        *_mean_tables(models, languages),
        "",
        "## Averages of the means over styles (precision@1, %)",
        "",
        "| model | overall | en | non-en | " + " | ".join(tasks) + " |",
        "|---|---|---|---|" + "---|" * len(tasks),
    ]
    for model in models:
        avg = model["averages"]
        row = [avg["overall"], avg["english"], avg["non_english"], *(avg["per_task"].get(task) for task in tasks)]
        lines.append(f"| {model['name']} | " + " | ".join(_percent(value) for value in row) + " |")
    lines += [
        "",
        "## Per language: mean over its configs (precision@1, %)",
        "",
        "| language | " + " | ".join(model["name"] for model in models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for lang in languages:
        lines.append(
            f"| {lang} | " + " | ".join(_percent(m["averages"]["per_language"].get(lang)) for m in models) + " |"
        )
    return "\n".join(lines) + "\n"


def model_index_entries(document: dict[str, Any], model_name: str, dataset_id: str | None = None) -> list[EvalResult]:
    """``model-index`` entries (``huggingface_hub.EvalResult``) of one model.

    One precision@1 entry per config, language and style (the primary numbers; named after the
    style), then one per config and language for the mean over styles, named as such.
    ``dataset_id`` is the Hub id of the MMMEB dataset (defaults to the data source of the run).
    """
    model = next((m for m in document["models"] if m["name"] == model_name), None)
    if model is None:
        raise ValueError(f"model {model_name!r} not in results (have {[m['name'] for m in document['models']]})")
    dataset_id = dataset_id or document["data"]["source"]

    def entry(config: str, lang: str, metric_type: str, metric_name: str, value: float) -> EvalResult:
        task_type, task_name = TASK_TYPES[config.rpartition("_")[2]]
        return EvalResult(
            task_type=task_type,
            task_name=task_name,
            dataset_type=dataset_id,
            dataset_name=f"MMMEB {config} ({lang})",
            dataset_config=config,
            dataset_split=lang,
            metric_type=metric_type,
            metric_name=metric_name,
            metric_value=round(100 * value, 2),
        )

    entries = []
    for record in model["scores"]:
        style = record["style"]
        name = "Precision@1" if style is None else f"Precision@1 ({style} style)"
        metric_type = "precision_at_1" if style is None else f"precision_at_1_{style}"
        entries.append(entry(record["config"], record["language"], metric_type, name, record[HEADLINE]))
    if model["averages"]["over_styles"]:
        for config, by_lang in model["averages"]["per_config"].items():
            for lang, value in by_lang.items():
                entries.append(
                    entry(
                        config,
                        lang,
                        "precision_at_1_mean_over_styles",
                        "Precision@1 (mean over formatting styles)",
                        value,
                    )
                )
    return entries
