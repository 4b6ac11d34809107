"""Small tensor helpers shared by the trainer and the teacher cache."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


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
