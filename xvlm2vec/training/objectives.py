"""Distillation objectives: small loss modules over one batch's student and teacher embeddings.

Each objective is an ``nn.Module`` in the manner of sentence-transformers' losses: it takes the
:class:`DistillationEmbeddings` of a batch of parallel pairs (English text ``en``, its translation ``x``)
and returns an :class:`ObjectiveOutput` (the scalar loss and the named terms that are logged). The recipe
picks one with ``objective:`` (see :func:`build_objective` and the table in docs/training.md):

- ``mse`` (default, as released): :class:`MSEDistillation`.
- ``matryoshka``: :class:`MatryoshkaDistillation`, a base objective over nested prefixes of the embedding.
- ``similarity_kl``: :class:`SimilarityKLDistillation`, in-batch similarity distributions (UniME).
- ``mse_infonce``: :class:`MSEInfoNCEDistillation`, MSE plus InfoNCE between the x and English sides.

Everything is computed in float32 whatever the model's dtype; teacher embeddings never get a gradient.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

OBJECTIVES = ("mse", "matryoshka", "similarity_kl", "mse_infonce")
#: The sides a term belongs to, for the English / x weights.
EN_TERMS = ("loss_en", "loss_image_en")
X_TERMS = ("loss_x", "loss_image_x")


@dataclass
class DistillationEmbeddings:
    """One batch's embeddings, ``[B, D]`` each, row i of every tensor from parallel pair i.

    ``student_en`` / ``student_x``: the student's un-normalised last-token embeddings of the English and x
    sides; ``teacher_en``: the teacher's English embeddings (the targets). The three ``*_image`` tensors are the
    image-prefix poolings of the image terms (``image_loss``), or None.
    """

    student_en: torch.Tensor
    student_x: torch.Tensor
    teacher_en: torch.Tensor
    student_en_image: torch.Tensor | None = None
    student_x_image: torch.Tensor | None = None
    teacher_en_image: torch.Tensor | None = None

    def as_dict(self) -> dict[str, torch.Tensor]:
        """The tensors that are set, by field name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def truncated(self, dim: int) -> DistillationEmbeddings:
        """The student embeddings cut to their first ``dim`` components (the teacher's are kept whole)."""
        return replace(self, student_en=self.student_en[:, :dim], student_x=self.student_x[:, :dim])


@dataclass
class ObjectiveOutput:
    """An objective's scalar ``loss`` and its named ``terms`` (logged as they are, means since the last log)."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]


def distillation_terms(
    student_en: torch.Tensor,
    student_x: torch.Tensor,
    teacher_en: torch.Tensor,
    student_en_image: torch.Tensor | None = None,
    student_x_image: torch.Tensor | None = None,
    teacher_en_image: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Return the MSE terms of self-knowledge distillation (computed in float32).

    `loss_en = MSE(s(en), t(en))`, `loss_x = MSE(s(x), t(en))`; with the three image tensors also
    `loss_image_en` and `loss_image_x` on the mean-pooled image-segment hidden states. A teacher wider than
    the student (a Matryoshka prefix) is cut to the student's width, as sentence-transformers' `MSELoss` does.
    """
    target = teacher_en.detach().float()[:, : student_en.shape[-1]]
    terms = {
        "loss_en": F.mse_loss(student_en.float(), target),
        "loss_x": F.mse_loss(student_x.float(), target),
    }
    images = (student_en_image, student_x_image, teacher_en_image)
    if any(image is not None for image in images):
        if any(image is None for image in images):
            raise ValueError("the image terms need student_en_image, student_x_image and teacher_en_image together")
        image_target = teacher_en_image.detach().float()
        terms["loss_image_en"] = F.mse_loss(student_en_image.float(), image_target)
        terms["loss_image_x"] = F.mse_loss(student_x_image.float(), image_target)
    return terms


def combine_terms(terms: dict[str, torch.Tensor], en_weight: float = 1.0, x_weight: float = 1.0) -> torch.Tensor:
    """Weighted mean of the terms: English-side terms weigh `en_weight`, x-side terms `x_weight`.

    With unit weights this is the paper's `(loss_en + loss_x) / 2`, or the mean of all four terms with images.
    """
    weights = {**dict.fromkeys(EN_TERMS, en_weight), **dict.fromkeys(X_TERMS, x_weight)}
    unknown = set(terms) - set(weights)
    if unknown:
        raise ValueError(f"unknown loss terms {sorted(unknown)}")
    total = sum(weights[name] * value for name, value in terms.items())
    return total / sum(weights[name] for name in terms)


class MSEDistillation(nn.Module):
    r"""The released objective: student embeddings regress onto the teacher's English embeddings.

    Inputs: :class:`DistillationEmbeddings` (un-normalised; the image tensors when ``image_loss`` is on).

    Formula: ``loss = (w_en * MSE(s(en), t(en)) + w_x * MSE(s(x), t(en))) / (w_en + w_x)``; with the image
    terms, ``MSE(s_img(en), t_img(en))`` joins the English side and ``MSE(s_img(x), t_img(en))`` the x side.

    When to use: the default, and the paper's setting; it keeps the student in the teacher's embedding space,
    so the teacher's English behaviour (and its evaluations) carry over unchanged.

    Reference: Reimers & Gurevych, "Making Monolingual Sentence Embeddings Multilingual using Knowledge
    Distillation", EMNLP 2020 (sentence-transformers' ``MSELoss``); xVLM2Vec (Musacchio et al., 2025).
    """

    def __init__(self, en_weight: float = 1.0, x_weight: float = 1.0) -> None:
        super().__init__()
        self.en_weight = en_weight
        self.x_weight = x_weight

    def forward(self, embeddings: DistillationEmbeddings) -> ObjectiveOutput:
        """The weighted mean of the MSE terms."""
        terms = distillation_terms(**embeddings.as_dict())
        return ObjectiveOutput(combine_terms(terms, self.en_weight, self.x_weight), terms)


def build_objective(args: Any) -> nn.Module:
    """The objective an :class:`~xvlm2vec.training.config.SKDConfig` (``args``) names in ``objective``."""
    name = getattr(args, "objective", "mse")
    if name == "mse":
        return MSEDistillation(args.en_loss_weight, args.x_loss_weight)
    raise ValueError(f"objective must be one of {OBJECTIVES}, got {name!r}")
