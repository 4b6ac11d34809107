"""The teacher: the student with its LoRA adapters switched off, or a separate frozen model."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from xvlm2vec.fingerprint import weights_fingerprint


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put `module` in eval mode for the block and restore its previous mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def base_parameter_name(name: str) -> str | None:
    """Name a parameter would have without peft's wrapping; None for adapter-only parameters."""
    if "lora_" in name or ".modules_to_save." in name:
        return None
    name = name.removeprefix("base_model.model.")
    return name.replace(".base_layer.", ".").replace(".original_module.", ".")


def teacher_fingerprint(model: nn.Module) -> str:
    """:func:`xvlm2vec.fingerprint.weights_fingerprint` of the base weights, adapters excluded.

    A PeftModel and the plain model it wraps give the same fingerprint, so the self-teacher and a separate
    copy of the same weights share a teacher cache.
    """
    return weights_fingerprint(model, rename=base_parameter_name)


def refuse_unsynced_teacher(fsdp_plugin: object | None) -> None:
    """Refuse a separate teacher under FSDP with cpu-RAM-efficient loading (`ValueError`).

    That loading gives real weights to rank 0 only and relies on FSDP to broadcast them; a separate teacher is
    prepared in evaluation mode (a replica per GPU, never wrapped by FSDP), so the other ranks would keep empty
    weights. `fsdp_plugin` is accelerate's FSDP plugin, or None without FSDP.
    """
    if fsdp_plugin is not None and getattr(fsdp_plugin, "cpu_ram_efficient_loading", False):
        raise ValueError(
            "a separate teacher under FSDP needs fsdp_cpu_ram_efficient_loading: false (with it only rank 0 would "
            "hold the teacher's weights); see accelerate_configs/fsdp_released.yaml"
        )


class Teacher:
    """Gives teacher embeddings of the English side under `no_grad`, in eval mode.

    With `separate=None` the teacher is the student itself with its adapters disabled (peft's
    `disable_adapter()`), so it needs a PeftModel; otherwise `separate` is a frozen model.
    """

    def __init__(self, student: nn.Module, separate: nn.Module | None = None) -> None:
        if separate is None and not hasattr(student, "disable_adapter"):
            raise ValueError(
                "the self-teacher (teacher=None) needs a LoRA student (use_peft); for full fine-tuning give a "
                "separate teacher (--teacher PATH)"
            )
        if separate is not None:
            separate.requires_grad_(False)
            separate.eval()
        self.student = student
        self.separate = separate

    @contextlib.contextmanager
    def active(self, runner: nn.Module) -> Iterator[nn.Module]:
        """Yield the module to call for teacher outputs; `runner` is the (possibly wrapped) student."""
        if self.separate is not None:
            with torch.no_grad(), eval_mode(self.separate):
                yield self.separate
        else:
            with torch.no_grad(), self.student.disable_adapter(), eval_mode(runner):
                yield runner

    def embed(
        self, runner: nn.Module, inputs: dict, with_images: bool, image_pooling: str = "prefix"
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher embeddings (un-normalised) and, with `with_images`, the image-loss pooling (`image_pooling`)."""
        with self.active(runner) as teacher:
            output = teacher(
                **inputs, normalize=False, return_image_embeddings=with_images, image_pooling=image_pooling
            )
        return output.embeddings.detach(), (output.image_embeddings.detach() if with_images else None)

    def fingerprint(self) -> str:
        """Fingerprint of the weights the teacher uses."""
        return teacher_fingerprint(self.separate if self.separate is not None else self.student)
