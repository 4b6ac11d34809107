"""Pick and load the right ``Embedder`` for a ``--model`` argument (folder or Hub id)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xvlm2vec.evaluation.baselines import (
    DUAL_ENCODER_MODEL_TYPES,
    SentenceTransformerEmbedder,
    TransformersDualEncoder,
)
from xvlm2vec.evaluation.embedders import Embedder, XVLM2VecEmbedder
from xvlm2vec_common.cli_errors import UsageError
from xvlm2vec_common.model_folder import XVLM2VEC_MODEL_TYPE, model_location, read_config, trust_for


def _top_level_file(model_name_or_path: str, filename: str) -> Path | None:
    """``filename`` at the top of the folder or Hub repo, or None when it has none."""
    if Path(model_name_or_path).is_dir():
        path = Path(model_name_or_path) / filename
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(hf_hub_download(model_name_or_path, filename))
    except (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError):
        return None


def _is_xvlm2vec(model_name_or_path: str) -> bool:
    """True when the top-level ``config.json`` declares ``model_type: xvlm2vec``.

    xVLM2Vec folders also carry a sentence-transformers ``modules.json``; this check comes first so
    they are evaluated as xVLM2Vec (instructions, styles), not as instruction-free baselines.
    """
    config = _top_level_file(model_name_or_path, "config.json")
    if config is None:
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type") == "xvlm2vec"
    except (ValueError, AttributeError):
        return False


def _is_sentence_transformer(model_name_or_path: str) -> bool:
    """True when the folder or Hub repo has a sentence-transformers ``modules.json``."""
    return _top_level_file(model_name_or_path, "modules.json") is not None


@dataclass
class EmbedderSource:
    """A checked ``--model`` argument: which embedder loads it, from where, with which extra arguments."""

    spec: str
    loader: Callable[..., Embedder]
    sources: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)

    def load(self, device: torch.device | str | None = None) -> Embedder:
        """Load the embedder (this is where model code is imported)."""
        return self.loader("+".join(self.sources), device=device, **self.options)


def check_embedder_source(spec: str, trust_remote_code: bool = False) -> EmbedderSource:
    """Check ``spec`` without importing any model code: paths exist, the model type is supported, code is trusted.

    A folder/repo whose ``config.json`` says ``xvlm2vec`` is an xVLM2Vec model (even with the
    ``modules.json`` every saved xVLM2Vec folder carries), loaded with the installed classes;
    ``TEXT+IMAGE`` (two folders or Hub ids) or another folder/repo with ``modules.json`` is a
    sentence-transformers model; otherwise ``config.json``'s ``model_type`` must be a CLIP / SigLIP /
    SigLIP2 dual encoder. Anything else, a missing local path, or a folder mapping to its own code
    without ``trust_remote_code`` is a UsageError.
    """
    parts = tuple(model_location(part, "--model") for part in spec.split("+"))
    if len(parts) == 1 and _is_xvlm2vec(parts[0]):  # the installed classes: the folder's copy of the code is not run
        return EmbedderSource(spec, XVLM2VecEmbedder.from_pretrained, parts)
    if len(parts) > 1 or _is_sentence_transformer(parts[0]):
        trust = False
        for part in parts:
            if _top_level_file(part, "config.json") is not None:
                trust = trust_for(part, read_config(part, "--model"), "--model", trust_remote_code) or trust
        return EmbedderSource(spec, SentenceTransformerEmbedder.from_pretrained, parts, {"trust_remote_code": trust})
    config = read_config(parts[0], "--model")
    model_type = config.get("model_type")
    if model_type not in DUAL_ENCODER_MODEL_TYPES:
        raise UsageError(
            f"--model {spec}: model type {model_type!r} is not supported; expected {XVLM2VEC_MODEL_TYPE}, "
            f"{', '.join(DUAL_ENCODER_MODEL_TYPES)}, or a sentence-transformers model (TEXT+IMAGE for two encoders)"
        )
    trust = trust_for(parts[0], config, "--model", trust_remote_code)
    return EmbedderSource(spec, TransformersDualEncoder.from_pretrained, parts, {"trust_remote_code": trust})


def load_embedder(spec: str, device: torch.device | str | None = None, trust_remote_code: bool = False) -> Embedder:
    """Load ``spec`` as an embedder, checked first with :func:`check_embedder_source`."""
    return check_embedder_source(spec, trust_remote_code).load(device)
