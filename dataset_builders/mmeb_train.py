"""The parallel corpus rules (as released; docs/datasets.md): MMEB-train subsets, request packing, marker
parsing, image-tag removal/restoration, pair cleaning and the seed-42 shuffle.

:func:`reproduce_parallel_jsonl` joins MMEB-train (English) with the journals written by
``xvlm2vec translate`` and writes ``parallel_shuffled.jsonl`` in the release line format (plus
``lang`` and ``source_dataset`` keys), which :func:`dataset_builders.parallel.build_parallel`
then turns into the Hub-layout corpus.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
from datasets import load_dataset

from dataset_builders.report import ReportFragment
from dataset_builders.source import resolve_source
from modeling_xvlm2vec.instructions import CANONICAL_IMAGE_TAG
from modeling_xvlm2vec.languages import Language, LanguageRegistry, load_languages
from xvlm2vec_common.cli_arguments import language_file_or_new, positive_int
from xvlm2vec_common.cli_errors import UsageError, one_line
from xvlm2vec_common.safe_inputs import JsonlLine, RowError, iter_jsonl

IMAGE_TAG = CANONICAL_IMAGE_TAG + "\n"
ROWS_PER_SUBSET = 10_000
SHUFFLE_SEED = 42
#: The Hub dataset the corpus is built from, and the revision the release read (``load_dataset(..., revision=...)``).
MMEB_TRAIN_REPO = "TIGER-Lab/MMEB-train"
MMEB_TRAIN_REVISION = "0c3f4b8"

MMEB_TRAIN_SUBSETS: tuple[str, ...] = (
    "A-OKVQA",
    "CIFAR_100",
    "CIRR",
    "FashionIQ",
    "ImageNet-A",
    "ImageNet-R",
    "ImageNet_1K",
    "MSCOCO",
    "MSCOCO_i2t",
    "MSCOCO_t2i",
    "N24News",
    "NIGHTS",
    "OK-VQA",
    "SUN397",
    "VOC2007",
    "VisDial",
    "Visual7W",
    "Visual7W-pointing",
    "VisualNews_i2t",
    "VisualNews_t2i",
    "WebQA",
)
#: The 20 subsets the release translated: every MMEB-train subset but VisDial (opt-in with ``--subsets``).
TRANSLATED_SUBSETS: tuple[str, ...] = tuple(s for s in MMEB_TRAIN_SUBSETS if s != "VisDial")
# Subsets whose negative text is translated too (packed as a second "Answer:").
SUBSETS_WITH_NEGATIVE = frozenset({"A-OKVQA", "N24News", "OK-VQA", "VisDial", "Visual7W", "Visual7W-pointing"})
# Fields that become parallel pairs, with the image column each pair shares.
PAIR_FIELDS: dict[str, str] = {"qry": "qry_image_path", "pos_text": "pos_image_path"}
#: The pair field whose drop drops the row's other pairs (the released builder skips the rest of the row).
QUERY_FIELD = "qry"

# Sentence-final marks of other scripts that stand for English's (full-width CJK, Arabic, Urdu,
# Devanagari, Armenian, Ethiopic, Greek): a translation ending in one of them already matches.
SCRIPT_FINAL_MARKS: dict[str, str] = {".": "。．｡।۔։።", "?": "？؟՞፧\u037e", "!": "！՜"}
# Bidirectional-text controls an MT model may leave at the end of a right-to-left sentence.
BIDI_CONTROLS = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def language_markers(lang: str | Language) -> tuple[str, str]:
    """The ``Question``/``Answer`` words of ``lang`` (an entry, or a code of the shipped registry)."""
    entry = lang if isinstance(lang, Language) else load_languages().get(lang)
    if entry.markers is None:
        raise ValueError(
            f"language {entry.code!r} has no translation markers: run `xvlm2vec translate` with "
            "--languages-file FILE to translate and cache them, or write them into the file"
        )
    return entry.markers


def default_targets() -> tuple[str, ...]:
    """The target languages of the release: every language of the shipped registry but English (it, es, fr, de)."""
    return tuple(code for code in load_languages().codes if code != "en")


def add_selection_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The MMEB-train selection options shared by ``xvlm2vec translate`` and ``xvlm2vec build parallel``."""
    parser.add_argument(
        "--languages",
        default=",".join(default_targets()),
        help="comma-separated target language codes (default: the shipped registry's, it,es,fr,de)",
    )
    parser.add_argument(
        "--languages-file",
        type=language_file_or_new,
        default=None,
        help="language file adding languages to the shipped registry (name, markers, punctuation); "
        "`xvlm2vec translate` caches translated markers in it",
    )
    parser.add_argument(
        "--subsets",
        default=",".join(TRANSLATED_SUBSETS),
        help="comma-separated MMEB-train subsets (default: the 20 the release translated; VisDial only when named)",
    )
    parser.add_argument(
        "--rows-per-subset", type=positive_int, default=ROWS_PER_SUBSET, help="first N rows of each subset"
    )
    parser.add_argument(
        "--split", default="train", help=f"MMEB-train split to read (train at revision {MMEB_TRAIN_REVISION})"
    )


def selected_subsets(text: str) -> list[str]:
    """The subsets of a comma-separated ``--subsets`` value; an unknown or empty selection is a UsageError."""
    subsets = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in subsets if s not in MMEB_TRAIN_SUBSETS]
    if unknown or not subsets:
        raise UsageError(
            f"--subsets {text!r}: {'unknown ' + str(unknown) if unknown else 'empty'}; "
            f"choose from {', '.join(MMEB_TRAIN_SUBSETS)}"
        )
    return subsets


def translated_fields(subset: str) -> list[str]:
    """The fields of ``subset`` packed into one translation request, in order."""
    return ["qry", "pos_text"] + (["neg_text"] if subset in SUBSETS_WITH_NEGATIVE else [])


def _end_with_punctuation(text: str) -> str:
    return text if text and text[-1] in string.punctuation else text + "."


def pack_request(row: dict, fields: list[str]) -> tuple[str, list[str]]:
    """Pack ``row`` as ``Question: <qry> Answer: <pos> [Answer: <neg>]``.

    Image tags and newlines are removed first and each part ends with punctuation. Returns
    the request and the fields that carried the image tag (restored by :func:`parse_response`).
    """
    question, answer = language_markers("en")
    tagged = [f for f in fields if IMAGE_TAG in (row.get(f) or "")]
    parts = []
    for i, name in enumerate(fields):
        clean = (row.get(name) or "").replace(IMAGE_TAG, "").replace("\n", "").strip()
        parts.append(f"{question if i == 0 else answer}: " + _end_with_punctuation(clean))
    return " ".join(parts), tagged


def parse_response(text: str, lang: str | Language, fields: list[str], tagged: list[str]) -> dict[str, str]:
    """Split a translation on ``lang``'s markers (each followed by ``:`` or the full-width ``：``) and
    restore the image tags.

    Raises ``RowError('part_count_mismatch')`` when the number of parts differs from ``fields``.
    """
    question, answer = language_markers(lang)
    pieces = re.split(f"((?:{re.escape(question)}|{re.escape(answer)})[:：])", text)
    parts = pieces[2::2]
    if len(parts) != len(fields):
        raise RowError("part_count_mismatch", f"expected {len(fields)} parts, got {len(parts)} in {text!r}")
    result = {}
    for name, part in zip(fields, parts):
        part = part.replace(answer, "").replace(answer.lower(), "").strip()
        result[name] = IMAGE_TAG + part if name in tagged else part
    return result


def clean_pair(text_en: str, text_lang: str, lang: Language | None = None) -> str:
    """Apply the cleaning rules to one pair; return the cleaned ``text_lang`` or raise ``RowError``.

    Rules, in order: (1) an empty side drops the pair (``empty_text``); (2) trailing punctuation
    of x is made to match English: removed when English has none; when English ends in a mark,
    x keeps a final mark that stands for it in its script (``。`` / ``？`` in ja and zh, ``؟`` and
    ``۔`` in ar and ur, the entry's ``punctuation``), else gains the language's mark (English's
    own unless the entry says otherwise; none for a script without one, e.g. th, which also
    loses a stray one); trailing bidirectional controls of a right-to-left text are dropped
    first; (3) a trailing newline is kept when English has one; (4) a pair whose English side has
    the image tag and whose x side lost it is dropped (``lost_image_tag``).
    """
    en_body = text_en[:-1] if text_en.endswith("\n") else text_en
    text_lang = text_lang.rstrip(BIDI_CONTROLS)
    if not en_body.strip() or not text_lang.strip():
        raise RowError("empty_text", "empty side in pair")
    own_marks = set(lang.punctuation.values()) - {""} if lang is not None else set()
    marks = set(string.punctuation) | set("".join(SCRIPT_FINAL_MARKS.values())) | own_marks
    if en_body[-1] not in string.punctuation and text_lang[-1] in marks:
        text_lang = text_lang[:-1]
    if en_body[-1] in string.punctuation:
        mark = en_body[-1]
        target = lang.final_mark(mark) if lang is not None else mark
        equivalent = {mark, target, *SCRIPT_FINAL_MARKS.get(mark, "")} - {""}
        if not target and text_lang[-1] in equivalent:
            text_lang = text_lang[:-1]
        elif target and text_lang[-1] not in equivalent:
            text_lang += target
    if text_en.endswith("\n") and not text_lang.endswith("\n"):
        text_lang += "\n"
    if IMAGE_TAG in text_en and IMAGE_TAG not in text_lang:
        raise RowError("lost_image_tag", "English side has the image tag, translation lost it")
    return text_lang


def check_local_subsets(source: str | Path, subsets: list[str] | tuple[str, ...], argument: str = "--source") -> None:
    """Raise ``UsageError`` when the local folder ``source`` is not MMEB-train: a chosen subset is not one of its
    configs. Hub ids are not checked here (they are read at a pinned revision)."""
    if not Path(source).is_dir():
        return
    try:
        configs = set(datasets.get_dataset_config_names(str(source)))
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(f"{argument} {source}: not an MMEB-train folder ({one_line(error)})") from None
    missing = [subset for subset in subsets if subset not in configs]
    if missing:
        raise UsageError(
            f"{argument} {source}: not an MMEB-train folder with the subset(s) {missing[:5]} "
            f"(its configs: {sorted(configs)[:5]})"
        )


def load_subset(source: Path, subset: str, split: str = "train", limit: int = ROWS_PER_SUBSET) -> list[dict]:
    """The first ``limit`` rows of an MMEB-train subset from a Hub-layout folder."""
    dataset = load_dataset(str(source), subset, split=split)
    return dataset.select(range(min(limit, len(dataset)))).to_list()


def journal_path(translations_dir: str | Path, subset: str, lang: str, rank: int) -> Path:
    """Journal file of one translation process (``xvlm2vec translate`` writes, the builder reads)."""
    return Path(translations_dir) / subset / lang / f"part-{rank:05d}.jsonl"


def read_journal(translations_dir: str | Path, subset: str, lang: str) -> Iterator[JsonlLine | RowError]:
    """Every journal record of (``subset``, ``lang``), all processes together."""
    for path in sorted((Path(translations_dir) / subset / lang).glob("part-*.jsonl")):
        yield from iter_jsonl(path)


def is_final(record: dict) -> bool:
    """Whether a journal record settles its row: a translation or a deterministic rejection.

    A ``failed`` record (the translator raised: out of memory, a lost device, ...) is transient:
    the row is translated again on the next run.
    """
    return "fields" in record or bool(record.get("rejected"))


def final_records(translations_dir: str | Path, subset: str, lang: str) -> dict[int, dict]:
    """The first final journal record of every settled row of (``subset``, ``lang``), by row id."""
    found: dict[int, dict] = {}
    for item in read_journal(translations_dir, subset, lang):
        if isinstance(item, JsonlLine) and is_final(item.record):
            found.setdefault(int(item.record["id"]), item.record)
    return found


@dataclass
class ReproduceResult:
    """What :func:`reproduce_parallel_jsonl` wrote and the counts of its pairs."""

    path: Path
    fragment: ReportFragment
    source: str
    revision: str | None

    def card_note(self) -> str:
        """The card line recording which MMEB-train (and revision) the corpus was joined from."""
        where = f"`{self.source}`" if not Path(self.source).exists() else f"a local copy (`{Path(self.source).name}`)"
        return f"Joined from MMEB-train, {where} at revision `{self.revision or 'unpinned'}`."


def translation_reject_reason(record: dict) -> str:
    """Report reason of a rejected journal record: ``translation_`` + its reason name
    (``translation_truncated``...).
    """
    return "translation_" + str(record["rejected"]).split(":", 1)[0].strip()


def reproduce_parallel_jsonl(
    mmeb_train: str | Path,
    translations_dir: str | Path,
    output_path: str | Path,
    languages: tuple[str, ...] | None = None,
    subsets: tuple[str, ...] = TRANSLATED_SUBSETS,
    rows_per_subset: int = ROWS_PER_SUBSET,
    revision: str | None = MMEB_TRAIN_REVISION,
    split: str = "train",
    registry: LanguageRegistry | None = None,
) -> ReproduceResult:
    """Join English MMEB-train rows with their translations into ``parallel_shuffled.jsonl``.

    Every (row, pair field, language) is one input: it ends as a line, or as a counted
    rejection (``translation_missing``, ``translation_<reason>`` for a rejected translation such as
    ``translation_truncated``, or a cleaning rule). As released, a row whose query pair is dropped
    loses its positive pair too (``query_pair_dropped``).
    ``registry`` gives each language's punctuation for the cleaning rules (default: the shipped languages).
    """
    registry = registry or load_languages()
    languages = default_targets() if languages is None else languages
    source = resolve_source(mmeb_train, revision)
    fragment = ReportFragment()
    lines: list[dict] = []
    for subset in subsets:
        english = load_subset(source, subset, split, rows_per_subset)
        for lang in languages:
            entry = registry.get(lang)
            translated = final_records(translations_dir, subset, lang)
            for row_id, row in enumerate(english):
                record = translated.get(row_id)
                query_dropped = False
                for field_name, image_field in PAIR_FIELDS.items():
                    fragment.rows_in += 1
                    where = f"{subset}/{row_id}/{field_name}/{lang}"
                    try:
                        if record is None:
                            raise RowError(
                                "translation_missing", "no final translation journal record (rerun translate)"
                            )
                        if record.get("rejected"):
                            raise RowError(
                                translation_reject_reason(record), f"translation rejected: {record['rejected']}"
                            )
                        if query_dropped:
                            raise RowError("query_pair_dropped", "the row's query pair was dropped (released rule)")
                        text_lang = clean_pair(row[field_name] or "", record["fields"].get(field_name) or "", entry)
                    except RowError as err:
                        fragment.reject(err, where)
                        query_dropped = query_dropped or field_name == QUERY_FIELD
                        continue
                    image = row.get(image_field) or None
                    lines.append(
                        {
                            "id": where,
                            "text_en": row[field_name],
                            "text_lang": text_lang,
                            "img_en": image,
                            "img_lang": image,
                            "lang": lang,
                            "source_dataset": subset,
                        }
                    )
                    fragment.rows_out += 1
    random.Random(SHUFFLE_SEED).shuffle(lines)
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with open(output_path, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    return ReproduceResult(output_path, fragment, str(mmeb_train), revision)
