"""Configuration of the xVLM2Vec embedding model."""

from __future__ import annotations

from typing import Literal

from transformers import PreTrainedConfig

from .backbone_llava_next import LlavaNextBackbone  # noqa: F401  (importing registers the backbone)
from .backbone_phi3_v import Phi3VBackbone  # noqa: F401
from .backbone_qwen2_vl import Qwen2VLBackbone  # noqa: F401
from .backbones import get_backbone
from .instructions import default_instructions



class XVLM2VecConfig(PreTrainedConfig):
    r"""Configuration of [`XVLM2VecModel`]: a vision-language backbone used as an embedding model.

    Args:
        backbone_config (`dict` or `PreTrainedConfig`):
            Configuration of the wrapped vision-language model (its `model_type` picks the backbone adapter:
            `qwen2_vl`, `qwen2_5_vl`, `llava_next`, `phi3_v`).
        pooling (`str`, defaults to `"last"`):
            `last`: hidden state of the last real token (VLM2Vec); `mean`: mean over real tokens.
        normalize (`bool`, defaults to `True`):
            L2-normalise the embeddings returned by `forward` and `encode`.
        padding_side (`str`, defaults to `"right"`):
            Side the processor pads on (VLM2Vec pads right); pooling is correct for either.
        image_tag (`str`, *optional*):
            The backbone's own image tag in prompts; defaults to the adapter's.
        instructions (`dict`, *optional*):
            Task -> side -> language -> instruction of the MMMEB protocol, written with the canonical tag
            `<|image_1|>` (mapped to `image_tag` when inputs are built). Defaults to the table of the
            shipped language registry; any table (any languages) may be given.
    """

    model_type = "xvlm2vec"

    backbone_config: dict | PreTrainedConfig | None = None
    pooling: Literal["last", "mean"] = "last"
    normalize: bool = True
    padding_side: Literal["left", "right"] = "right"
    image_tag: str | None = None
    instructions: dict | None = None

    def __post_init__(self, **kwargs):
        if self.backbone_config is None:
            raise ValueError("XVLM2VecConfig needs a backbone_config (the wrapped vision-language model's config)")
        if isinstance(self.backbone_config, dict):
            model_type = self.backbone_config.get("model_type")
            self.backbone_config = get_backbone(model_type).config_from_dict(self.backbone_config)
        adapter = get_backbone(self.backbone_config.model_type)
        if self.pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', got {self.pooling!r}")
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {self.padding_side!r}")
        if self.image_tag is None:
            self.image_tag = adapter.image_tag
        if self.instructions is None:
            self.instructions = default_instructions()
        super().__post_init__(**kwargs)

    @property
    def hidden_size(self) -> int:
        """Width of the embeddings (the decoder's hidden size)."""
        backbone = self.backbone_config
        text = getattr(backbone, "text_config", None) or backbone
        return int(text.hidden_size)


__all__ = ["XVLM2VecConfig"]
