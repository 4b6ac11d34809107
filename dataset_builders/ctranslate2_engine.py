"""The CTranslate2 engine of ``xvlm2vec translate --engine ctranslate2`` (optional extra ``ctranslate2``).

The transformers encoder-decoder model (a folder, or a Hub repo fetched into the Hub cache) is converted once
into a CTranslate2 model folder under a cache root, keyed by a SHA-256 over the model folder's files (weights,
configs, tokenizer, generation config) and the ctranslate2 and transformers versions: a changed file or
version gives a new conversion, never a stale one. The conversion is written into a temporary folder and
renamed into place, so a killed conversion leaves nothing that looks finished.

Decoding is greedy (``beam_size=1``) with the model's generation config mapped onto CTranslate2's options
(EOS ids, suppressed tokens, a forced EOS at the limit, repetition penalty, no-repeat n-grams); a
generation setting that CTranslate2 cannot honour is a UsageError instead of a silently different output.
Inputs are never truncated (``max_input_length=0``, as transformers' ``generate``). The weights are
quantised on load to ``compute_type`` (``default`` keeps the converted float32; ``int8``, ``bfloat16``,
``int8_bfloat16``, ... where the device supports them).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dataset_builders.translate import Generated, stop_token_ids
from xvlm2vec_common.cli_errors import UsageError

#: Bumped when the conversion's own settings change, so older conversions are not reused.
CONVERSION_FORMAT = 1
#: Generation-config fields that would make transformers decode differently and that this engine refuses.
_REFUSED = {
    "num_beams": 1,
    "min_length": 0,
    "min_new_tokens": None,
    "forced_bos_token_id": None,
    "begin_suppress_tokens": None,
    "bad_words_ids": None,
    "sequence_bias": None,
    "encoder_repetition_penalty": 1.0,
    "encoder_no_repeat_ngram_size": 0,
    "exponential_decay_length_penalty": None,
    "renormalize_logits": False,
}


def default_cache_root() -> Path:
    """``$XDG_CACHE_HOME/xvlm2vec/ctranslate2`` (``~/.cache/...`` when the variable is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "xvlm2vec" / "ctranslate2"


def local_model_folder(name_or_path: str) -> Path:
    """``name_or_path`` as a local folder: itself, or the Hub repo's snapshot in the Hub cache (downloaded once)."""
    if Path(name_or_path).is_dir():
        return Path(name_or_path)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name_or_path))


def folder_fingerprint(folder: Path) -> str:
    """SHA-256 over every file of ``folder`` (relative path and bytes, in path order), the ctranslate2 and
    transformers versions and :data:`CONVERSION_FORMAT`."""
    digest = hashlib.sha256()
    for name in ("ctranslate2", "transformers"):
        digest.update(f"{name}={importlib.metadata.version(name)}|".encode())
    digest.update(f"format={CONVERSION_FORMAT}|".encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.relative_to(folder).parts):
        digest.update(f"{path.relative_to(folder).as_posix()}|{path.stat().st_size}|".encode())
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()


def converted_model(folder: Path, cache_root: Path, trust_remote_code: bool = False) -> Path:
    """The CTranslate2 conversion of the transformers model ``folder`` under ``cache_root`` (converted on first use).

    The cache entry is ``<cache_root>/<fingerprint>``; it only exists once the conversion has finished.
    """
    from ctranslate2.converters import TransformersConverter

    target = cache_root / folder_fingerprint(folder)
    if (target / "model.bin").is_file():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=cache_root))
    try:
        converter = TransformersConverter(str(folder), trust_remote_code=trust_remote_code)
        converter.convert(str(staging / "model"), force=True)
        try:
            os.replace(staging / "model", target)
        except OSError:  # another process finished the same conversion first
            if not (target / "model.bin").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@dataclass
class DecodingSettings:
    """The model's generation config as CTranslate2 ``translate_batch`` options (greedy)."""

    stop_ids: list[int]
    suppress_ids: list[int] = field(default_factory=list)
    forced_eos: bool = False
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0

    @classmethod
    def from_generation_config(cls, config, stop_ids: set[int]) -> DecodingSettings:
        """Map a transformers ``GenerationConfig``; a setting this engine cannot reproduce is a UsageError."""
        refused = [
            f"{name}={getattr(config, name)!r}"
            for name, neutral in _REFUSED.items()
            if getattr(config, name, neutral) not in (neutral, None)
        ]
        if refused:
            raise UsageError(
                f"--engine ctranslate2: the model's generation config sets {', '.join(refused)}, which this engine "
                "does not reproduce; use --engine transformers"
            )
        forced = getattr(config, "forced_eos_token_id", None)
        forced_ids = set(forced if isinstance(forced, (list, tuple)) else [forced]) - {None}
        return cls(
            stop_ids=sorted(stop_ids),
            suppress_ids=list(getattr(config, "suppress_tokens", None) or []),
            forced_eos=bool(forced_ids & stop_ids),
            repetition_penalty=float(getattr(config, "repetition_penalty", None) or 1.0),
            no_repeat_ngram_size=int(getattr(config, "no_repeat_ngram_size", None) or 0),
        )


class CTranslate2Seq2SeqEngine:
    """Greedy decoding of token ids with a ``ctranslate2.Translator`` (a [`Seq2SeqEngine`]).

    ``max_batch_size`` lets CTranslate2 sort a call's inputs by length and split them into batches of that
    many requests; the outputs come back in input order.
    """

    def __init__(
        self, translator, tokenizer, settings: DecodingSettings, max_new_tokens: int, max_batch_size: int = 0
    ) -> None:
        self.translator, self.tokenizer, self.settings = translator, tokenizer, settings
        self.max_new_tokens, self.max_batch_size = max_new_tokens, max_batch_size
        tokens = tokenizer.convert_ids_to_tokens(sorted({*settings.suppress_ids, *settings.stop_ids}))
        self.token_of = dict(zip(sorted({*settings.suppress_ids, *settings.stop_ids}), tokens))

    def generate(self, input_ids: Sequence[Sequence[int]]) -> list[Generated]:
        """Translate, then turn the output tokens back into ids; flag outputs cut by the token limit.

        A forced EOS at the limit (``forced_eos_token_id``) is reproduced by stopping one token earlier:
        transformers would write the EOS there, so such an output is never cut.
        """
        settings = self.settings
        stop = [self.token_of[i] for i in settings.stop_ids]
        limit = self.max_new_tokens - 1 if settings.forced_eos else self.max_new_tokens
        if limit < 1:
            return [Generated([], False) for _ in input_ids]
        suppress = [[self.token_of[i]] for i in settings.suppress_ids if i not in settings.stop_ids]
        results = self.translator.translate_batch(
            [self.tokenizer.convert_ids_to_tokens(list(ids)) for ids in input_ids],
            max_batch_size=self.max_batch_size,
            beam_size=1,
            max_input_length=0,
            max_decoding_length=limit,
            min_decoding_length=limit if set(settings.stop_ids) <= set(settings.suppress_ids) else 0,
            end_token=stop,
            return_end_token=True,
            suppress_sequences=suppress or None,
            repetition_penalty=settings.repetition_penalty,
            no_repeat_ngram_size=settings.no_repeat_ngram_size,
        )
        outputs = []
        for result in results:
            tokens = result.hypotheses[0]
            ended = bool(tokens) and tokens[-1] in stop
            ids = self.tokenizer.convert_tokens_to_ids(tokens[:-1] if ended else tokens)
            outputs.append(Generated(ids, not ended and not settings.forced_eos and len(ids) >= limit))
        return outputs


def load_engine(
    name_or_path: str,
    tokenizer,
    model_config,
    device: str = "cpu",
    compute_type: str = "default",
    max_new_tokens: int = 2048,
    cache_root: Path | None = None,
    trust_remote_code: bool = False,
    max_batch_size: int = 0,
) -> CTranslate2Seq2SeqEngine:
    """Convert ``name_or_path`` (once, cached) and load it on ``device`` (``cpu``, ``cuda``, ``cuda:N``) with as many
    CPU threads as torch uses.

    Decoding follows the folder's ``generation_config.json`` (else the one ``model_config`` implies), as
    transformers' ``generate`` does.
    """
    try:
        import ctranslate2
    except ImportError:
        raise UsageError(
            "--engine ctranslate2 needs the ctranslate2 package: pip install 'xvlm2vec[ctranslate2]'"
        ) from None
    from transformers import GenerationConfig

    folder = local_model_folder(name_or_path)
    try:
        generation = GenerationConfig.from_pretrained(folder)
    except OSError:
        generation = GenerationConfig.from_model_config(model_config)
    settings = DecodingSettings.from_generation_config(generation, stop_token_ids(generation, tokenizer))
    kind, _, index = device.partition(":")
    supported = ctranslate2.get_supported_compute_types(kind)
    if compute_type != "default" and compute_type not in supported:
        raise UsageError(
            f"--compute-type {compute_type}: not supported by ctranslate2 on {kind} (supported: {sorted(supported)})"
        )
    model_dir = converted_model(folder, cache_root or default_cache_root(), trust_remote_code)
    import torch

    translator = ctranslate2.Translator(
        str(model_dir),
        device=kind,
        device_index=int(index or 0),
        compute_type=compute_type,
        intra_threads=torch.get_num_threads(),  # the CPU threads the transformers engine would use
    )
    return CTranslate2Seq2SeqEngine(translator, tokenizer, settings, max_new_tokens, max_batch_size)
