"""Pick and load the right ``Embedder`` for a ``--model`` argument (folder or Hub id)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from xvlm2vec.evaluation.baselines import DUAL_ENCODER_MODEL_TYPES, SentenceTransformerEmbedder, TransformersDualEncoder
from xvlm2vec.evaluation.embedders import Embedder, XVLM2VecEmbedder


def _top_level_file(name_or_path: str, filename: str) -> Path | None:
    """``filename`` at the top of the folder or Hub repo, or None when it has none."""
    if Path(name_or_path).is_dir():
        path = Path(name_or_path) / filename
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(hf_hub_download(name_or_path, filename))
    except (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError):
        return None


def _is_xvlm2vec(name_or_path: str) -> bool:
    """True when the top-level ``config.json`` declares ``model_type: xvlm2vec``.

    xVLM2Vec folders also carry a sentence-transformers ``modules.json``; this check comes first so
    they are evaluated as xVLM2Vec (instructions, styles), not as instruction-free baselines.
    """
    config = _top_level_file(name_or_path, "config.json")
    if config is None:
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type") == "xvlm2vec"
    except (ValueError, AttributeError):
        return False


def _is_sentence_transformer(name_or_path: str) -> bool:
    """True when the folder or Hub repo has a sentence-transformers ``modules.json``."""
    return _top_level_file(name_or_path, "modules.json") is not None


def load_embedder(spec: str, device: torch.device | str | None = None) -> Embedder:
    """Load ``spec`` as an embedder.

    A folder/repo whose ``config.json`` says ``xvlm2vec`` is an xVLM2Vec model (even with the
    ``modules.json`` every saved xVLM2Vec folder carries); ``TEXT+IMAGE`` (two folders or Hub ids) or
    another folder/repo with ``modules.json`` is a sentence-transformers model; otherwise the configuration's ``model_type`` decides: ``xvlm2vec``
    (remote code) or a CLIP / SigLIP / SigLIP2 dual encoder. Anything else is a ``ValueError``.
    """
    if "+" not in spec and _is_xvlm2vec(spec):
        return XVLM2VecEmbedder.from_pretrained(spec, device=device)
    if "+" in spec or _is_sentence_transformer(spec):
        return SentenceTransformerEmbedder.from_pretrained(spec, device=device)
    from transformers import AutoConfig

    model_type = AutoConfig.from_pretrained(spec, trust_remote_code=True).model_type
    if model_type == "xvlm2vec":
        return XVLM2VecEmbedder.from_pretrained(spec, device=device)
    if model_type in DUAL_ENCODER_MODEL_TYPES:
        return TransformersDualEncoder.from_pretrained(spec, device=device)
    raise ValueError(
        f"--model {spec!r}: model type {model_type!r} is not supported; expected xvlm2vec, "
        f"{', '.join(DUAL_ENCODER_MODEL_TYPES)}, or a sentence-transformers model (TEXT+IMAGE for two encoders)"
    )
