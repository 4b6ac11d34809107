"""Evaluation metrics of the trainer: MSE to the teacher and x->en translation retrieval accuracy."""

from __future__ import annotations

import numpy as np
import torch
from transformers import EvalPrediction


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
