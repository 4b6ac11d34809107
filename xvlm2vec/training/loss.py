"""The distillation loss of one collated batch: teacher embeddings, student embeddings, then the objective.

One call does the whole computation the trainer's ``compute_loss`` needs::

    loss_fn = DistillationLoss(MSEDistillation(), image_loss=False, image_pooling="prefix")
    output = loss_fn(model, teacher, batch)        # output.loss, output.terms, output.embeddings

The three stages, in order (each a plain function, so a benchmark or a performance change can replace one):

1. :func:`teacher_embeddings`: the teacher's English embeddings, from the teacher cache when the collator
   found them, else a teacher forward under ``no_grad`` in eval mode (:class:`~.teacher.Teacher`);
2. :func:`student_embeddings`: the student's English and x embeddings, one concatenated forward (fused) or
   two;
3. the objective (:mod:`.objectives`) on the :class:`~.objectives.DistillationEmbeddings`.

Free of ``datasets`` and ``trl`` imports, so benchmarks and GPU checks run exactly the trainer's loss with
only torch, transformers and peft installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .objectives import DistillationEmbeddings, MSEDistillation
from .teacher import Teacher


def parameter_dtype(module: nn.Module) -> torch.dtype:
    """dtype of the module's floating-point parameters (works through DDP/FSDP/peft wrappers)."""
    return next(p.dtype for p in module.parameters() if p.is_floating_point())


def to_dtype(inputs: dict[str, Any], dtype: torch.dtype, device: torch.device | None = None) -> dict[str, Any]:
    """Move a processor batch to `device` (when given) and cast its floating-point tensors (pixel values) to
    `dtype`.
    """
    moved = {}
    for key, value in inputs.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device) if device is not None else value
            value = value.to(dtype) if value.is_floating_point() else value
        moved[key] = value
    return moved


def student_embeddings(
    model: nn.Module, inputs: dict[str, Any], *, image_loss: bool = False, image_pooling: str = "prefix"
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
    for side, key in (("en", "student_en_inputs"), ("x", "student_lang_inputs")):
        batch = to_dtype(inputs[key], dtype)
        output = model(**batch, normalize=False, **pooled)
        found[f"student_{side}"] = output.embeddings
        if image_loss:
            found[f"student_{side}_image"] = output.image_embeddings
    return found


def teacher_embeddings(
    model: nn.Module,
    teacher: Teacher,
    inputs: dict[str, Any],
    *,
    image_loss: bool = False,
    image_pooling: str = "prefix",
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


def embed_batch(
    model: nn.Module,
    teacher: Teacher,
    inputs: dict[str, Any],
    *,
    image_loss: bool = False,
    image_pooling: str = "prefix",
) -> DistillationEmbeddings:
    """Teacher then student embeddings of one collated batch."""
    return DistillationEmbeddings(
        **teacher_embeddings(model, teacher, inputs, image_loss=image_loss, image_pooling=image_pooling),
        **student_embeddings(model, inputs, image_loss=image_loss, image_pooling=image_pooling),
    )


@dataclass
class LossOutput:
    """The batch's scalar ``loss``, the objective's named ``terms`` and the ``embeddings`` they came from."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    embeddings: DistillationEmbeddings


class DistillationLoss(nn.Module):
    """Embeds a collated batch with teacher and student, then applies ``objective`` (default: released MSE).

    Args:
        objective: an objective module of :mod:`.objectives` (``MSEDistillation()`` when None).
        image_loss: also compute the image-prefix poolings (the paper's image terms).
        image_pooling: what the image terms pool (``IMAGE_POOLINGS``: ``prefix`` as released).
    """

    def __init__(
        self, objective: nn.Module | None = None, *, image_loss: bool = False, image_pooling: str = "prefix"
    ) -> None:
        super().__init__()
        self.objective = objective if objective is not None else MSEDistillation()
        self.image_loss = image_loss
        self.image_pooling = image_pooling

    def forward(self, model: nn.Module, teacher: Teacher, inputs: dict[str, Any]) -> LossOutput:
        """The loss of ``inputs`` (a :class:`~.collator.ParallelCollator` batch) for ``model`` and ``teacher``."""
        embeddings = embed_batch(model, teacher, inputs, image_loss=self.image_loss, image_pooling=self.image_pooling)
        output = self.objective(embeddings)
        return LossOutput(output.loss, output.terms, embeddings)
