"""VLM2Vec-style contrastive training of an embedding model (the English teacher of the demo).

Each training row is a (query, positive) pair, each side a text with an optional image. The loss is
InfoNCE over the batch: query i must score its own positive above every other positive of the batch
(in-batch negatives), cosine similarities divided by a temperature, embeddings pooled by the model
(last token). Rows that share a positive (two questions answered "red") are not each other's
negatives: their off-diagonal logits are masked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import BatchFeature, Trainer, TrainingArguments

from modeling_xvlm2vec.processing_xvlm2vec import ImageInput

from .objectives import info_nce


@dataclass
class ContrastiveConfig(TrainingArguments):
    """`TrainingArguments` plus the contrastive settings.

    Parameters:
        temperature (`float`, defaults to `0.05`):
            Softmax temperature of the InfoNCE logits (cosine similarity / temperature).
        max_length (`int` or `None`, defaults to `None`):
            Longest tokenised side (image tokens included); a longer row raises `ValueError` naming it.
    """

    temperature: float = field(default=0.05, metadata={"help": "InfoNCE temperature (cosine / temperature)."})
    max_length: int | None = field(default=None, metadata={"help": "Longest tokenised side; longer rows are refused."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Rows are dicts read by the collator."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


@dataclass
class ContrastivePair:
    """One training row: query and positive, each a text (may hold `<|image_1|>`) and an optional image.

    `positive_key` identifies the positive's content; rows with equal keys are not negatives of each other.
    """

    query_text: str
    query_image: ImageInput
    positive_text: str
    positive_image: ImageInput
    positive_key: str


class ContrastiveCollator:
    """Turn `ContrastivePair`s into `{"query": batch, "positive": batch, "same_positive": [B, B] bool}`.

    `prepare_inputs(texts, images, max_length=...)` is the model's `prepare_inputs`, which validates
    rows (a tag without image, an image without tag) and raises `ValueError` naming the row.
    """

    def __init__(self, prepare_inputs: Callable[..., BatchFeature], max_length: int | None = None) -> None:
        self.prepare_inputs = prepare_inputs
        self.max_length = max_length

    def __call__(self, pairs: Sequence[ContrastivePair]) -> dict[str, Any]:
        query = self.prepare_inputs(
            [p.query_text for p in pairs], [p.query_image for p in pairs], max_length=self.max_length
        )
        positive = self.prepare_inputs(
            [p.positive_text for p in pairs], [p.positive_image for p in pairs], max_length=self.max_length
        )
        keys = [p.positive_key for p in pairs]
        same = torch.tensor([[a == b for b in keys] for a in keys], dtype=torch.bool)
        return {"query": query, "positive": positive, "same_positive": same}


class ContrastiveTrainer(Trainer):
    """`Trainer` whose loss is in-batch InfoNCE between query and positive embeddings (VLM2Vec)."""

    args: ContrastiveConfig

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Embed both sides (normalised, pooled by the model) and return the InfoNCE loss."""
        query = model(**inputs["query"], normalize=True).embeddings
        positive = model(**inputs["positive"], normalize=True).embeddings
        loss = info_nce(query, positive, self.args.temperature, inputs.get("same_positive"))
        return (loss, {"query": query, "positive": positive}) if return_outputs else loss
