"""Backbone adapters: what XVLM2VecModel needs to know about each vision-language model family.

An adapter builds the backbone's base model (no LM head), runs it on what the backbone's processor
returns, and says which token marks an image. Each family lives in its own ``backbone_*.py`` file
and registers itself here with :func:`register_backbone`.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from transformers import AutoModel, PreTrainedConfig

from .configuration_xvlm2vec import BACKBONE_IMAGE_TAGS


class Backbone:
    """Base adapter for one vision-language model family (one ``model_type``)."""

    model_type: ClassVar[str] = ""
    #: The tag that stands for one image in a prompt, in the backbone's own syntax: set by
    #: :func:`register_backbone` from the configuration's ``BACKBONE_IMAGE_TAGS`` (the one table of tags).
    image_tag: ClassVar[str] = ""
    #: Keyword arguments of the processor output that the base model takes (besides ids and mask).
    vision_inputs: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def build_model(cls, config: PreTrainedConfig) -> nn.Module:
        """Build the backbone's base model (no LM head) with freshly initialised weights."""
        return AutoModel.from_config(config)

    @classmethod
    def load_pretrained(cls, model_name_or_path: str, **kwargs) -> nn.Module:
        """Load the backbone's base model from a checkpoint folder or Hub repository."""
        return AutoModel.from_pretrained(model_name_or_path, **kwargs)

    @classmethod
    def image_token_id(cls, config: PreTrainedConfig) -> int:
        """Return the id of the placeholder token that image features replace."""
        return int(config.image_token_id)

    @classmethod
    def image_prefix_end_ids(cls, config: PreTrainedConfig) -> tuple[int, ...]:
        """Ids whose last occurrence in a row ends its image prefix (the image-loss pooling span).

        Default: the image placeholder itself (the prefix runs through the last image token).
        """
        return (cls.image_token_id(config),)

    @classmethod
    def position_ids(cls, attention_mask: torch.Tensor) -> torch.Tensor:
        """Positions counted over real tokens only, so left padding does not shift them."""
        positions = attention_mask.long().cumsum(-1) - 1
        return positions.clamp(min=0)

    @classmethod
    def forward(
        cls,
        model: nn.Module,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        sequential_positions: bool = False,
        **inputs,
    ) -> torch.Tensor:
        """Run the base model and return its last hidden state [B, L, H].

        Positions are counted over real tokens; ``sequential_positions`` (a convention's ``positions``) only
        matters to backbones with multimodal positions, where it numbers image tokens like text.
        """
        vision = {k: v for k, v in inputs.items() if k in cls.vision_inputs and v is not None}
        outputs = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=cls.position_ids(attention_mask),
            use_cache=False,
            **vision,
        )
        return outputs.last_hidden_state


_REGISTRY: dict[str, type[Backbone]] = {}


def register_backbone(adapter: type[Backbone]) -> type[Backbone]:
    """Class decorator that makes ``adapter`` available under its ``model_type``, with that family's image tag."""
    if adapter.model_type not in BACKBONE_IMAGE_TAGS:
        raise ValueError(f"backbone {adapter.model_type!r} has no image tag in BACKBONE_IMAGE_TAGS")
    adapter.image_tag = BACKBONE_IMAGE_TAGS[adapter.model_type]
    _REGISTRY[adapter.model_type] = adapter
    return adapter


def get_backbone(model_type: str) -> type[Backbone]:
    """Return the adapter for ``model_type`` or raise a ``ValueError`` listing the supported ones."""
    if model_type not in _REGISTRY and model_type in BACKBONE_IMAGE_TAGS:
        from . import backbone_llava_next, backbone_phi3_v, backbone_qwen2_vl  # noqa: F401  (each registers itself)
    if model_type not in _REGISTRY:
        raise ValueError(f"unsupported backbone type {model_type!r}; supported: {sorted(_REGISTRY)}")
    return _REGISTRY[model_type]


def supported_backbones() -> list[str]:
    """Names of the supported backbone families (the configuration's table; each has an adapter)."""
    return sorted(BACKBONE_IMAGE_TAGS)
