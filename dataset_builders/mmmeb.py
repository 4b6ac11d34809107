"""MMMEB: the released jsonl files + images, built into a Hub-layout dataset folder.

Release files are ``{dataset}_{lang}_{card}_formatted_{task}.jsonl``; each line is one query with
its own candidate list whose first entry is the positive. The builder writes one config per
``{dataset}_{task}`` and one split per language, with the columns of docs/architecture.md and
images embedded in the parquet shards.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from datasets import Features, List, Value
from datasets import Image as ImageFeature
from datasets.builder import Key

from dataset_builders.hub_layout import materialise
from dataset_builders.report import REPORT_FILENAME, BuildReport, ReportFragment
from dataset_builders.source import resolve_source
from modeling_xvlm2vec.languages import check_code
from xvlm2vec_common.row_checks import check_text, split_name
from xvlm2vec_common.safe_inputs import ImageStore, JsonlLine, RowError, check_relative_path, iter_jsonl
from xvlm2vec_common.safe_outputs import atomic_output_dir


@dataclass(frozen=True)
class TaskSpec:
    """One MMMEB task: its release file name parts and which fields hold query and candidates.

    ``languages`` are the languages of the paper's release; the builder reads every language
    whose file follows the release name pattern (any language code).
    """

    dataset: str
    card: int
    task: str
    query_text_field: str | None
    query_image_field: str | None
    candidate_field: str
    image_candidates: bool
    languages: tuple[str, ...]

    @property
    def config_name(self) -> str:
        """The dataset config name, ``{dataset}_{task}``."""
        return f"{self.dataset}_{self.task}"

    def filename(self, lang: str) -> str:
        """The release file name for ``lang``."""
        return f"{self.dataset}_{lang}_{self.card}_formatted_{self.task}.jsonl"

    def language_of(self, filename: str) -> str | None:
        """The language code of a file named by the release pattern of this task, else ``None``."""
        prefix, suffix = f"{self.dataset}_", f"_{self.card}_formatted_{self.task}.jsonl"
        if not (filename.startswith(prefix) and filename.endswith(suffix)) or len(filename) <= len(prefix + suffix):
            return None
        try:
            return check_code(filename[len(prefix) : -len(suffix)])
        except ValueError:
            return None


# the languages the released files cover (vg and vqa: en and fr only)
RELEASED_LANGUAGES = ("en", "it", "es", "fr", "de")
TASKS: tuple[TaskSpec, ...] = (
    TaskSpec("xtd", 1000, "i2t", None, "img", "captions", False, RELEASED_LANGUAGES),
    TaskSpec("xtd", 1000, "t2i", "text", None, "images", True, RELEASED_LANGUAGES),
    TaskSpec("xm", 1000, "i2t", None, "img", "captions", False, RELEASED_LANGUAGES),
    TaskSpec("xm", 1000, "t2i", "text", None, "images", True, RELEASED_LANGUAGES),
    TaskSpec("imagenet-1k-val", 1000, "c", None, "img", "classes", False, RELEASED_LANGUAGES),
    TaskSpec("flickr30k_entities", 1000, "vg", "text", "img", "imgs", True, ("en", "fr")),
    TaskSpec("maxm_v1", 100, "vqa", "question", "img", "answers", False, ("en", "fr")),
)
TASKS_BY_CONFIG = {spec.config_name: spec for spec in TASKS}

FEATURES = Features(
    {
        "id": Value("string"),
        "query_text": Value("string"),
        "query_image": ImageFeature(),
        "candidate_texts": List(Value("string")),
        "candidate_images": List(ImageFeature()),
        "positive_index": Value("int32"),
    }
)

CARD_BODY = """
# MMMEB

Multilingual multimodal embedding benchmark (xVLM2Vec). One config per `{dataset}_{task}`, one
split per language. Each row is a query (`query_text` and/or `query_image`) with its own
candidates (`candidate_texts` or `candidate_images`); `positive_index` marks the positive
(0 in the release). Metric: precision@1. Built by `xvlm2vec build mmmeb`; see
`build_report.json` for rows in/out and rejections.
"""


def resolve_image_id(image_id: str, dataset: str) -> str:
    """Path of an MMMEB image id under the data root (the release's rule, docs/datasets.md).

    ``a/b.png`` -> ``a/b.png``; ``a/b`` -> ``a/b.jpg``; ``b.png`` -> ``{dataset}_images/b.png``;
    ``b`` -> ``{dataset}_images/b.jpg``.
    """
    has_dir = "/" in image_id
    has_ext = "." in Path(image_id).name
    path = image_id if has_dir else f"{dataset}_images/{image_id}"
    return path if has_ext else f"{path}.jpg"


def _check_distinct_files(image_ids: list[str], dataset: str) -> None:
    """Raise ``RowError('duplicate_candidates')`` when two ids (``a``, ``a.jpg``, ``xtd_images/a``) name one file."""
    first: dict[str, str] = {}
    for image_id in image_ids:
        path = check_relative_path(resolve_image_id(image_id, dataset))
        if path in first:
            raise RowError(
                "duplicate_candidates", f"candidates {first[path]!r} and {image_id!r} are one image ({path})"
            )
        first[path] = image_id


def parse_row(record: dict, spec: TaskSpec, store: ImageStore, row_id: str) -> dict:
    """Turn one release line into an example, or raise :class:`RowError`."""
    needed = [f for f in (spec.query_text_field, spec.query_image_field, spec.candidate_field) if f]
    missing = [name for name in needed if name not in record]
    if missing:
        raise RowError("missing_field", f"missing field(s) {missing}")
    candidates = record[spec.candidate_field]
    if not isinstance(candidates, list) or not candidates:
        raise RowError("empty_candidates", f"{spec.candidate_field!r} is empty or not a list")
    candidates = [check_text(c, f"candidate {i}") for i, c in enumerate(candidates)]
    if len(set(candidates)) != len(candidates):
        raise RowError("duplicate_candidates", f"{spec.candidate_field!r} lists the same candidate twice")
    if spec.image_candidates:
        _check_distinct_files(candidates, spec.dataset)
    # A null query text is kept as null: the evaluation skips that query, as the release does.
    raw_text = record[spec.query_text_field] if spec.query_text_field else None
    query_text = None if raw_text is None else check_text(raw_text, spec.query_text_field)
    query_image = None
    if spec.query_image_field:
        query_image = store.read_image(
            resolve_image_id(check_text(record[spec.query_image_field], "img"), spec.dataset)
        )
    images = [store.read_image(resolve_image_id(c, spec.dataset)) for c in candidates] if spec.image_candidates else []
    return {
        "id": row_id,
        "query_text": query_text,
        "query_image": query_image,
        "candidate_texts": [] if spec.image_candidates else candidates,
        "candidate_images": images,
        "positive_index": 0,
    }


@dataclass
class MMMEBConfig(datasets.BuilderConfig):
    """One MMMEB task config: release files per language, image root, sampling, report folder."""

    files: dict[str, str] = field(default_factory=dict)
    image_root: str = ""
    sample: int | None = None
    report_dir: str | None = None


class MMMEBBuilder(datasets.GeneratorBasedBuilder):
    """``datasets`` builder reading the MMMEB release; one instance per task config."""

    BUILDER_CONFIG_CLASS = MMMEBConfig
    VERSION = datasets.Version("1.0.0")

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(description="MMMEB multilingual multimodal embedding benchmark", features=FEATURES)

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        return [
            datasets.SplitGenerator(name=split_name(lang), gen_kwargs={"path": path, "lang": lang})
            for lang, path in sorted(self.config.files.items())
        ]

    def _generate_examples(self, path: str, lang: str):
        spec = TASKS_BY_CONFIG[self.config.name]
        store = ImageStore(self.config.image_root)
        fragment = ReportFragment()
        seen: set[str] = set()
        try:
            for item in iter_jsonl(Path(path)):
                if self.config.sample is not None and fragment.rows_out >= self.config.sample:
                    break
                fragment.rows_in += 1
                if isinstance(item, RowError):
                    fragment.reject(item, f"{path}:{item.line_no}")
                    continue
                assert isinstance(item, JsonlLine)
                where = f"{path}:{item.line_no}"
                row_id = str(item.record.get("id", f"{spec.config_name}-{lang}-{item.line_no}"))
                try:
                    if row_id in seen:
                        raise RowError("duplicate_id", f"id {row_id!r} appears twice")
                    example = parse_row(item.record, spec, store, row_id)
                except RowError as err:
                    fragment.reject(err, where)
                    continue
                seen.add(row_id)
                fragment.accept()
                yield Key(0, item.line_no), example
        finally:
            if self.config.report_dir:
                fragment.save(self.config.report_dir)


def find_release_files(folder: Path, outside: list[str] | None = None) -> dict[str, dict[str, str]]:
    """``{config: {lang: path}}`` for every release file present in ``folder``, any language code.

    A file that is a symlink resolving outside ``folder`` is never read: its name is added to ``outside``.
    """
    found: dict[str, dict[str, str]] = {}
    root = folder.resolve()
    for spec in TASKS:
        for path in sorted(folder.glob(f"{spec.dataset}_*_{spec.card}_formatted_{spec.task}.jsonl")):
            lang = spec.language_of(path.name)
            if lang is None or not path.is_file():
                continue
            if not path.resolve().is_relative_to(root):
                if outside is not None:
                    outside.append(path.name)
                continue
            found.setdefault(spec.config_name, {})[lang] = str(path)
    return found


def build_mmmeb(
    source: str | Path,
    output_dir: str | Path,
    images: str | Path | None = None,
    sample: int | None = None,
    max_rejects: int | None = 0,
    revision: str | None = None,
    num_proc: int | None = None,
) -> BuildReport:
    """Build MMMEB from a release folder (or Hub repo at ``revision``) into ``output_dir``.

    ``images`` is the image root (a folder or a zip archive; default: the source folder).
    Returns the build report, also saved as ``output_dir/build_report.json``. The folder is
    written atomically (:func:`~xvlm2vec_common.safe_outputs.atomic_output_dir`): a failed build
    leaves an earlier one untouched. ``*.jsonl`` files of the source that are not release files,
    and empty release files, are listed in the report.
    """
    folder = resolve_source(source, revision)
    outside: list[str] = []
    files = find_release_files(folder, outside)
    if not files:
        raise FileNotFoundError(f"--source {source}: no MMMEB release file (*_formatted_*.jsonl) found")
    image_root = Path(images) if images is not None else folder
    store = ImageStore(image_root)
    report = BuildReport("mmmeb", str(source), str(output_dir), max_rejects)
    report.list_source_files(folder, [Path(path) for per_lang in files.values() for path in per_lang.values()])
    if outside:
        report.notes.append(f"{len(outside)} release file(s) linking outside the source never read: {outside[:5]}")
    if store.unsafe_members:
        report.notes.append(
            f"{len(store.unsafe_members)} unsafe archive member(s) never read: {store.unsafe_members[:5]}"
        )
    with (
        atomic_output_dir(output_dir, REPORT_FILENAME, inputs=(folder, image_root)) as staging,
        tempfile.TemporaryDirectory() as report_dir,
    ):

        def make_builders(cache_dir: str) -> list[MMMEBBuilder]:
            """One builder per task config found in the release."""
            return [
                MMMEBBuilder(
                    cache_dir=cache_dir,
                    dataset_name="mmmeb",
                    config_name=name,
                    files=per_lang,
                    image_root=str(image_root),
                    sample=sample,
                    report_dir=report_dir,
                )
                for name, per_lang in files.items()
            ]

        languages = sorted({lang for f in files.values() for lang in f})
        card = {"pretty_name": "MMMEB", "language": languages, "license": "other"}
        infos = materialise(make_builders, staging, card, CARD_BODY, num_proc=num_proc)
        report.add(ReportFragment.load_all(report_dir))
        report.set_split_rows(infos)
        report.save(staging / REPORT_FILENAME)
    return report
