"""Pick and load the right ``Embedder`` for a ``--model`` argument (folder or Hub id)."""

from __future__ import annotations

from pathlib import Path

import torch

from xvlm2vec.evaluation.baselines import DUAL_ENCODER_MODEL_TYPES, SentenceTransformerEmbedder, TransformersDualEncoder
from xvlm2vec.evaluation.embedders import Embedder, XVLM2VecEmbedder


def _is_sentence_transformer(name_or_path: str) -> bool:
    """True when the folder or Hub repo has a sentence-transformers ``modules.json``."""
    if Path(name_or_path).is_dir():
        return (Path(name_or_path) / "modules.json").is_file()
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        hf_hub_download(name_or_path, "modules.json")
    except (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError):
        return False
    return True


def load_embedder(spec: str, device: torch.device | str | None = None) -> Embedder:
    """Load ``spec`` as an embedder.

    ``TEXT+IMAGE`` (two folders or Hub ids) or a folder/repo with ``modules.json`` is a
    sentence-transformers model; otherwise the configuration's ``model_type`` decides: ``xvlm2vec``
    (remote code) or a CLIP / SigLIP / SigLIP2 dual encoder. Anything else is a ``ValueError``.
    """
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
