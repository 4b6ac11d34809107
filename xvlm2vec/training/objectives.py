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

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

OBJECTIVES = ("mse", "matryoshka", "similarity_kl", "mse_infonce")
#: The objectives a Matryoshka objective can apply over the prefixes.
MATRYOSHKA_BASES = ("mse", "similarity_kl")
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


def combine_terms(
    terms: dict[str, torch.Tensor], en_loss_weight: float = 1.0, x_loss_weight: float = 1.0
) -> torch.Tensor:
    """Weighted mean of the terms: English-side terms weigh `en_loss_weight`, x-side terms `x_loss_weight`.

    With unit weights this is the paper's `(loss_en + loss_x) / 2`, or the mean of all four terms with images.
    """
    weights = {**dict.fromkeys(EN_TERMS, en_loss_weight), **dict.fromkeys(X_TERMS, x_loss_weight)}
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

    def __init__(self, en_loss_weight: float = 1.0, x_loss_weight: float = 1.0) -> None:
        super().__init__()
        self.en_loss_weight = en_loss_weight
        self.x_loss_weight = x_loss_weight

    def forward(self, embeddings: DistillationEmbeddings) -> ObjectiveOutput:
        """The weighted mean of the MSE terms."""
        terms = distillation_terms(**embeddings.as_dict())
        return ObjectiveOutput(combine_terms(terms, self.en_loss_weight, self.x_loss_weight), terms)


def normalized(embeddings: torch.Tensor) -> torch.Tensor:
    """Float32, L2-normalised rows."""
    return F.normalize(embeddings.float(), dim=-1)


def same_rows(embeddings: torch.Tensor, tolerance: float = 1e-6) -> torch.Tensor:
    """``[B, B]`` bool: rows whose cosine similarity is at least ``1 - tolerance`` (the same English text and
    image give the same teacher embedding, up to float noise of the batch they were computed in)."""
    unit = normalized(embeddings.detach())
    return unit @ unit.T >= 1 - tolerance


def info_nce(
    query: torch.Tensor, positive: torch.Tensor, temperature: float, same_positive: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean InfoNCE loss of L2-normalised `query` [B, D] against `positive` [B, D] (row i matches row i).

    `same_positive[i, j]` true for i != j masks positive j out of query i's negatives.
    """
    logits = query @ positive.T / temperature
    if same_positive is not None:
        eye = torch.eye(len(query), dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(same_positive.to(logits.device) & ~eye, torch.finfo(logits.dtype).min)
    return F.cross_entropy(logits, torch.arange(len(query), device=logits.device))


class MatryoshkaDistillation(nn.Module):
    r"""A base objective applied to nested prefixes of the student embedding, so a truncated embedding works.

    Inputs: :class:`DistillationEmbeddings`; the base objective's own inputs, with the student embeddings cut
    to their first ``d`` components for each ``d`` of ``dims`` (the teacher's are kept whole; the MSE base cuts
    the teacher to the same width, as sentence-transformers' ``MSELoss`` does).

    Formula: ``loss = sum_d w_d * base(s[:, :d], t)`` over ``dims`` (``w_d = 1`` by default), as
    sentence-transformers' ``MatryoshkaLoss``. The terms are the base's terms at each width (``loss_en_64``...).

    When to use: when users will truncate the embedding (``encode(truncate_dim=...)``, sentence-transformers'
    ``truncate_dim``); the sizes are recorded in the saved config (``matryoshka_dims``). With the ``mse`` base a
    prefix can only be as good as the teacher's prefix of that width; the ``similarity_kl`` base teaches every
    prefix the teacher's full-width similarities. Cost: one objective per size on the same forward (negligible
    beside the model's forward).

    Reference: Kusupati et al., "Matryoshka Representation Learning", NeurIPS 2022.
    """

    def __init__(self, base: nn.Module, dims: Sequence[int], weights: Sequence[float] | None = None) -> None:
        super().__init__()
        if not dims or any(int(d) < 1 for d in dims) or len(set(dims)) != len(dims):
            raise ValueError(f"matryoshka_dims must be distinct positive sizes, got {list(dims)}")
        weights = [1.0] * len(dims) if weights is None else list(weights)
        if len(weights) != len(dims) or any(w < 0 for w in weights):
            raise ValueError(f"matryoshka_weights must be {len(dims)} weights >= 0, got {weights}")
        self.base = base
        self.dims = [int(d) for d in dims]
        self.weights = weights

    def forward(self, embeddings: DistillationEmbeddings) -> ObjectiveOutput:
        """The weighted sum of the base objective over the prefixes."""
        width = embeddings.student_en.shape[-1]
        if max(self.dims) > width:
            raise ValueError(f"matryoshka_dims {self.dims} exceed the embedding width {width}")
        loss, terms = 0.0, {}
        for dim, weight in zip(self.dims, self.weights):
            output = self.base(embeddings.truncated(dim))
            loss = loss + weight * output.loss
            terms.update({f"{name}_{dim}": value for name, value in output.terms.items()})
        return ObjectiveOutput(loss, terms)


class SimilarityKLDistillation(nn.Module):
    r"""In-batch similarity-distribution distillation: the student reproduces the teacher's in-batch
    similarity distributions.

    Inputs: :class:`DistillationEmbeddings` (cosine similarities are used, so the scale does not matter).

    Formula: with ``P_i = softmax_j(cos(t(en_i), t(en_j)) / tau)`` the teacher's distribution over the batch,
    ``Q^a_i = softmax_j(cos(s(a_i), s(en_j)) / tau)`` the student's for side ``a`` (``en`` or ``x``) and
    ``KL_a = mean_i KL(P_i || Q^a_i)``, ``loss = (w_en * KL_en + w_x * KL_x) / (w_en + w_x)``.

    When to use: when the student's retrieval ranking matters more than staying in the teacher's space (the
    English side may drift, only similarities are fixed); needs batches of several distinct rows (a batch of
    one row gives 0). Cost: two ``[B, B]`` similarity matrices per batch.

    Reference: Gu et al., "Breaking the Modality Barrier: Universal Embedding Learning with Multimodal LLMs"
    (UniME), 2025: textual discriminative knowledge distillation with KL over in-batch similarities.
    """

    def __init__(self, temperature: float = 0.05, en_loss_weight: float = 1.0, x_loss_weight: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"similarity_temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.en_loss_weight = en_loss_weight
        self.x_loss_weight = x_loss_weight

    def forward(self, embeddings: DistillationEmbeddings) -> ObjectiveOutput:
        """The weighted mean of the two KL terms."""
        teacher = normalized(embeddings.teacher_en.detach())
        target = F.softmax(teacher @ teacher.T / self.temperature, dim=-1)
        student_en = normalized(embeddings.student_en)
        terms = {}
        for name, side in (("loss_en", student_en), ("loss_x", normalized(embeddings.student_x))):
            log_q = F.log_softmax(side @ student_en.T / self.temperature, dim=-1)
            terms[name] = F.kl_div(log_q, target, reduction="batchmean")
        return ObjectiveOutput(combine_terms(terms, self.en_loss_weight, self.x_loss_weight), terms)


class MSEInfoNCEDistillation(nn.Module):
    r"""The released MSE plus an InfoNCE term that pulls each x text to its own English text in the batch.

    Inputs: :class:`DistillationEmbeddings`.

    Formula: ``loss = MSE objective + lambda * InfoNCE``, with
    ``InfoNCE = mean_i -log softmax_j(cos(s(x_i), s(en_j)) / tau)[i]`` (x as queries, the batch's English
    sides as candidates); rows with the same English text (same teacher embedding) are not each other's
    negatives.

    When to use: when x -> English retrieval among near neighbours is weak after plain MSE; the contrastive
    term sharpens the pairing while MSE keeps the teacher's space. Cost: one ``[B, B]`` similarity matrix.

    Reference: Reimers & Gurevych 2020 (MSE distillation); van den Oord et al., "Representation Learning with
    Contrastive Predictive Coding", 2018 (InfoNCE); Feng et al., "Language-agnostic BERT Sentence Embedding"
    (LaBSE), ACL 2022 (in-batch translation ranking).
    """

    def __init__(
        self,
        en_loss_weight: float = 1.0,
        x_loss_weight: float = 1.0,
        infonce_weight: float = 0.1,
        temperature: float = 0.05,
    ) -> None:
        super().__init__()
        if temperature <= 0 or infonce_weight < 0:
            raise ValueError(
                f"infonce_temperature must be > 0 and infonce_weight >= 0, got {temperature}, {infonce_weight}"
            )
        self.mse = MSEDistillation(en_loss_weight, x_loss_weight)
        self.infonce_weight = infonce_weight
        self.temperature = temperature

    def forward(self, embeddings: DistillationEmbeddings) -> ObjectiveOutput:
        """MSE plus the weighted InfoNCE term (logged as ``loss_infonce``)."""
        mse = self.mse(embeddings)
        contrastive = info_nce(
            normalized(embeddings.student_x),
            normalized(embeddings.student_en),
            self.temperature,
            same_rows(embeddings.teacher_en),
        )
        terms = {**mse.terms, "loss_infonce": contrastive}
        return ObjectiveOutput(mse.loss + self.infonce_weight * contrastive, terms)


def build_objective(args: Any, name: str | None = None) -> nn.Module:
    """The objective ``name`` (default: ``args.objective``) with the settings of an
    :class:`~xvlm2vec.training.config.SKDConfig` ``args``."""
    name = args.objective if name is None else name
    weights = (args.en_loss_weight, args.x_loss_weight)
    if name == "mse":
        return MSEDistillation(*weights)
    if name == "similarity_kl":
        return SimilarityKLDistillation(args.similarity_temperature, *weights)
    if name == "mse_infonce":
        return MSEInfoNCEDistillation(*weights, args.infonce_weight, args.infonce_temperature)
    if name == "matryoshka":
        base = build_objective(args, args.matryoshka_base)
        return MatryoshkaDistillation(base, args.matryoshka_dims, args.matryoshka_weights)
    raise ValueError(f"objective must be one of {OBJECTIVES}, got {name!r}")
