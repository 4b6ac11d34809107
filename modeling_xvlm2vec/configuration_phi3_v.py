"""Configuration of Phi-3.5-V (``phi3_v``) on transformers' native Phi3 decoder and CLIP vision tower.

The original checkpoints (``microsoft/Phi-3.5-vision-instruct`` and VLM2Vec, built on it) keep one flat
config with the decoder's fields beside ``img_processor`` and ``embd_layer``. Here the decoder fields live
in a nested ``text_config`` (a :class:`~transformers.Phi3Config`, so transformers' own Phi3 layers read
it), the vision tower in ``vision_config`` (a :class:`~transformers.CLIPVisionConfig`, ViT-L/14-336 by
default, as the original hard-codes), and ``img_processor`` / ``embd_layer`` keep the original's keys.
"""

from __future__ import annotations

from transformers import CLIPVisionConfig, Phi3Config, PreTrainedConfig

try:  # transformers >= 5.2x declares sub-configs with their defaults
    from transformers.configuration_utils import SubConfigSpec
except ImportError:  # older 5.x: sub-configs are declared as classes and built in __post_init__
    SubConfigSpec = None

#: The CLIP tower of every Phi-3(.5)-V checkpoint (``openai/clip-vit-large-patch14-336``).
CLIP_VIT_LARGE_PATCH14_336 = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 336,
    "patch_size": 14,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 768,
}

#: ``embd_layer`` of Phi-3.5-V: HD transform, learnable separators, sub-images before the global view.
DEFAULT_EMBD_LAYER = {
    "embedding_cls": "image",
    "hd_transform_order": "sub_glb",
    "projection_cls": "mlp",
    "use_hd_transform": True,
    "with_learnable_separator": True,
}

#: Id of ``<|image|>`` in the Phi-3.5-V tokenizer; the processor writes it at every image position.
PHI3_V_IMAGE_TOKEN_ID = 32044


class Phi3VConfig(PreTrainedConfig):
    r"""Configuration of [`Phi3VModel`] (Phi-3.5-vision as a base model, no LM head).

    Args:
        text_config (`dict` or `Phi3Config`, *optional*):
            The Phi3 decoder (`vocab_size`, `hidden_size`, `rope_parameters`, `pad_token_id`, ...).
        vision_config (`dict` or `CLIPVisionConfig`, *optional*):
            The CLIP vision tower; defaults to ViT-L/14-336. Every crop is `image_size` pixels square.
        img_processor (`dict`, *optional*):
            The original's `img_processor` block: `name` (`clip_vision_model`), `image_dim_out` (the CLIP
            width), `num_img_tokens` (144), `layer_idx` (hidden state taken, default -2: second-to-last
            layer) and `type_feature` (`patch`: the class token is dropped).
        embd_layer (`dict`, *optional*):
            The original's `embd_layer` block; only Phi-3.5-V's settings are supported
            (`use_hd_transform`, `with_learnable_separator`, `hd_transform_order="sub_glb"`,
            `projection_cls="mlp"`).
        image_token_id (`int`, defaults to 32044):
            Id of the `<|image|>` placeholder token the processor writes at image positions.
    """

    model_type = "phi3_v"
    if SubConfigSpec is not None:
        sub_configs_defaults = {
            "text_config": SubConfigSpec(config_class=Phi3Config),
            "vision_config": SubConfigSpec(config_class=CLIPVisionConfig, init_kwargs=CLIP_VIT_LARGE_PATCH14_336),
        }
    else:
        sub_configs = {"text_config": Phi3Config, "vision_config": CLIPVisionConfig}

    text_config: dict | PreTrainedConfig | None = None
    vision_config: dict | PreTrainedConfig | None = None
    img_processor: dict | None = None
    embd_layer: dict | None = None
    image_token_id: int = PHI3_V_IMAGE_TOKEN_ID
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        if isinstance(self.vision_config, dict):  # a partial dict keeps the ViT-L/14-336 defaults
            self.vision_config = {**CLIP_VIT_LARGE_PATCH14_336, **self.vision_config}
        if SubConfigSpec is None:
            self._build_sub_configs()
        super().__post_init__(**kwargs)
        width = self.vision_config.hidden_size
        self.img_processor = {
            "name": "clip_vision_model",
            "model_name": "openai/clip-vit-large-patch14-336",
            "image_dim_out": width,
            "num_img_tokens": 144,
            "layer_idx": -2,
            "type_feature": "patch",
            **(self.img_processor or {}),
        }
        self.embd_layer = {**DEFAULT_EMBD_LAYER, **(self.embd_layer or {})}
        self._check_supported()

    def _build_sub_configs(self) -> None:
        """Turn missing or dict sub-configs into config objects (transformers versions without `SubConfigSpec`)."""
        if self.text_config is None or isinstance(self.text_config, dict):
            self.text_config = Phi3Config(**(self.text_config or {}))
        if self.vision_config is None:
            self.vision_config = dict(CLIP_VIT_LARGE_PATCH14_336)
        if isinstance(self.vision_config, dict):
            self.vision_config = CLIPVisionConfig(**self.vision_config)

    def _check_supported(self) -> None:
        """Raise ``ValueError`` for settings the original Phi-3.5-V never used and this port does not run."""
        processor, layer = self.img_processor, self.embd_layer
        problems = []
        if processor["name"] != "clip_vision_model":
            problems.append(f"img_processor.name={processor['name']!r} (only 'clip_vision_model')")
        if processor["image_dim_out"] != self.vision_config.hidden_size:
            problems.append(
                f"img_processor.image_dim_out={processor['image_dim_out']} differs from the CLIP width "
                f"{self.vision_config.hidden_size}"
            )
        if processor["type_feature"] != "patch":
            problems.append(f"img_processor.type_feature={processor['type_feature']!r} (only 'patch')")
        if not (layer["use_hd_transform"] and layer["with_learnable_separator"]):
            problems.append("embd_layer must use the HD transform with learnable separators")
        if layer["hd_transform_order"] != "sub_glb":
            problems.append(f"embd_layer.hd_transform_order={layer['hd_transform_order']!r} (only 'sub_glb')")
        if layer["projection_cls"] != "mlp":
            problems.append(f"embd_layer.projection_cls={layer['projection_cls']!r} (only 'mlp')")
        grid, rest = divmod(self.vision_config.image_size, self.vision_config.patch_size)
        if rest or grid % 2:
            problems.append(
                f"vision_config image_size={self.vision_config.image_size} / patch_size="
                f"{self.vision_config.patch_size} must give an even patch grid (2x2 merge)"
            )
        if problems:
            raise ValueError("unsupported Phi-3.5-V configuration: " + "; ".join(problems))

    @property
    def crop_size(self) -> int:
        """Side in pixels of one HD crop (and of the global view)."""
        return int(self.vision_config.image_size)

    @property
    def merged_grid(self) -> int:
        """Tokens per side of one crop after the 2x2 patch merge (12 for ViT-L/14-336)."""
        return int(self.vision_config.image_size // self.vision_config.patch_size // 2)


__all__ = ["CLIP_VIT_LARGE_PATCH14_336", "DEFAULT_EMBD_LAYER", "PHI3_V_IMAGE_TOKEN_ID", "Phi3VConfig"]
