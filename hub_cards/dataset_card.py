"""Dataset cards for MMMEB and the parallel corpus, filled from the folder's YAML and its build report.

The dataset builders write ``README.md`` with the YAML ``configs:`` and ``dataset_info`` that
``load_dataset`` reads; this module keeps that metadata as it is, adds the Hub metadata a reader
needs (task categories, size category, multilinguality, ...) where the builders left it out, and
writes the card body from ``templates/dataset_card.md``: sizes per split from the build report
(checked against ``dataset_info``), features, rejections, sources and licenses, citation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard

from hub_cards.templates_io import citation, read_template, template_path

REPORT_FILENAME = "build_report.json"  # the name dataset_builders.report writes next to the data
SPLIT_COLUMNS_MAX = 8  # more splits (languages) than this: one table row per split instead of one column
UNION_CONFIG = "all"  # the parallel corpus' config holding every language's rows
KINDS = ("mmmeb", "parallel")

# Hub metadata each kind adds when the builder's YAML does not already set the key.
KIND_METADATA: dict[str, dict[str, Any]] = {
    "mmmeb": {
        "pretty_name": "MMMEB",
        "task_categories": [
            "image-to-text",
            "text-to-image",
            "zero-shot-image-classification",
            "visual-question-answering",
        ],
        "multilinguality": "multilingual",
        "tags": ["multimodal", "embeddings", "benchmark", "retrieval", "xvlm2vec"],
    },
    "parallel": {
        "pretty_name": "xVLM2Vec parallel corpus",
        "task_categories": ["translation", "feature-extraction"],
        "multilinguality": "translation",
        "source_datasets": ["TIGER-Lab/MMEB-train"],
        "tags": ["multimodal", "parallel-corpus", "knowledge-distillation", "xvlm2vec"],
    },
}

# The Hub's size_categories buckets: (upper bound, label).
SIZE_BUCKETS = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
)


def size_category(rows: int) -> str:
    """The Hub ``size_categories`` label for ``rows`` examples."""
    for bound, label in SIZE_BUCKETS:
        if rows < bound:
            return label
    return "n>100M"


def _feature_type(feature: dict) -> str:
    """Readable type of one ``dataset_info`` feature entry (``dtype``, ``list``, nested ``struct``)."""
    if "dtype" in feature:
        return "Image" if feature["dtype"] == "image" else str(feature["dtype"])
    if "list" in feature:
        inner = feature["list"]
        inner_type = _feature_type(inner) if isinstance(inner, dict) else ("Image" if inner == "image" else str(inner))
        return f"list of {inner_type}"
    if "struct" in feature:
        return "struct(" + ", ".join(f"{f['name']}: {_feature_type(f)}" for f in feature["struct"]) + ")"
    return json.dumps(feature)


def _dataset_info(card_data: Any) -> dict[str, dict]:
    """``dataset_info`` of the card as ``{config: info}`` (one config may be written as a single dict)."""
    infos = card_data.get("dataset_info") or []
    if isinstance(infos, dict):
        infos = [infos]
    return {info.get("config_name", "default"): info for info in infos}


def load_report(path: str | Path) -> dict:
    """Read a build report written by ``dataset_builders`` (``ValueError`` naming the file when malformed)."""
    path = Path(path)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"build report {path}: cannot read it as JSON ({err})") from err
    for key in ("kind", "split_rows", "rows_in", "rows_out"):
        if key not in report:
            raise ValueError(f"build report {path}: missing field {key!r}")
    return report


def _split_sizes(report: dict, infos: dict[str, dict], report_path: Path) -> dict[str, dict[str, int]]:
    """``{config: {split: rows}}`` from the report, refused when it disagrees with ``dataset_info``."""
    sizes: dict[str, dict[str, int]] = {}
    for key, count in report["split_rows"].items():
        config, _, split = key.rpartition("/")
        if not config:
            raise ValueError(f"build report {report_path}: split_rows key {key!r} is not 'config/split'")
        sizes.setdefault(config, {})[split] = int(count)
    for config, info in infos.items():
        for split in info.get("splits", []):
            reported = sizes.get(config, {}).get(split["name"])
            if "num_examples" in split and reported != split["num_examples"]:
                raise ValueError(
                    f"build report {report_path} says {config}/{split['name']} has {reported} rows but the card's "
                    f"dataset_info says {split['num_examples']}: the report does not describe this folder"
                )
    return sizes


def render_dataset_card(
    dataset_dir: str | Path,
    build_report: str | Path | None = None,
    repo_id: str | None = None,
) -> DatasetCard:
    """Return the card of a Hub-layout dataset folder written by ``xvlm2vec build``.

    ``build_report`` defaults to ``dataset_dir/build_report.json``; its ``kind`` (``mmmeb`` or
    ``parallel``) picks the description. The folder's YAML (``configs``, ``dataset_info``, language,
    license) is kept; missing Hub metadata is added. ``repo_id`` appears in the usage snippet.
    """
    dataset_dir = Path(dataset_dir)
    report_path = Path(build_report) if build_report is not None else dataset_dir / REPORT_FILENAME
    report = load_report(report_path)
    kind = report["kind"]
    if kind not in KINDS:
        raise ValueError(f"build report {report_path}: kind {kind!r} has no card (expected one of {KINDS})")
    readme = dataset_dir / "README.md"
    if not readme.is_file():
        raise FileNotFoundError(f"{readme}: missing; the dataset builder writes it with the YAML configs")
    card_data = DatasetCard.load(readme, repo_type="dataset").data
    if not card_data.get("configs"):
        raise ValueError(f"{readme}: YAML has no configs; was this folder written by `xvlm2vec build`?")

    infos = _dataset_info(card_data)
    sizes = _split_sizes(report, infos, report_path)
    if report.get("passed") is False:
        raise ValueError(
            f"build report {report_path}: the build FAILED ({sum(report.get('rejected', {}).values())} rows rejected, "
            f"limit {report.get('max_rejects')}); fix the source or rebuild before publishing"
        )
    # A config named `all` is the union of the others (parallel corpus): it alone gives the dataset's size.
    union = sizes.get(UNION_CONFIG)
    rows_total = sum(union.values()) if union else sum(sum(by_split.values()) for by_split in sizes.values())
    for key, value in {**KIND_METADATA[kind], "size_categories": [size_category(rows_total)]}.items():
        if card_data.get(key) is None:
            card_data[key] = value

    split_names = sorted({split for by_split in sizes.values() for split in by_split})
    size_rows = [
        {"config": config, "sizes": by_split, "total": sum(by_split.values())}
        for config, by_split in sorted(sizes.items())
    ]
    feature_groups: list[dict] = []
    for config, info in sorted(infos.items()):
        features = [(f["name"], _feature_type(f)) for f in info.get("features", [])]
        same = next((g for g in feature_groups if g["features"] == features), None)
        if same is None:
            feature_groups.append({"configs": [config], "features": features})
        else:
            same["configs"].append(config)
    first_config = size_rows[0]["config"] if size_rows else card_data["configs"][0]["config_name"]
    return DatasetCard.from_template(
        card_data,
        template_path=str(template_path("dataset_card.md")),
        pretty_name=card_data.get("pretty_name"),
        about=read_template(f"{kind}_about.md").strip(),
        report_source=report.get("source", "?"),
        split_names=split_names,
        size_rows=size_rows,
        splits_as_rows=len(split_names) > SPLIT_COLUMNS_MAX,
        split_totals={s: sum(row["sizes"].get(s, 0) for row in size_rows) for s in split_names},
        rows_total=rows_total,
        has_union=union is not None,
        feature_groups=feature_groups,
        rows_in=report["rows_in"],
        rows_out=report["rows_out"],
        rows_rejected=sum(report.get("rejected", {}).values()),
        rejected=report.get("rejected", {}),
        notes=report.get("notes", []),
        repo_id=repo_id or f"<namespace>/{dataset_dir.name}",
        example_config=first_config,
        example_split=sorted(size_rows[0]["sizes"])[0] if size_rows else "train",
        citation=citation(),
    )
