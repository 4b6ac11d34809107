"""The ``Embedder`` interface the MMMEB runner scores, and its XVLM2Vec implementation.

An embedder turns rows of (text or None, image or None) into L2-normalised vectors. It says whether
it takes the protocol's instructions (``uses_instructions``), which instruction table it uses, and
a ``fingerprint`` of everything that changes its outputs (weights, configuration, processor and
tokenizer, code), which keys the embedding cache.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch
from PIL import Image

from modeling_xvlm2vec.instructions import INSTRUCTIONS
from modeling_xvlm2vec.languages import LanguageRegistry
from xvlm2vec.fingerprint import code_state, processor_state, weights_fingerprint


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32); all-zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(np.float32).tiny)


class Embedder(ABC):
    """A model the MMMEB runner can score.

    Attributes:
        name: how the model is named in results (the ``--model`` argument).
        kind: the implementation family, recorded in results.
        uses_instructions: whether queries and image candidates get the protocol's instructions.
        image_tag: the image tag the model's prompts use (the canonical tag is mapped to it).
        instructions: the instruction table (task -> side -> language -> text) the runner applies.
        languages: the language registry for the baselines' class templates (None: the shipped one).
    """

    name: str
    kind: str
    uses_instructions: bool
    image_tag: str
    instructions: dict = INSTRUCTIONS
    languages: LanguageRegistry | None = None  # names and baseline class templates; None: the shipped registry

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """Hex digest of everything that determines the embeddings (weights, configuration, processor, code)."""

    @abstractmethod
    def embed(self, texts: list[str | None], images: list[Image.Image | None], batch_size: int) -> np.ndarray:
        """Embed rows of (text, image), either of which may be None, as an L2-normalised float32 [N, D] array."""

    def prepare(
        self, texts: list[str | None], images: list[Image.Image | None], batch_size: int, num_workers: int = 0
    ) -> Any:
        """The CPU-side work of :meth:`embed` for these rows, done ahead (in a worker thread when ``num_workers``
        > 0) while the model embeds earlier rows; :meth:`embed_prepared` finishes it. Default: nothing ahead."""
        return texts, images, batch_size

    def embed_prepared(self, prepared: Any) -> np.ndarray:
        """:meth:`embed` of rows :meth:`prepare` returned: the same array as embedding them directly."""
        return self.embed(*prepared)

    def close(self) -> None:
        """Release what the embedder holds beyond memory (engine processes, files); nothing by default."""


class XVLM2VecEmbedder(Embedder):
    """An XVLM2Vec model (``AutoModel`` with remote code) through its ``encode`` method.

    With ``truncate_dim`` only the first ``truncate_dim`` components of each embedding are kept (then
    L2-normalised again), as ``encode(truncate_dim=)``: the model evaluated at a Matryoshka width.
    """

    kind = "xvlm2vec"
    uses_instructions = True

    def __init__(self, model: Any, name: str, truncate_dim: int | None = None) -> None:
        if truncate_dim is not None and not 1 <= truncate_dim <= model.config.hidden_size:
            raise ValueError(f"truncate_dim must be in 1..{model.config.hidden_size}, got {truncate_dim}")
        self.model = model
        self.name = name
        self.truncate_dim = truncate_dim
        self.image_tag = model.config.image_tag
        self.instructions = model.config.instructions or INSTRUCTIONS
        self._fingerprint: str | None = None

    @classmethod
    def from_pretrained(
        cls, model_name_or_path: str, device: torch.device | str | None = None, truncate_dim: int | None = None
    ) -> XVLM2VecEmbedder:
        """Load the model folder or Hub repo ``model_name_or_path`` with ``AutoModel`` and the installed classes
        (evaluated at ``truncate_dim`` components when given).

        The folder's own copy of the model code is not run (``trust_remote_code=False``: the
        ``xvlm2vec`` type is registered with the installed classes first).
        """
        from transformers import AutoModel

        from modeling_xvlm2vec import register_auto_classes

        register_auto_classes()
        model = AutoModel.from_pretrained(model_name_or_path, trust_remote_code=False)
        if device is not None:
            model = model.to(device)
        return cls(model.eval(), model_name_or_path, truncate_dim)

    @property
    def fingerprint(self) -> str:
        """Digest of the weights, configuration, processor (tokenizer included), model code and truncation
        (computed once)."""
        if self._fingerprint is None:
            processor = self.model.processor
            extra = {
                "config": self.model.config.to_dict(),
                "processor": processor_state(processor),
                "code": code_state(self.model, processor),
            }
            if self.truncate_dim is not None:  # full-width fingerprints stay as they were
                extra["truncate_dim"] = self.truncate_dim
            self._fingerprint = weights_fingerprint({"model": self.model}, extra)
        return self._fingerprint

    def prepare(
        self, texts: list[str | None], images: list[Image.Image | None], batch_size: int, num_workers: int = 0
    ) -> tuple[Any, list]:
        """``encode``'s plan and processed batches for these rows (the processor runs here, not in the model)."""
        plan = self.model.plan_encode(list(texts), list(images), None, batch_size)
        return plan, [self.model.prepare_encode_batch(plan, rows, num_workers) for rows in plan.batches]

    def embed_prepared(self, prepared: tuple[Any, list]) -> np.ndarray:
        """Run the model on :meth:`prepare`'s batches: bitwise what :meth:`embed` returns for the same rows."""
        plan, batches = prepared
        was_training = self.model.training
        self.model.eval()
        try:
            chunks = [self.model.embed_batch(batch, self.truncate_dim is None) for batch in batches]
        finally:
            self.model.train(was_training)
        return l2_normalize(plan.assemble(chunks)[..., : self.truncate_dim].numpy())

    def embed(self, texts: list[str | None], images: list[Image.Image | None], batch_size: int) -> np.ndarray:
        """Embed rows with ``model.encode``; prompts keep the canonical tag, the model maps it."""
        vectors = self.model.encode(
            texts=list(texts),
            images=list(images),
            batch_size=batch_size,
            show_progress_bar=False,
            truncate_dim=self.truncate_dim,
        )
        return l2_normalize(vectors)


__all__ = ["Embedder", "XVLM2VecEmbedder", "l2_normalize"]
