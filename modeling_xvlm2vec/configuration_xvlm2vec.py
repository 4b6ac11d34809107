"""Configuration of the xVLM2Vec embedding model."""

from __future__ import annotations

from typing import Literal

from transformers import AutoConfig, PreTrainedConfig

from .configuration_phi3_v import Phi3VConfig
from .conventions import DEFAULT_CONVENTION, get_convention
from .instructions import default_instructions

#: The supported backbone families (``model_type``) and each one's own image tag. Torch-free data: the
#: backbone adapters (modeling side, ``backbone_*.py``) take their tag from here.
BACKBONE_IMAGE_TAGS: dict[str, str] = {
    "qwen2_vl": "<|vision_start|><|image_pad|><|vision_end|>",
    "qwen2_5_vl": "<|vision_start|><|image_pad|><|vision_end|>",
    "qwen3_vl": "<|vision_start|><|image_pad|><|vision_end|>",
    "llava_next": "<image>",
    "phi3_v": "<|image_1|>",
}

#: Image-loss poolings (torch-free data: the modeling side computes them, training checks recipes against them).
#: `prefix` (as released) is the mean over real tokens up to and including the row's last image-prefix end token
#: (the backbone's `image_prefix_end_ids`; Phi-3.5-V: BOS, i.e. BOS + image tokens + BOS, or the first BOS of a
#: text-only row), falling back to the first real token when a row has none; `image_tokens` is the mean over the
#: image placeholder tokens only (zeros for a row without an image).
IMAGE_POOLINGS = ("prefix", "image_tokens")


def backbone_config_from_dict(config: dict) -> PreTrainedConfig:
    """The backbone configuration from its dictionary form (``config.json``); ``ValueError`` for another family."""
    config = dict(config)
    model_type = config.pop("model_type", None)
    if model_type not in BACKBONE_IMAGE_TAGS:
        raise ValueError(f"unsupported backbone type {model_type!r}; supported: {sorted(BACKBONE_IMAGE_TAGS)}")
    if model_type == Phi3VConfig.model_type:  # remote code: not in transformers' AutoConfig mapping
        return Phi3VConfig(**config)
    return AutoConfig.for_model(model_type, **config)


class XVLM2VecConfig(PreTrainedConfig):
    r"""Configuration of [`XVLM2VecModel`]: a vision-language backbone used as an embedding model.

    Args:
        backbone_config (`dict` or `PreTrainedConfig`):
            Configuration of the wrapped vision-language model (its `model_type` picks the backbone adapter:
            `qwen2_vl`, `qwen2_5_vl`, `qwen3_vl`, `llava_next`, `phi3_v`).
        pooling (`str`, defaults to `"last"`):
            `last`: hidden state of the last real token (VLM2Vec); `mean`: mean over real tokens.
        normalize (`bool`, defaults to `True`):
            L2-normalise the embeddings returned by `forward` and `encode`.
        padding_side (`str`, defaults to `"right"`):
            Side the processor pads on (VLM2Vec pads right); pooling is correct for either.
        image_tag (`str`, *optional*):
            The backbone's own image tag in prompts; defaults to the convention's, else the adapter's.
        convention (`str`, defaults to `"vlm2vec"`):
            The input convention of a published embedder (`modeling_xvlm2vec/conventions.py`, docs/teachers.md):
            `vlm2vec` (the raw VLM2Vec prompt, as released), `vlm2vec_v2`, `gme`, `qwen3_vl_embedding`: the
            prompt template and system instruction, where the image goes, its tag and its positions.
        system_prompt (`str`, *optional*):
            The system instruction of a chat convention (`gme`, `qwen3_vl_embedding`) when `encode` is given none;
            defaults to the convention's own.
        instructions (`dict`, *optional*):
            Task -> side -> language -> instruction of the MMMEB protocol, written with the canonical tag
            `<|image_1|>` (mapped to `image_tag` when inputs are built). Defaults to the table of the
            shipped language registry; any table (any languages) may be given.
        matryoshka_dims (`list[int]`, *optional*):
            The prefix widths the model was trained to be truncated to (the Matryoshka objective of training
            records them); `encode(truncate_dim=...)` and sentence-transformers' `truncate_dim` accept any width,
            these are the ones the training made good. `None`: trained at full width only.
    """

    model_type = "xvlm2vec"

    backbone_config: dict | PreTrainedConfig | None = None
    pooling: Literal["last", "mean"] = "last"
    normalize: bool = True
    padding_side: Literal["left", "right"] = "right"
    image_tag: str | None = None
    instructions: dict | None = None
    convention: str = DEFAULT_CONVENTION
    system_prompt: str | None = None
    matryoshka_dims: list[int] | None = None

    def __post_init__(self, **kwargs):
        if self.backbone_config is None:
            raise ValueError("XVLM2VecConfig needs a backbone_config (the wrapped vision-language model's config)")
        if isinstance(self.backbone_config, dict):
            self.backbone_config = backbone_config_from_dict(self.backbone_config)
        model_type = self.backbone_config.model_type
        if model_type not in BACKBONE_IMAGE_TAGS:
            raise ValueError(f"unsupported backbone type {model_type!r}; supported: {sorted(BACKBONE_IMAGE_TAGS)}")
        if self.pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', got {self.pooling!r}")
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {self.padding_side!r}")
        convention = get_convention(self.convention, model_type)
        if self.system_prompt is not None and not convention.has_system:
            raise ValueError(f"convention {self.convention!r} has no system prompt; system_prompt must be None")
        if self.image_tag is None:
            self.image_tag = convention.image_tag or BACKBONE_IMAGE_TAGS[model_type]
        if self.instructions is None:
            self.instructions = default_instructions()
        if self.matryoshka_dims is not None:
            self.matryoshka_dims = [int(dim) for dim in self.matryoshka_dims]
            if not self.matryoshka_dims or min(self.matryoshka_dims) < 1:
                raise ValueError(f"matryoshka_dims must be positive widths, got {self.matryoshka_dims}")
        super().__post_init__(**kwargs)

    @property
    def hidden_size(self) -> int:
        """Width of the embeddings (the decoder's hidden size)."""
        backbone = self.backbone_config
        text = getattr(backbone, "text_config", None) or backbone
        return int(text.hidden_size)


__all__ = ["BACKBONE_IMAGE_TAGS", "IMAGE_POOLINGS", "XVLM2VecConfig", "backbone_config_from_dict"]
