"""One distillation step's forwards and loss: teacher and student embeddings, the weighted MSE.

Kept apart from the trainer (and free of `datasets`/`trl` imports) so that benchmarks and GPU checks run
exactly the trainer's step with only torch, transformers and peft installed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .losses import combine_terms, distillation_terms
from .teacher import Teacher
from .tensors import parameter_dtype, to_dtype


def student_outputs(
    model: nn.Module, inputs: dict[str, Any], image_loss: bool, image_pooling: str = "prefix"
) -> dict[str, torch.Tensor]:
    """Student embeddings (and image embeddings, pooled by `image_pooling`) of the English and x sides."""
    dtype = parameter_dtype(model)
    pooled = {"return_image_embeddings": image_loss, "image_pooling": image_pooling}
    if "student_inputs" in inputs:
        output = model(**to_dtype(inputs["student_inputs"], dtype), normalize=False, **pooled)
        half = output.embeddings.shape[0] // 2
        found = {"student_en": output.embeddings[:half], "student_x": output.embeddings[half:]}
        if image_loss:
            found["student_en_image"] = output.image_embeddings[:half]
            found["student_x_image"] = output.image_embeddings[half:]
        return found
    found = {}
    for side in ("en", "x"):
        batch = to_dtype(inputs[f"student_{side}_inputs"], dtype)
        output = model(**batch, normalize=False, **pooled)
        found[f"student_{side}"] = output.embeddings
        if image_loss:
            found[f"student_{side}_image"] = output.image_embeddings
    return found


def teacher_outputs(
    model: nn.Module, teacher: Teacher, inputs: dict[str, Any], image_loss: bool, image_pooling: str = "prefix"
) -> dict[str, torch.Tensor]:
    """Teacher English embeddings: from the teacher cache when the collator found them, else a teacher forward."""
    if "teacher_embeddings" in inputs:
        found = {"teacher_en": inputs["teacher_embeddings"]}
        if image_loss:
            found["teacher_en_image"] = inputs["teacher_image_embeddings"]
        return found
    dtype = parameter_dtype(teacher.separate if teacher.separate is not None else model)
    embeddings, image_embeddings = teacher.embed(
        model, to_dtype(inputs["teacher_inputs"], dtype), with_images=image_loss, image_pooling=image_pooling
    )
    found = {"teacher_en": embeddings}
    if image_loss:
        found["teacher_en_image"] = image_embeddings
    return found


def skd_outputs(
    model: nn.Module, teacher: Teacher, inputs: dict[str, Any], image_loss: bool, image_pooling: str = "prefix"
) -> dict[str, torch.Tensor]:
    """Everything `distillation_terms` takes, for one collated batch (teacher first, then the student)."""
    return {
        **teacher_outputs(model, teacher, inputs, image_loss, image_pooling),
        **student_outputs(model, inputs, image_loss, image_pooling),
    }


def skd_loss(
    model: nn.Module,
    teacher: Teacher,
    inputs: dict[str, Any],
    image_loss: bool = False,
    en_weight: float = 1.0,
    x_weight: float = 1.0,
    image_pooling: str = "prefix",
) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The loss of one collated batch, its MSE terms and the embeddings they came from (image terms pooled by
    `image_pooling`, see `IMAGE_POOLINGS`)."""
    outputs = skd_outputs(model, teacher, inputs, image_loss, image_pooling)
    terms = distillation_terms(**outputs)
    return combine_terms(terms, en_weight, x_weight), terms, outputs
