"""Qwen2-VL, Qwen2.5-VL (the VLM2Vec-V2 and GME family) and Qwen3-VL (Qwen3-VL-Embedding) backbones, through
transformers' native classes: one prompt syntax, one input set and one M-RoPE position rule."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from .backbones import Backbone, register_backbone


@register_backbone
class Qwen2VLBackbone(Backbone):
    """Qwen2-VL: images become ``<|image_pad|>`` runs between vision start/end tokens; M-RoPE positions."""

    model_type: ClassVar[str] = "qwen2_vl"
    vision_inputs: ClassVar[tuple[str, ...]] = ("pixel_values", "image_grid_thw")

    @classmethod
    def image_prefix_end_ids(cls, config) -> tuple[int, ...]:
        """The image prefix ends at ``<|vision_end|>`` (the image segment with its delimiters)."""
        return (int(config.vision_end_token_id),)

    @classmethod
    def forward(
        cls,
        model: nn.Module,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        sequential_positions: bool = False,
        **inputs,
    ) -> torch.Tensor:
        """Run the base model with 3-D rotary positions computed over real (unpadded) tokens.

        With ``sequential_positions`` image tokens are numbered like text (one position each, in order), as
        the released VLM2Vec-V2 and GME code ran Qwen2-VL.
        """
        grid = inputs.get("image_grid_thw")
        if grid is not None and not sequential_positions:
            token_types = inputs.get("mm_token_type_ids")
            if token_types is None:
                token_types = (input_ids == cls.image_token_id(model.config)).int()
            position_ids, _ = model.get_rope_index(
                input_ids, mm_token_type_ids=token_types, image_grid_thw=grid, attention_mask=attention_mask
            )
        else:
            position_ids = cls.position_ids(attention_mask)
        outputs = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            pixel_values=inputs.get("pixel_values"),
            image_grid_thw=grid,
            use_cache=False,
        )
        return outputs.last_hidden_state


@register_backbone
class Qwen2_5_VLBackbone(Qwen2VLBackbone):
    """Qwen2.5-VL: same prompt syntax and inputs as Qwen2-VL."""

    model_type: ClassVar[str] = "qwen2_5_vl"


@register_backbone
class Qwen3VLBackbone(Qwen2VLBackbone):
    """Qwen3-VL: Qwen2-VL's prompt syntax, inputs and M-RoPE index call; its DeepStack and interleaved rotary
    sections live inside transformers' ``Qwen3VLModel``."""

    model_type: ClassVar[str] = "qwen3_vl"
