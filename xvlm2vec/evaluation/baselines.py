"""Dual-encoder baselines without instructions: CLIP / SigLIP / SigLIP2 (transformers) and
sentence-transformers models such as multilingual CLIP.

A dual encoder embeds a text or an image. The MMMEB runner gives it one of the two, as the released
baselines do (a query with an image is the image alone; see ``xvlm2vec.evaluation.prompts``); a
row given both is embedded as the normalised sum of its normalised text and image embeddings
(late fusion), for callers that want composed queries.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np
import torch
from PIL import Image

from modeling_xvlm2vec.instructions import CANONICAL_IMAGE_TAG
from xvlm2vec.evaluation.embedders import Embedder, l2_normalize
from xvlm2vec.fingerprint import code_state, processor_state, weights_fingerprint

DUAL_ENCODER_MODEL_TYPES = ("clip", "siglip", "siglip2")
# SigLIP models were trained on text padded to the full context; CLIP on unpadded text.
_MAX_LENGTH_PADDING = ("siglip", "siglip2")


class DualEncoderEmbedder(Embedder):
    """Shared row handling of dual encoders: texts and images embedded apart, fused where a row has both."""

    uses_instructions = False
    image_tag = CANONICAL_IMAGE_TAG

    @abstractmethod
    def embed_texts(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Embed texts as an L2-normalised float32 [N, D] array."""

    @abstractmethod
    def embed_images(self, images: list[Image.Image], batch_size: int) -> np.ndarray:
        """Embed images as an L2-normalised float32 [N, D] array."""

    def embed(self, texts: list[str | None], images: list[Image.Image | None], batch_size: int) -> np.ndarray:
        """Embed rows of text and/or image; a row with both gets the normalised sum of the two."""
        if len(texts) != len(images):
            raise ValueError(f"texts and images differ in length: {len(texts)} vs {len(images)}")
        empty = [i for i, (text, image) in enumerate(zip(texts, images)) if not text and image is None]
        if empty:
            raise ValueError(f"row {empty[0]} has neither text nor image")
        text_rows = [i for i, text in enumerate(texts) if text]
        image_rows = [i for i, image in enumerate(images) if image is not None]
        parts = []
        if text_rows:
            parts.append((text_rows, self.embed_texts([texts[i] for i in text_rows], batch_size)))
        if image_rows:
            parts.append((image_rows, self.embed_images([images[i] for i in image_rows], batch_size)))
        dim = parts[0][1].shape[1]
        total = np.zeros((len(texts), dim), dtype=np.float32)
        for rows, vectors in parts:
            total[rows] += vectors
        return l2_normalize(total)


class TransformersDualEncoder(DualEncoderEmbedder):
    """CLIP, SigLIP or SigLIP2 loaded with ``AutoModel`` / ``AutoProcessor``."""

    kind = "transformers-dual-encoder"

    def __init__(self, model: Any, processor: Any, name: str) -> None:
        model_type = model.config.model_type
        if model_type not in DUAL_ENCODER_MODEL_TYPES:
            raise ValueError(
                f"{name}: model type {model_type!r} is not a supported dual encoder {DUAL_ENCODER_MODEL_TYPES}"
            )
        self.model = model.eval()
        self.processor = processor
        self.name = name
        self._padding = "max_length" if model_type in _MAX_LENGTH_PADDING else True
        self._fingerprint: str | None = None

    @classmethod
    def from_pretrained(
        cls, model_name_or_path: str, device: torch.device | str | None = None, trust_remote_code: bool = False
    ) -> TransformersDualEncoder:
        """Load a CLIP / SigLIP / SigLIP2 folder or Hub repo."""
        from transformers import AutoModel, AutoProcessor

        model = AutoModel.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
        if device is not None:
            model = model.to(device)
        return cls(
            model,
            AutoProcessor.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code),
            model_name_or_path,
        )

    @property
    def fingerprint(self) -> str:
        """Digest of the weights, configuration, processor and library code (computed once)."""
        if self._fingerprint is None:
            extra = {
                "config": self.model.config.to_dict(),
                "processor": processor_state(self.processor),
                "code": code_state(self.model, self.processor),
            }
            self._fingerprint = weights_fingerprint({"model": self.model}, extra)
        return self._fingerprint

    def _features(self, method: str, inputs: dict) -> np.ndarray:
        with torch.inference_mode():
            output = getattr(self.model, method)(**inputs.to(self.model.device))
        # transformers 5 returns a ModelOutput whose pooler_output holds the projected features.
        tensor = output if isinstance(output, torch.Tensor) else output.pooler_output
        return l2_normalize(tensor.float().cpu().numpy())

    def embed_texts(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Projected text features, normalised."""
        max_length = self.model.config.text_config.max_position_embeddings
        return np.concatenate(
            [
                self._features(
                    "get_text_features",
                    self.processor(
                        text=texts[start : start + batch_size],
                        padding=self._padding,
                        truncation=True,
                        max_length=max_length,
                        return_tensors="pt",
                    ),
                )
                for start in range(0, len(texts), batch_size)
            ]
        )

    def embed_images(self, images: list[Image.Image], batch_size: int) -> np.ndarray:
        """Projected image features, normalised."""
        return np.concatenate(
            [
                self._features(
                    "get_image_features",
                    self.processor(
                        images=[image.convert("RGB") for image in images[start : start + batch_size]],
                        return_tensors="pt",
                    ),
                )
                for start in range(0, len(images), batch_size)
            ]
        )


class SentenceTransformerEmbedder(DualEncoderEmbedder):
    """sentence-transformers models: one text encoder and one image encoder sharing an embedding space.

    Multilingual CLIP pairs a multilingual text student with the English CLIP whose image tower it
    was distilled onto; a single multimodal model serves as both.
    """

    kind = "sentence-transformers"

    def __init__(self, text_model: Any, image_model: Any, name: str) -> None:
        self.text_model = text_model
        self.image_model = image_model
        self.name = name
        self._fingerprint: str | None = None

    @classmethod
    def from_pretrained(
        cls, spec: str, device: torch.device | str | None = None, trust_remote_code: bool = False
    ) -> SentenceTransformerEmbedder:
        """Load ``TEXT_MODEL+IMAGE_MODEL`` (two folders or Hub ids) or one multimodal model."""
        from sentence_transformers import SentenceTransformer

        text_name, _, image_name = spec.partition("+")
        device = str(device) if device is not None else None
        text_model = SentenceTransformer(text_name, device=device, trust_remote_code=trust_remote_code)
        image_model = (
            SentenceTransformer(image_name, device=device, trust_remote_code=trust_remote_code)
            if image_name
            else text_model
        )
        return cls(text_model, image_model, spec)

    @property
    def fingerprint(self) -> str:
        """Digest of both encoders' weights, module layouts, tokenizers and library code (computed once)."""
        if self._fingerprint is None:
            layout = {
                "text": repr(self.text_model),
                "image": repr(self.image_model),
                "tokenizers": [processor_state(m.tokenizer) for m in (self.text_model, self.image_model)],
                "code": code_state(distributions=("sentence-transformers", "transformers", "torch")),
            }
            self._fingerprint = weights_fingerprint({"text": self.text_model, "image": self.image_model}, layout)
        return self._fingerprint

    def embed_texts(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Text embeddings from the text encoder, normalised."""
        vectors = self.text_model.encode(texts, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)
        return l2_normalize(vectors)

    def embed_images(self, images: list[Image.Image], batch_size: int) -> np.ndarray:
        """Image embeddings from the image encoder, normalised."""
        images = [image.convert("RGB") for image in images]
        vectors = self.image_model.encode(
            images, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True
        )
        return l2_normalize(vectors)
