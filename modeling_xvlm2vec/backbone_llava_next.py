"""LLaVA-Next backbone (the VLM2Vec v1 LLaVA variant), through transformers' native classes."""

from __future__ import annotations

from typing import ClassVar

from .backbones import Backbone, register_backbone


@register_backbone
class LlavaNextBackbone(Backbone):
    """LLaVA-Next: ``<image>`` expands to the any-resolution patch features; 1-D positions from the mask."""

    model_type: ClassVar[str] = "llava_next"
    vision_inputs: ClassVar[tuple[str, ...]] = ("pixel_values", "image_sizes")
