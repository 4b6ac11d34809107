"""MMMEB results: the paper's averages, the ``results.json`` document and its schema, the markdown
table, and ``model-index`` entries for model cards.

Averages use precision@1 (the headline). A *cell* is one (config, language) averaged over the
formatting styles run; per-task, per-language, overall, English and non-English averages are
unweighted means over cells.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import jsonschema
from huggingface_hub import EvalResult

SCHEMA_PATH = Path(__file__).with_name("results_schema.json")
SCHEMA_VERSION = 1
HEADLINE = "precision@1"
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
    """The paper's averages of precision@1 from one model's score records."""
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
        "overall": _mean(list(cells.values())),
        "english": _mean(english) if english else None,
        "non_english": _mean(non_english) if non_english else None,
        "per_task": {task: _mean(values) for task, values in sorted(per_task.items())},
        "per_language": {lang: _mean(values) for lang, values in sorted(per_language.items())},
        "per_style": {style: _mean(values) for style, values in sorted(by_style.items())},
        "per_config": {config: dict(sorted(langs.items())) for config, langs in sorted(per_config.items())},
    }


def model_entry(name: str, kind: str, fingerprint: str, scores: list[dict[str, Any]]) -> dict[str, Any]:
    """One model's block of ``results.json``."""
    return {"name": name, "kind": kind, "fingerprint": fingerprint, "scores": scores, "averages": averages(scores)}


def results_document(models: list[dict[str, Any]], data: str, data_fingerprints: dict[str, str], styles: list[str]) -> dict[str, Any]:
    """The ``results.json`` document, validated against ``results_schema.json``."""
    document = {
        "schema_version": SCHEMA_VERSION,
        "benchmark": "MMMEB",
        "headline_metric": HEADLINE,
        "data": {"source": data, "fingerprints": dict(sorted(data_fingerprints.items()))},
        "styles": list(styles),
        "models": models,
    }
    validate(document)
    return document


def validate(document: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``document`` does not follow the results schema."""
    jsonschema.validate(document, json.loads(SCHEMA_PATH.read_text()))


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def markdown_table(document: dict[str, Any]) -> str:
    """Readable tables: precision@1 (%) per config and language, then each model's averages."""
    models = document["models"]
    languages = sorted({lang for m in models for lang in m["averages"]["per_language"]}, key=lambda l: (l != "en", l))
    tasks = sorted({task for m in models for task in m["averages"]["per_task"]})
    lines = [
        f"## MMMEB precision@1 (%), averaged over styles {', '.join(document['styles'])}",
        "",
        "| model | config | " + " | ".join(languages) + " |",
        "|---|---|" + "---|" * len(languages),
    ]
    for model in models:
        for config, by_lang in model["averages"]["per_config"].items():
            lines.append(f"| {model['name']} | {config} | " + " | ".join(_percent(by_lang.get(lang)) for lang in languages) + " |")
    lines += [
        "",
        "## Averages (precision@1, %)",
        "",
        "| model | overall | en | non-en | " + " | ".join(tasks) + " |",
        "|---|---|---|---|" + "---|" * len(tasks),
    ]
    for model in models:
        avg = model["averages"]
        cells = [avg["overall"], avg["english"], avg["non_english"], *(avg["per_task"].get(task) for task in tasks)]
        lines.append(f"| {model['name']} | " + " | ".join(_percent(value) for value in cells) + " |")
    return "\n".join(lines) + "\n"


def model_index_entries(document: dict[str, Any], model_name: str, dataset_id: str | None = None) -> list[EvalResult]:
    """``model-index`` entries (``huggingface_hub.EvalResult``) of one model: precision@1 per config and language.

    ``dataset_id`` is the Hub id of the MMMEB dataset (defaults to the data source of the run).
    """
    model = next((m for m in document["models"] if m["name"] == model_name), None)
    if model is None:
        raise ValueError(f"model {model_name!r} not in results (have {[m['name'] for m in document['models']]})")
    dataset_id = dataset_id or document["data"]["source"]
    entries = []
    for config, by_lang in model["averages"]["per_config"].items():
        task = config.rpartition("_")[2]
        task_type, task_name = TASK_TYPES[task]
        for lang, value in by_lang.items():
            entries.append(
                EvalResult(
                    task_type=task_type,
                    task_name=task_name,
                    dataset_type=dataset_id,
                    dataset_name=f"MMMEB {config} ({lang})",
                    dataset_config=config,
                    dataset_split=lang,
                    metric_type="precision_at_1",
                    metric_name="Precision@1 (mean over formatting styles)",
                    metric_value=round(100 * value, 2),
                )
            )
    return entries
