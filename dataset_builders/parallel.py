"""The parallel corpus: ``parallel_shuffled.jsonl`` + MMEB images, built into a Hub-layout folder.

Configs ``all`` and one per language present (``it``, ``es``, ``fr``, ``de``), splits ``train``
and ``dev`` (the last rows of the already seed-42-shuffled file are held out, the same rows in
every config). Columns: ``id, source_dataset, lang, text_en, text_lang, image``.

Released lines carry only ``id, text_en, text_lang, img_en, img_lang``; lines written by
:func:`dataset_builders.mmeb_train.reproduce_parallel_jsonl` add ``lang`` and
``source_dataset``. Without them a row gets ``lang="und"`` / ``source_dataset="unknown"``
(counted in the report's notes) and appears only in ``all``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from datasets import Features, Value
from datasets import Image as ImageFeature
from datasets.builder import Key

from dataset_builders.hub_layout import materialise
from dataset_builders.names import check_language
from dataset_builders.report import REPORT_FILENAME, BuildReport, ReportFragment
from dataset_builders.source import resolve_source
from xvlm2vec_common.cli_errors import UsageError
from xvlm2vec_common.row_checks import check_image_tags, check_text
from xvlm2vec_common.safe_inputs import ImageStore, RowError, check_relative_path, iter_jsonl
from xvlm2vec_common.safe_outputs import atomic_output_dir

RELEASE_FILENAME = "parallel_shuffled.jsonl"
UNDETERMINED = "und"
FEATURES = Features(
    {
        "id": Value("string"),
        "source_dataset": Value("string"),
        "lang": Value("string"),
        "text_en": Value("string"),
        "text_lang": Value("string"),
        "image": ImageFeature(),
    }
)
CARD_BODY = """
# xVLM2Vec parallel corpus

English / translated text pairs (optionally sharing an image) for self-knowledge distillation,
from MMEB-train translated with MADLAD-400 into it, es, fr, de. Configs `all` and one per
language; splits `train` and a held-out `dev`. Texts keep the image tag `<|image_1|>` where the
row has an image. Built by `xvlm2vec build parallel`; see `build_report.json`.
"""


def validate_line(record: dict) -> dict:
    """Check one release line; return the row to build (image as a path) or raise ``RowError``."""
    missing = [k for k in ("id", "text_en", "text_lang", "img_en", "img_lang") if k not in record]
    if missing:
        raise RowError("missing_field", f"missing field(s) {missing}")
    text_en, text_lang = check_text(record["text_en"], "text_en"), check_text(record["text_lang"], "text_lang")
    img_en, img_lang = (check_relative_path(img) if img else None for img in (record["img_en"], record["img_lang"]))
    if img_en and img_lang and img_en != img_lang:
        raise RowError("image_mismatch", f"img_en {img_en!r} differs from img_lang {img_lang!r}")
    image = img_en or img_lang
    check_image_tags(text_en, text_lang, bool(image))
    return {
        "id": str(record["id"]),
        "source_dataset": str(record.get("source_dataset") or "unknown"),
        "lang": check_language(record["lang"]) if record.get("lang") else UNDETERMINED,
        "text_en": text_en,
        "text_lang": text_lang,
        "image": image,
    }


def row_digest(row: dict) -> bytes:
    """A digest of a validated row's content (id, language, subset, texts, image): equal rows, equal digests."""
    fields = [row[key] for key in ("id", "lang", "source_dataset", "text_en", "text_lang", "image")]
    return hashlib.blake2b(json.dumps(fields, ensure_ascii=False).encode("utf-8"), digest_size=16).digest()


@dataclass
class ParallelConfig(datasets.BuilderConfig):
    """One corpus config: the intermediate shard files per split, language filter, image root."""

    shards: dict[str, list[str]] = field(default_factory=dict)
    lang: str | None = None
    image_root: str = ""
    report_dir: str | None = None


class ParallelCorpusBuilder(datasets.GeneratorBasedBuilder):
    """``datasets`` builder writing the parallel corpus; one instance per config."""

    BUILDER_CONFIG_CLASS = ParallelConfig
    VERSION = datasets.Version("1.0.0")

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(description="xVLM2Vec parallel corpus", features=FEATURES)

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"files": files, "split": split})
            for split, files in self.config.shards.items()
        ]

    def _generate_examples(self, files: list[str], split: str):
        store = ImageStore(self.config.image_root)
        fragment = ReportFragment()
        try:
            for path in files:
                shard = int(Path(path).stem.rsplit("-", 1)[1])
                with open(path, encoding="utf-8") as handle:
                    for index, line in enumerate(handle):
                        row = json.loads(line)
                        if self.config.lang is not None and row["lang"] != self.config.lang:
                            continue
                        fragment.rows_in += 1
                        try:
                            if row["image"]:
                                row["image"] = store.read_image(row["image"])
                        except RowError as err:
                            fragment.reject(err, f"{row['where']} (id {row['id']})")
                            continue
                        fragment.accept()
                        del row["where"]
                        yield Key(shard, index), row
        finally:
            if self.config.report_dir:
                fragment.save(self.config.report_dir)


def dev_size(num_rows: int, dev_fraction: float, max_dev_rows: int) -> int:
    """Rows held out for ``dev``: ``dev_fraction`` of the rows, at least 1 (when 2+ rows), at most ``max_dev_rows``."""
    if num_rows < 2:
        return 0
    return min(max_dev_rows, max(1, round(num_rows * dev_fraction)), num_rows - 1)


def hold_out_dev(rows: list[dict], dev_fraction: float, max_dev_rows: int) -> dict[str, list[dict]]:
    """Split rows (already shuffled) into ``train`` and ``dev``: the last rows of each language.

    Each language keeps :func:`dev_size` of its rows for ``dev``, so every language config has
    a dev split whenever it has two rows; file order is kept inside both splits.
    """
    by_lang: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_lang.setdefault(row["lang"], []).append(index)
    dev = {
        i
        for indices in by_lang.values()
        for i in indices[len(indices) - dev_size(len(indices), dev_fraction, max_dev_rows) :]
    }
    return {
        "train": [r for i, r in enumerate(rows) if i not in dev],
        "dev": [r for i, r in enumerate(rows) if i in dev],
    }


def _write_shards(rows: list[dict], folder: Path, num_shards: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(rows) // num_shards) if rows else 0
    paths = []
    for k in range(num_shards):
        path = folder / f"shard-{k:05d}.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            for row in rows[k * size : (k + 1) * size]:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        paths.append(str(path))
    return paths


def build_parallel(
    source: str | Path,
    output_dir: str | Path,
    images: str | Path | None = None,
    sample: int | None = None,
    max_rejects: int | None = None,
    revision: str | None = None,
    num_proc: int | None = None,
    dev_fraction: float = 0.01,
    max_dev_rows: int = 2000,
    upstream: ReportFragment | None = None,
    card_note: str | None = None,
    keep_release: bool = False,
) -> BuildReport:
    """Build the corpus from a folder (or Hub repo at ``revision``) holding ``parallel_shuffled.jsonl``.

    ``images`` is the MMEB image root (folder or zip; default: the source folder). ``upstream``
    carries the counts of an earlier stage (corpus reproduction) into the report, so rows in
    stays equal to rows out + rows rejected across the whole pipeline; ``card_note`` (provenance, such
    as the MMEB-train revision) is added to the dataset card. ``keep_release`` copies
    ``parallel_shuffled.jsonl`` into the output (a reproduced corpus is kept next to the build).

    The folder is written atomically (:func:`~xvlm2vec_common.safe_outputs.atomic_output_dir`): a
    failed build leaves an earlier one untouched, and a rebuild never keeps old configs. A line
    repeating an earlier line's content (same id, language, texts and image) is a ``duplicate_id``.
    """
    if upstream is not None and sample is not None:
        raise ValueError("sample cannot be combined with an upstream stage (the counts would not balance)")
    folder = resolve_source(source, revision, allow_patterns=[RELEASE_FILENAME])
    release = folder / RELEASE_FILENAME
    if not release.is_file():
        raise FileNotFoundError(f"--source {source}: {RELEASE_FILENAME} not found")
    if not release.resolve().is_relative_to(folder.resolve()):
        raise UsageError(f"--source {source}: {RELEASE_FILENAME} links outside the source folder; refusing to read it")
    image_root = Path(images) if images is not None else folder
    report = BuildReport("parallel", str(source), str(output_dir), max_rejects)
    report.list_source_files(folder, [release])
    shown = Path(output_dir) / RELEASE_FILENAME if keep_release else release
    prepass = ReportFragment()
    rows: list[dict] = []
    first_line: dict[bytes, int] = {}
    for item in iter_jsonl(release):
        if sample is not None and len(rows) >= sample:
            break
        prepass.rows_in += 1
        if isinstance(item, RowError):
            prepass.reject(item, f"{shown}:{item.line_no}")
            continue
        where = f"{shown}:{item.line_no}"
        try:
            row = validate_line(item.record)
            digest = row_digest(row)
            if digest in first_line:
                raise RowError(
                    "duplicate_id", f"line repeats line {first_line[digest]} (same id {row['id']!r} and content)"
                )
        except RowError as err:
            prepass.reject(err, where)
            continue
        first_line[digest] = item.line_no
        row["where"] = where
        rows.append(row)
    undetermined = sum(row["lang"] == UNDETERMINED for row in rows)
    if undetermined:
        report.notes.append(
            f"{undetermined} row(s) carry no language (release format): lang={UNDETERMINED!r}, only in 'all'"
        )
    splits = hold_out_dev(rows, dev_fraction, max_dev_rows)
    languages = sorted({row["lang"] for row in rows} - {UNDETERMINED})
    with (
        atomic_output_dir(output_dir, REPORT_FILENAME, inputs=(folder, image_root)) as staging,
        tempfile.TemporaryDirectory() as scratch,
    ):
        shards = {
            name: _write_shards(part, Path(scratch) / name, max(num_proc or 1, 1)) for name, part in splits.items()
        }
        report_dir = str(Path(scratch) / "reports")

        def make_builders(cache_dir: str) -> list[ParallelCorpusBuilder]:
            """One builder per config; only ``all`` reports (it sees every row)."""
            return [
                ParallelCorpusBuilder(
                    cache_dir=cache_dir,
                    dataset_name="parallel",
                    config_name=name,
                    shards=shards,
                    lang=None if name == "all" else name,
                    image_root=str(image_root),
                    report_dir=report_dir if name == "all" else None,
                )
                for name in ["all", *languages]
            ]

        card = {"pretty_name": "xVLM2Vec parallel corpus", "language": ["en", *languages], "license": "other"}
        body = CARD_BODY if card_note is None else f"{CARD_BODY.rstrip()}\n\n{card_note}\n"
        infos = materialise(make_builders, staging, card, body, num_proc=num_proc)
        built = ReportFragment.load_all(report_dir)
        for stage in (upstream, prepass, built):
            if stage is not None:
                report.add_rejects(stage)
        report.rows_in = upstream.rows_in if upstream is not None else prepass.rows_in
        report.rows_out = built.rows_out
        report.set_split_rows(infos)
        if keep_release:
            shutil.copyfile(release, staging / RELEASE_FILENAME)
        report.save(staging / REPORT_FILENAME)
    return report
