"""Translate MMEB-train rows (verb ``xvlm2vec translate``): batched, resumable, multi-process.

Each row of a subset (its first 10,000) is packed as one request
(``Question: ... Answer: ... [Answer: ...]``, see :mod:`dataset_builders.mmeb_train`), translated,
split on the target language's markers and journalled under its id:
``<output>/<subset>/<lang>/part-<rank>.jsonl``. A journal line is either
``{"id", "subset", "lang", "fields": {...}}``, ``{"id", "subset", "lang", "rejected": reason,
"output": ...}`` (a deterministic rejection: the output could not be split, was truncated, ...) or
``{"id", "subset", "lang", "failed": reason}`` (the translator raised: out of memory, a lost
device; transient). At the end of a run ``<output>/rejects.jsonl`` lists the final rejections and
``<output>/failures.jsonl`` the rows whose last attempt failed.
As released, the 20 translated subsets are the default (VisDial only when named), generation stops
at 2048 new tokens, and an output that reached that limit is rejected as ``truncated`` even when it
splits into the right number of parts (a cut translation is not a translation).

Resumable: a batch's lines go to the journal in one ``O_APPEND`` write followed by ``fsync``;
on start a partial last line (a kill mid-write) is cut off and every id already settled (a
translation or a rejection) is skipped, so a killed and restarted run ends with exactly the rows
of an uninterrupted one. Rows that only failed are translated again.
Processes split the remaining rows with ``accelerate.PartialState.split_between_processes``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple, Protocol

from accelerate import PartialState
from tqdm.auto import tqdm

from dataset_builders.mmeb_train import (
    MMEB_TRAIN_REVISION,
    ROWS_PER_SUBSET,
    TRANSLATED_SUBSETS,
    add_selection_arguments,
    check_local_subsets,
    default_targets,
    final_records,
    journal_path,
    language_markers,
    load_subset,
    pack_request,
    parse_response,
    read_journal,
    selected_subsets,
    translated_fields,
)
from dataset_builders.source import check_source, resolve_source
from modeling_xvlm2vec.languages import (
    Language,
    LanguageRegistry,
    load_languages,
    read_language_file,
    write_language_file,
)
from xvlm2vec_common.cli_arguments import language_codes, local_or_hub, positive_int, torch_device
from xvlm2vec_common.cli_errors import UsageError
from xvlm2vec_common.model_folder import check_remote_code, read_config
from xvlm2vec_common.safe_inputs import JsonlLine, RowError
from xvlm2vec_common.safe_outputs import check_writable

MADLAD_PREFIX = "<2{lang}> "
#: Generation limit of the release (MADLAD-400 3B, greedy).
MAX_NEW_TOKENS = 2048


class Translated(NamedTuple):
    """One translator output: the text, and whether generation stopped at the token limit."""

    text: str
    truncated: bool


class Translator(Protocol):
    """Anything that translates a batch of texts into ``lang``, one output per input.

    An output is a [`Translated`] (text + whether it hit the token limit) or, for a translator that has
    no token limit, a plain string (never truncated).
    """

    def translate(self, texts: Sequence[str], lang: str) -> list[Translated | str]:
        """Return the translations of ``texts`` into ``lang``."""
        ...


def output_text(output: Translated | str) -> Translated:
    """A translator output as (text, truncated); a plain string was not cut."""
    return Translated(output, False) if isinstance(output, str) else Translated(*output)


def hit_token_limit(new_tokens, stop_ids: set[int], max_new_tokens: int) -> list[bool]:
    """Per row of generated ids [B, T]: True when all ``max_new_tokens`` were generated without a stop token."""
    if new_tokens.shape[1] < max_new_tokens:
        return [False] * new_tokens.shape[0]
    return [not stop_ids.intersection(row.tolist()) for row in new_tokens]


def stop_token_ids(generation_config, tokenizer) -> set[int]:
    """Ids that end a generation: ``generation_config.eos_token_id`` (int or list), else the tokenizer's."""
    eos = getattr(generation_config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    return set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}


class Generated(NamedTuple):
    """One decoded sequence as token ids (without the decoder start, the stop token and padding), and whether
    generation stopped at the token limit."""

    ids: list[int]
    truncated: bool


class Seq2SeqEngine(Protocol):
    """An inference engine that decodes encoder-decoder inputs greedily: token ids in, [`Generated`] out."""

    def generate(self, input_ids: Sequence[Sequence[int]]) -> list[Generated]:
        """Greedy outputs of ``input_ids`` (one list of token ids per request, unpadded), one per request."""
        ...


def cut_at_stop(row: Sequence[int], stop_ids: set[int]) -> list[int]:
    """The ids of ``row`` before its first stop token (all of them when it has none)."""
    for index, token in enumerate(row):
        if token in stop_ids:
            return list(row[:index])
    return list(row)


class TransformersSeq2SeqEngine:
    """Greedy ``generate`` of a transformers encoder-decoder model on one right-padded batch."""

    def __init__(self, model, tokenizer, max_new_tokens: int = MAX_NEW_TOKENS) -> None:
        self.model, self.tokenizer, self.max_new_tokens = model, tokenizer, max_new_tokens
        self.stop_ids = stop_token_ids(model.generation_config, tokenizer)

    def generate(self, input_ids: Sequence[Sequence[int]]) -> list[Generated]:
        """Pad, generate (``do_sample=False``, ``max_new_tokens``) and flag outputs cut by the token limit."""
        import torch

        inputs = self.tokenizer.pad({"input_ids": [list(ids) for ids in input_ids]}, return_tensors="pt")
        inputs = inputs.to(self.model.device)
        with torch.no_grad():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new_tokens = output[:, 1:]  # after the decoder start token
        cut = hit_token_limit(new_tokens, self.stop_ids, self.max_new_tokens)
        return [Generated(cut_at_stop(row.tolist(), self.stop_ids), flag) for row, flag in zip(new_tokens, cut)]


class Seq2SeqTranslator:
    """An encoder-decoder MT model (MADLAD-400 style: ``<2xx> `` prefix on the input) run by a [`Seq2SeqEngine`].

    Tokenising and decoding are the model tokenizer's, whatever the engine, so engines that generate the same
    token ids give the same texts.
    """

    def __init__(self, engine: Seq2SeqEngine, tokenizer, prefix: str = MADLAD_PREFIX) -> None:
        self.engine, self.tokenizer, self.prefix = engine, tokenizer, prefix

    def generate(self, texts: Sequence[str], lang: str) -> list[Generated]:
        """The engine's token ids for ``prefix + text`` of every text."""
        encoded = self.tokenizer([self.prefix.format(lang=lang) + t for t in texts])["input_ids"]
        return self.engine.generate(encoded)

    def translate(self, texts: Sequence[str], lang: str) -> list[Translated]:
        """Generate greedily from ``prefix + text`` for every text; flag outputs cut by the token limit."""
        outputs = self.generate(texts, lang)
        decoded = self.tokenizer.batch_decode([out.ids for out in outputs], skip_special_tokens=True)
        return [Translated(text, out.truncated) for text, out in zip(decoded, outputs)]


class ChatTranslator:
    """A transformers chat (decoder-only) model prompted through its chat template."""

    PROMPT = (
        "Translate the following text from English to {language}. Translate the markers "
        "'Question:' and 'Answer:' too. Reply with the translation only.\n\n{text}"
    )

    def __init__(
        self, model, tokenizer, max_new_tokens: int = MAX_NEW_TOKENS, registry: LanguageRegistry | None = None
    ) -> None:
        self.model, self.tokenizer, self.max_new_tokens = model, tokenizer, max_new_tokens
        self.registry = registry or load_languages()
        self.tokenizer.padding_side = "left"

    def translate(self, texts: Sequence[str], lang: str) -> list[Translated]:
        """Generate greedily after each prompt; return only the new tokens, flagged when cut by the token limit."""
        import torch

        prompts = [
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": self.PROMPT.format(language=self.registry.name(lang), text=t)}],
                tokenize=False,
                add_generation_prompt=True,
            )
            for t in texts
        ]
        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.model.device)
        with torch.no_grad():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        stop_ids = stop_token_ids(self.model.generation_config, self.tokenizer)
        cut = hit_token_limit(new_tokens, stop_ids, self.max_new_tokens)
        return [
            Translated(text, flag)
            for text, flag in zip(self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True), cut)
        ]


def translator_source(model_name_or_path: str, trust_remote_code: bool = False) -> tuple[str, bool]:
    """``--model`` as a folder or Hub id, and the ``trust_remote_code`` to load it with.

    Its ``config.json`` is read as JSON first (nothing imported): a model whose configs map to its
    own code is a UsageError unless ``trust_remote_code`` (the user's ``--trust-remote-code``).
    """
    config = read_config(model_name_or_path, "--model")
    return local_or_hub(model_name_or_path, "--model"), check_remote_code(
        model_name_or_path, config, "--model", trust_remote_code
    )


#: Translation engines of ``--engine``: transformers' ``generate`` (the release's) or CTranslate2 (seq2seq only).
ENGINES = ("transformers", "ctranslate2")
#: ``--compute-type`` values: the engine's default (the model's float32 weights) or a lower precision.
COMPUTE_TYPES = ("default", "float32", "bfloat16", "float16", "int8", "int8_float32", "int8_bfloat16", "int8_float16")


@dataclass
class EngineOptions:
    """How ``xvlm2vec translate`` runs the model: the engine, its precision, and CTranslate2's conversion cache."""

    engine: str = "transformers"
    compute_type: str = "default"
    cache_dir: Path | None = None


def torch_dtype(compute_type: str):
    """The torch dtype the transformers engine loads weights in for ``compute_type`` (None: as saved)."""
    import torch

    dtypes = {"default": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if compute_type not in dtypes:
        raise UsageError(f"--compute-type {compute_type}: the transformers engine takes one of {sorted(dtypes)}")
    return dtypes[compute_type]


def load_translator(
    model_name_or_path: str,
    device: str | None = None,
    max_new_tokens: int = MAX_NEW_TOKENS,
    registry: LanguageRegistry | None = None,
    trust_remote_code: bool = False,
    options: EngineOptions | None = None,
) -> Translator:
    """Load a seq2seq (``config.is_encoder_decoder``) or chat model with transformers Auto classes
    (a chat model names the target language from ``registry``); ``trust_remote_code`` only as
    :func:`translator_source` returned it. ``options.engine="ctranslate2"`` decodes a seq2seq model with
    CTranslate2 instead (see :mod:`dataset_builders.ctranslate2_engine`); tokenising and decoding stay the same.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    options = options or EngineOptions()
    trust = {"trust_remote_code": trust_remote_code}
    config = AutoConfig.from_pretrained(model_name_or_path, **trust)
    tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, **trust)
    if options.engine == "ctranslate2":
        if not config.is_encoder_decoder:
            raise UsageError("--engine ctranslate2: translates with encoder-decoder (seq2seq) models only")
        from dataset_builders.ctranslate2_engine import load_engine

        engine = load_engine(
            model_name_or_path,
            tokenizer,
            config,
            device=device or "cpu",
            compute_type=options.compute_type,
            max_new_tokens=max_new_tokens,
            cache_root=options.cache_dir,
            trust_remote_code=trust_remote_code,
        )
        return Seq2SeqTranslator(engine, tokenizer)
    if options.engine != "transformers":
        raise UsageError(f"--engine {options.engine}: choose one of {', '.join(ENGINES)}")
    dtype = torch_dtype(options.compute_type)
    load = {**trust, **({"dtype": dtype} if dtype is not None else {})}
    if config.is_encoder_decoder:
        model = AutoModelForSeq2SeqLM.from_pretrained(model_name_or_path, **load).to(device or "cpu").eval()
        return Seq2SeqTranslator(TransformersSeq2SeqEngine(model, tokenizer, max_new_tokens), tokenizer)
    model = AutoModelForCausalLM.from_pretrained(model_name_or_path, **load)
    return ChatTranslator(
        model.to(device or "cpu").eval(), tokenizer, max_new_tokens=max_new_tokens, registry=registry
    )


def process_state() -> PartialState:
    """The accelerate process state; processes without an accelerator share work over gloo (CPU)."""
    import torch

    return PartialState(cpu=not torch.cuda.is_available())


def repair_journal(path: Path) -> None:
    """Cut a partial last line (left by a kill mid-write) so the journal ends on a full line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    with open(path, "r+b") as handle:
        handle.truncate(data.rfind(b"\n") + 1)


def append_lines(path: Path, records: list[dict]) -> None:
    """Append ``records`` as JSON lines in one ``O_APPEND`` write, then ``fsync``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)


def done_ids(output_dir: Path, subset: str, lang: str) -> set[int]:
    """Ids already settled (translated or rejected) for (``subset``, ``lang``) by any process."""
    for path in (output_dir / subset / lang).glob("part-*.jsonl"):
        repair_journal(path)
    return set(final_records(output_dir, subset, lang))


def translate_batch(
    translator: Translator, rows: list[tuple[int, dict]], subset: str, lang: str | Language
) -> list[dict]:
    """Translate and parse one batch (split on ``lang``'s markers); a failed request becomes a rejected record, never
    a loss.
    """
    entry = lang if isinstance(lang, Language) else load_languages().get(lang)
    lang = entry.code
    fields = translated_fields(subset)
    packed = [pack_request(row, fields) for _, row in rows]
    base = [{"id": row_id, "subset": subset, "lang": lang} for row_id, _ in rows]
    try:
        outputs = translator.translate([request for request, _ in packed], lang)
        if len(outputs) != len(rows):
            raise RuntimeError(f"translator returned {len(outputs)} outputs for {len(rows)} inputs")
    except Exception as err:  # a model failure is journalled as transient (retried on restart); the run goes on
        return [{**b, "failed": f"translator_error: {err}"} for b in base]
    records = []
    for record, output, (_, tagged) in zip(base, outputs, packed):
        text, truncated = output_text(output)
        try:
            if truncated:
                raise RowError("truncated", "the output reached the token limit (max_new_tokens)")
            records.append({**record, "fields": parse_response(text, entry, fields, tagged)})
        except RowError as err:
            records.append({**record, "rejected": err.reason, "output": text})
    return records


#: ``--batch-order`` values (see :func:`translate_subset`).
BATCH_ORDERS = ("rows", "length")


def batch_order(ids: list[int], rows: list[dict], subset: str, order: str) -> list[int]:
    """``ids`` in row order, or by the length of their packed request (ties in row order) for ``"length"``."""
    if order == "rows":
        return list(ids)
    if order != "length":
        raise ValueError(f"unknown batch order {order!r}: one of {BATCH_ORDERS}")
    fields = translated_fields(subset)
    return sorted(ids, key=lambda row_id: (len(pack_request(rows[row_id], fields)[0]), row_id))


def translate_subset(
    translator: Translator,
    rows: list[dict],
    subset: str,
    lang: str | Language,
    output_dir: str | Path,
    batch_size: int = 8,
    state: PartialState | None = None,
    order: str = "rows",
) -> int:
    """Translate the rows of ``subset`` not yet journalled into ``lang`` (an entry, or a code of the
    shipped registry); return how many this process wrote.

    ``order="rows"`` (the release's) batches a process's rows in row order; ``"length"`` batches them
    by packed-request length (shortest first), so a batch pads little. Either way each row's journal line is the
    same; only which rows share a batch changes.
    """
    entry = lang if isinstance(lang, Language) else load_languages().get(lang)
    lang = entry.code
    output_dir = Path(output_dir)
    state = state or process_state()
    pending = sorted(set(range(len(rows))) - done_ids(output_dir, subset, lang))
    state.wait_for_everyone()
    journal = journal_path(output_dir, subset, lang, state.process_index)
    written = 0
    with state.split_between_processes(pending) as mine:
        mine = batch_order(mine, rows, subset, order)
        bar = tqdm(
            total=len(mine),
            desc=f"{subset} -> {lang}",
            disable=not state.is_main_process or os.environ.get("TQDM_DISABLE") == "1",
        )
        for start in range(0, len(mine), batch_size):
            batch = [(row_id, rows[row_id]) for row_id in mine[start : start + batch_size]]
            append_lines(journal, translate_batch(translator, batch, subset, entry))
            written += len(batch)
            bar.update(len(batch))
        bar.close()
    state.wait_for_everyone()
    return written


class MarkerError(ValueError):
    """A language's translation markers are missing and cannot be translated and cached."""


def translate_markers(translator: Translator, lang: str) -> tuple[str, str]:
    """The ``Question``/``Answer`` markers of ``lang``, translated by ``translator`` itself (the model that
    will translate the packed requests, so its output uses the same words).

    Raises :class:`MarkerError` when the outputs are not two different single-line words or phrases.
    """
    english = language_markers("en")
    outputs = [output_text(output) for output in translator.translate([f"{word}:" for word in english], lang)]
    markers = tuple(text.strip().rstrip(":：").strip() for text, _ in outputs)
    if (
        len(markers) != 2
        or not all(markers)
        or markers[0] == markers[1]
        or any(cut for _, cut in outputs)
        or any(c in marker for marker in markers for c in ":：\n")
        or max(map(len, markers)) > 40
    ):
        raise MarkerError(
            f"language {lang!r}: the model translated the markers {english} to "
            f"{[text for text, _ in outputs]!r}, which cannot "
            'split a request; write {"question": ..., "answer": ...} markers into the language file'
        )
    return markers  # type: ignore[return-value]


def ensure_markers(
    translator: Translator,
    registry: LanguageRegistry,
    languages: Sequence[str],
    languages_file: Path | None,
    write: bool = True,
) -> LanguageRegistry:
    """``registry`` with markers for every language in ``languages``: the missing ones are translated
    once with ``translator`` and cached in ``languages_file`` (written when ``write``), so every later
    run reads them back (and a person may correct them there)."""
    missing = [lang for lang in languages if registry.get(lang).markers is None]
    if not missing:
        return registry
    if languages_file is None:
        raise MarkerError(
            f"language(s) {missing} have no translation markers: give --languages-file FILE to translate "
            "them once with this model and cache them there"
        )
    entries = read_language_file(languages_file) if languages_file.is_file() else {}
    for lang in missing:
        entries[lang] = replace(entries.get(lang) or Language(lang), markers=translate_markers(translator, lang))
    if write:
        write_language_file(languages_file, entries.values())
    return registry.with_entries({lang: entries[lang] for lang in missing})


@dataclass
class JournalReport:
    """Rows of a journal that are finally rejected, and rows whose last attempt failed (to retry)."""

    rejected: int
    failed: int


def reason_name(record: dict) -> str:
    """The reason of a rejected or failed journal record without its detail (``truncated``, ``translator_error``)."""
    return str(record.get("rejected") or record.get("failed")).split(":", 1)[0].strip()


def write_rejects(output_dir: str | Path, subsets: Sequence[str], languages: Sequence[str]) -> JournalReport:
    """Write ``rejects.jsonl`` (final rejections) and ``failures.jsonl`` (unsettled failed rows); count both."""
    rejects, failures = [], []
    for subset in subsets:
        for lang in languages:
            final = final_records(output_dir, subset, lang)
            rejects += [record for record in final.values() if record.get("rejected")]
            last_failure = {}
            for item in read_journal(output_dir, subset, lang):
                if isinstance(item, JsonlLine) and "failed" in item.record and int(item.record["id"]) not in final:
                    last_failure[int(item.record["id"])] = item.record
            failures += [last_failure[row_id] for row_id in sorted(last_failure)]
    for name, records in (("rejects.jsonl", rejects), ("failures.jsonl", failures)):
        path = Path(output_dir) / name
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return JournalReport(rejected=len(rejects), failed=len(failures))


def translate_mmeb_train(
    translator: Translator,
    source: str | Path,
    output_dir: str | Path,
    languages: Sequence[str] | None = None,
    subsets: Sequence[str] = TRANSLATED_SUBSETS,
    rows_per_subset: int = ROWS_PER_SUBSET,
    batch_size: int = 8,
    revision: str | None = MMEB_TRAIN_REVISION,
    split: str = "train",
    registry: LanguageRegistry | None = None,
    languages_file: Path | None = None,
    order: str = "rows",
) -> dict[str, int]:
    """Translate every subset into every language (default: the release's, :func:`default_targets`);
    return rows journalled per ``subset/lang``.

    Each language's markers come from ``registry`` (default: the shipped languages); missing ones
    are translated first and cached in ``languages_file`` (see :func:`ensure_markers`).
    """
    languages = default_targets() if languages is None else languages
    folder = resolve_source(source, revision)
    state = process_state()
    registry = ensure_markers(
        translator, registry or load_languages(), languages, languages_file, write=state.is_main_process
    )
    check_local_subsets(folder, subsets)
    counts = {}
    for subset in subsets:
        rows = load_subset(folder, subset, split, rows_per_subset)
        for lang in languages:
            counts[f"{subset}/{lang}"] = translate_subset(
                translator, rows, subset, registry.get(lang), output_dir, batch_size, state, order
            )
    if state.is_main_process:
        write_rejects(output_dir, subsets, languages)
    return counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``xvlm2vec translate``."""
    parser.add_argument(
        "--model", required=True, help="seq2seq or chat model (Hub id or folder), e.g. google/madlad400-3b-mt"
    )
    parser.add_argument("--source", required=True, help="MMEB-train as a Hub-layout folder or Hub repo id")
    parser.add_argument(
        "--revision",
        default=MMEB_TRAIN_REVISION,
        help="revision of a Hub --source (default: the release's pinned MMEB-train revision)",
    )
    parser.add_argument("--output-dir", required=True, type=Path, help="journal folder (resumable)")
    add_selection_arguments(parser)
    parser.add_argument("--batch-size", type=positive_int, default=8, help="requests per generate call")
    parser.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=MAX_NEW_TOKENS,
        help="generation length limit; an output that reaches it is rejected as truncated",
    )
    parser.add_argument(
        "--device", type=torch_device, default=None, help="torch device (default: this process's accelerator device)"
    )
    add_engine_arguments(parser)
    add_trust_argument(parser)


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """``--engine``, ``--compute-type``, ``--engine-cache-dir`` and ``--batch-order`` of ``xvlm2vec translate``."""
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="transformers",
        help="transformers generate (default, as released) or CTranslate2 (optional extra `ctranslate2`; "
        "seq2seq models; the model is converted once and cached); greedy outputs and the journal are the same, "
        "so a run may resume with the other engine",
    )
    parser.add_argument(
        "--compute-type",
        choices=COMPUTE_TYPES,
        default="default",
        help="precision: default (as saved), float32, bfloat16, float16; ctranslate2 also int8, int8_float32, "
        "int8_bfloat16, int8_float16 (where the device supports them)",
    )
    parser.add_argument(
        "--engine-cache-dir",
        type=Path,
        default=None,
        help="where CTranslate2 conversions are cached, keyed by the model files' SHA-256 "
        "(default: $XDG_CACHE_HOME/xvlm2vec/ctranslate2)",
    )
    parser.add_argument(
        "--batch-order",
        choices=BATCH_ORDERS,
        default=None,
        help="rows: batches in row order (the transformers engine's default, as released); length: rows of "
        "similar packed length share a batch (ctranslate2's default); outputs per row are the same",
    )


def add_trust_argument(parser: argparse.ArgumentParser) -> None:
    """``--trust-remote-code`` of the commands that load a translation model."""
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow code that comes with the --model folder/repo (its auto_map) to run; "
        "only for code you have read or trust",
    )


def run(args: argparse.Namespace) -> int:
    """Load the model, translate, print per-subset counts and the rejections and failures per reason."""
    state = process_state()
    languages = language_codes(args.languages)
    if "en" in languages or not languages:
        raise UsageError("--languages: give target language codes other than en")
    subsets = selected_subsets(args.subsets)
    check_source(args.source)
    model, trust = translator_source(args.model, args.trust_remote_code)
    check_writable(args.output_dir, "--output-dir")
    known = args.languages_file is not None and args.languages_file.is_file()
    registry = load_languages(args.languages_file if known else None)
    translator = load_translator(
        model,
        device=args.device or str(state.device),
        max_new_tokens=args.max_new_tokens,
        registry=registry,
        trust_remote_code=trust,
        options=EngineOptions(args.engine, args.compute_type, args.engine_cache_dir),
    )
    order = args.batch_order or ("length" if args.engine == "ctranslate2" else "rows")
    try:
        counts = translate_mmeb_train(
            translator,
            args.source,
            args.output_dir,
            languages,
            subsets,
            args.rows_per_subset,
            args.batch_size,
            args.revision,
            args.split,
            registry=registry,
            languages_file=args.languages_file,
            order=order,
        )
    except MarkerError as err:
        raise UsageError(str(err)) from err
    if state.is_main_process:
        for key, count in counts.items():
            print(f"{key:<32}{count:>8} rows translated this run")
        for name, meaning in (
            ("rejects.jsonl", "rejected (final)"),
            ("failures.jsonl", "failed (retried on the next run)"),
        ):
            path = Path(args.output_dir) / name
            with open(path, encoding="utf-8") as handle:
                reasons = Counter(reason_name(json.loads(line)) for line in handle)
            by_reason = ", ".join(f"{reason}: {count}" for reason, count in sorted(reasons.items()))
            print(f"{meaning}: {sum(reasons.values())}{f' ({by_reason})' if reasons else ''} (see {path})")
    return 0
