"""The distillation loss terms and the evaluation metrics (MSE terms, x->en translation retrieval)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from transformers import EvalPrediction


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
    `loss_image_en` and `loss_image_x` on the mean-pooled image-segment hidden states.
    """
    target = teacher_en.detach().float()
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
    weights = {"loss_en": en_weight, "loss_x": x_weight, "loss_image_en": en_weight, "loss_image_x": x_weight}
    unknown = set(terms) - set(weights)
    if unknown:
        raise ValueError(f"unknown loss terms {sorted(unknown)}")
    total = sum(weights[name] * value for name, value in terms.items())
    return total / sum(weights[name] for name in terms)


def translation_accuracy(queries: np.ndarray, targets: np.ndarray) -> float:
    """Share of rows i whose query embedding's nearest target (cosine) is target i."""
    if queries.shape != targets.shape or queries.ndim != 2:
        raise ValueError(f"queries and targets must both be [N, D], got {queries.shape} and {targets.shape}")
    q = torch.nn.functional.normalize(torch.as_tensor(queries, dtype=torch.float32), dim=-1)
    t = torch.nn.functional.normalize(torch.as_tensor(targets, dtype=torch.float32), dim=-1)
    best = (q @ t.T).argmax(dim=-1)
    return float((best == torch.arange(len(best))).float().mean())


def translation_metrics(prediction: EvalPrediction) -> dict[str, float]:
    """`compute_metrics` of [`SKDTrainer`]: predictions are `(student_en, student_x)`, labels `teacher_en`.

    Reports `mse_en`, `mse_x`, `translation_accuracy` (x -> English retrieval among the student's English
    embeddings of the split, as sentence-transformers' TranslationEvaluator) and
    `translation_accuracy_teacher` (x -> the teacher's English embeddings).
    """
    student_en, student_x = (np.asarray(array, dtype=np.float32) for array in prediction.predictions)
    teacher_en = np.asarray(prediction.label_ids, dtype=np.float32)
    return {
        "mse_en": float(np.mean((student_en - teacher_en) ** 2)),
        "mse_x": float(np.mean((student_x - teacher_en) ** 2)),
        "translation_accuracy": translation_accuracy(student_x, student_en),
        "translation_accuracy_teacher": translation_accuracy(student_x, teacher_en),
    }
