"""Phi-3.5-V (``phi3_v``) as an xVLM2Vec backbone, on transformers' native Phi3 decoder and CLIP tower.

transformers has no native Phi-3.5-V; this file is the model: transformers' own ``Phi3DecoderLayer`` /
``Phi3RMSNorm`` / ``Phi3RotaryEmbedding`` and ``CLIPVisionModel``, plus the Phi-3.5-V image embedding
(HD crops + global view, features of CLIP's second-to-last layer without the class token, 2x2 patch
merge, ``sub_GN`` row separators, ``glb_GN`` between the sub-images and the global view, two-layer GELU
projection). Parameter names equal the original checkpoints' when the model is held as ``model``
(``model.embed_tokens``, ``model.vision_embed_tokens.img_processor.vision_model.*``, ``glb_GN``,
``sub_GN``, ``img_projection.{0,2}``, ``model.layers.*.self_attn.qkv_proj``, ``mlp.gate_up_proj``,
``model.norm``).

Image positions: the processor writes the real ``<|image|>`` token (``config.image_token_id``) at each
image position, so batches pad and truncate like text. Negative ids, the original processor's
convention, are accepted too.
"""

from __future__ import annotations

import copy
from typing import ClassVar

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel, PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.masking_utils import create_causal_mask, create_sliding_window_causal_mask
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.models.phi3.modeling_phi3 import Phi3DecoderLayer, Phi3RMSNorm, Phi3RotaryEmbedding

from .backbones import Backbone, register_backbone
from .configuration_phi3_v import Phi3VConfig


class Phi3VCLIPTower(nn.Module):
    """Holds the CLIP vision model as ``vision_model``, the attribute path of the original checkpoints."""

    def __init__(self, config: CLIPVisionConfig):
        super().__init__()
        self.vision_model = CLIPVisionModel(config)

    def forward(self, pixel_values: torch.Tensor, layer_idx: int) -> torch.Tensor:
        """Patch features [N, grid*grid, C] of hidden layer ``layer_idx``, class token dropped."""
        outputs = self.vision_model(pixel_values=pixel_values, output_hidden_states=True)
        return outputs.hidden_states[layer_idx][:, 1:]


class Phi3VImageEmbedding(nn.Module):
    """Phi-3.5-V image features: HD crops through CLIP, 2x2 merge, separators, projection.

    For an image cut into ``h x w`` crops the token order is: the sub-image grid row by row (each
    merged row of ``w * grid`` tokens followed by ``sub_GN``), then ``glb_GN``, then the global view
    (``grid`` rows of ``grid`` tokens, each followed by ``sub_GN``).
    """

    def __init__(self, config: Phi3VConfig):
        super().__init__()
        vision = config.vision_config
        hidden = config.text_config.hidden_size
        merged = 4 * config.img_processor["image_dim_out"]
        self.crop_size = config.crop_size
        self.grid = vision.image_size // vision.patch_size
        self.layer_idx = int(config.img_processor["layer_idx"])
        self.img_processor = Phi3VCLIPTower(vision)
        self.glb_GN = nn.Parameter(torch.zeros(1, 1, merged))
        self.sub_GN = nn.Parameter(torch.zeros(1, 1, 1, merged))
        self.img_projection = nn.Sequential(nn.Linear(merged, hidden), nn.GELU(), nn.Linear(hidden, hidden))

    def crop_grid(self, image_sizes: torch.Tensor, max_crops: int) -> list[tuple[int, int]]:
        """(rows, columns) of sub-image crops per image; ``ValueError`` naming the image if invalid."""
        grids = []
        for index, (height, width) in enumerate(image_sizes.tolist()):
            rows, row_rest = divmod(int(height), self.crop_size)
            cols, col_rest = divmod(int(width), self.crop_size)
            if row_rest or col_rest or rows < 1 or cols < 1:
                raise ValueError(
                    f"image {index}: image_sizes ({height}, {width}) must be positive multiples of {self.crop_size}"
                )
            if rows * cols + 1 > max_crops:
                raise ValueError(
                    f"image {index}: image_sizes ({height}, {width}) needs {rows * cols} crops + 1 global view, "
                    f"but pixel_values holds {max_crops} crops per image"
                )
            grids.append((rows, cols))
        return grids

    def merge_2x2(self, features: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """[rows*cols, grid*grid, C] crop features -> [rows*grid/2, cols*grid/2, 4C] merged image grid."""
        half = self.grid // 2
        channels = features.shape[-1]
        # per crop: (y, dy, x, dx, C) -> (y, x, dy, dx, C), i.e. 2x2 neighbours concatenated on channels
        merged = features.reshape(rows * cols, half, 2, half, 2, channels).permute(0, 1, 3, 2, 4, 5)
        merged = merged.reshape(rows, cols, half, half, 4 * channels)
        # crops laid out on the image: (crop row, y, crop column, x)
        return merged.permute(0, 2, 1, 3, 4).reshape(rows * half, cols * half, 4 * channels)

    def with_row_separators(self, grid: torch.Tensor) -> torch.Tensor:
        """Append ``sub_GN`` after every row of a [H, W, D] grid and flatten to [H*(W+1), D]."""
        separators = self.sub_GN.reshape(1, 1, -1).expand(grid.shape[0], 1, -1).to(grid.dtype)
        return torch.cat([grid, separators], dim=1).reshape(-1, grid.shape[-1])

    def forward(self, pixel_values: torch.Tensor, image_sizes: torch.Tensor) -> list[torch.Tensor]:
        """Projected feature sequences, one [num_image_tokens, hidden] tensor per image.

        Args:
            pixel_values: [num_images, max_crops, 3, crop, crop], the global view first, then the sub-image
                crops row by row, then zero padding.
            image_sizes: [num_images, 2], the (height, width) of each image after the HD transform.
        """
        if pixel_values.dim() != 5 or tuple(pixel_values.shape[2:]) != (3, self.crop_size, self.crop_size):
            raise ValueError(
                f"pixel_values must be [num_images, crops, 3, {self.crop_size}, {self.crop_size}], "
                f"got {tuple(pixel_values.shape)}"
            )
        if image_sizes is None or image_sizes.shape != (pixel_values.shape[0], 2):
            got = None if image_sizes is None else tuple(image_sizes.shape)
            raise ValueError(
                f"image_sizes must be [{pixel_values.shape[0]}, 2] (one (height, width) per image), got {got}"
            )
        grids = self.crop_grid(image_sizes, pixel_values.shape[1])
        # only the crops an image uses go through CLIP (the zero padding would be thrown away)
        used = torch.cat([pixel_values[i, : 1 + rows * cols] for i, (rows, cols) in enumerate(grids)])
        tower_dtype = self.img_processor.vision_model.embeddings.patch_embedding.weight.dtype
        features = self.img_processor(used.to(tower_dtype), self.layer_idx)
        sequences, start = [], 0
        for rows, cols in grids:
            crops = features[start : start + 1 + rows * cols]
            start += 1 + rows * cols
            sub_images = self.with_row_separators(self.merge_2x2(crops[1:], rows, cols))
            global_view = self.with_row_separators(self.merge_2x2(crops[:1], 1, 1))
            separator = self.glb_GN.reshape(1, -1).to(sub_images.dtype)
            sequences.append(torch.cat([sub_images, separator, global_view]))
        lengths = [len(sequence) for sequence in sequences]
        projection_dtype = self.img_projection[0].weight.dtype
        projected = self.img_projection(torch.cat(sequences).to(projection_dtype))
        return list(projected.split(lengths))


class Phi3VPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading settings of [`Phi3VModel`]."""

    config_class = Phi3VConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["Phi3DecoderLayer", "CLIPEncoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True

    def _init_weights(self, module: nn.Module) -> None:
        """Default initialisation; the learnable separators get small random values."""
        super()._init_weights(module)
        if isinstance(module, Phi3VImageEmbedding):
            std = self.config.text_config.initializer_range
            init.normal_(module.glb_GN, mean=0.0, std=std)
            init.normal_(module.sub_GN, mean=0.0, std=std)


class Phi3VModel(Phi3VPreTrainedModel):
    """Phi-3.5-vision base model: image features spliced into the token embeddings, then the Phi3 decoder.

    Returns the decoder's last hidden state (after the final norm). There is no LM head and no KV cache:
    the model is used as an encoder of embeddings.
    """

    def __init__(self, config: Phi3VConfig):
        super().__init__(config)
        text = config.text_config
        if text._attn_implementation is None:  # the decoder layers are not a sub-model that would resolve it
            text._attn_implementation = config._attn_implementation
        self.padding_idx = text.pad_token_id
        self.embed_tokens = nn.Embedding(text.vocab_size, text.hidden_size, self.padding_idx)
        self.embed_dropout = nn.Dropout(text.embd_pdrop)
        self.vision_embed_tokens = Phi3VImageEmbedding(config)
        self.decoder_config = reference_window_config(text)
        self.layers = nn.ModuleList(
            [Phi3DecoderLayer(self.decoder_config, index) for index in range(text.num_hidden_layers)]
        )
        self.norm = Phi3RMSNorm(text.hidden_size, eps=text.rms_norm_eps)
        self.rotary_emb = Phi3RotaryEmbedding(config=text)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        """The token embedding table."""
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        """Replace the token embedding table."""
        self.embed_tokens = value

    def image_positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Boolean [B, L] mask of image placeholder positions (``<|image|>`` or a negative id)."""
        return (input_ids == self.config.image_token_id) | (input_ids < 0)

    def embed(
        self,
        input_ids: torch.LongTensor,
        pixel_values: torch.Tensor | None = None,
        image_sizes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token embeddings [B, L, H] with the image features written at the placeholder positions."""
        positions = self.image_positions(input_ids)
        embeddings = self.embed_tokens(input_ids.masked_fill(positions, 0))
        per_row = positions.sum(-1).tolist()
        if pixel_values is None:
            if sum(per_row):
                raise ValueError(
                    f"input_ids hold {sum(per_row)} image placeholder tokens (rows "
                    f"{[row for row, count in enumerate(per_row) if count]}) but no pixel_values were given"
                )
            return self.embed_dropout(embeddings)
        features = self.vision_embed_tokens(pixel_values, image_sizes)
        check_placeholder_counts(per_row, [len(feature) for feature in features])
        embeddings = embeddings.masked_scatter(positions.unsqueeze(-1), torch.cat(features).to(embeddings.dtype))
        return self.embed_dropout(embeddings)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_sizes: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """Run the model on a processed batch.

        Args:
            input_ids: [B, L] token ids with ``image_token_id`` (or negative ids) at image positions.
            attention_mask: [B, L], 1 for real tokens; either padding side.
            position_ids: [B, L]; by default counted over real tokens (``cumsum(mask) - 1``), so left and
                right padding give the same hidden states.
            pixel_values: [num_images, crops, 3, 336, 336] from the processor (images in row order).
            image_sizes: [num_images, 2] HD-transformed (height, width) of each image.
            inputs_embeds: precomputed embeddings instead of ``input_ids`` (text only).
            use_cache: must be falsy: the model keeps no KV cache.
        """
        if use_cache:
            raise ValueError("Phi3VModel is used as an embedding encoder and keeps no KV cache; pass use_cache=False")
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed(input_ids, pixel_values, image_sizes)
        if attention_mask is None:
            attention_mask = torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device)
        if position_ids is None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        decoder = self.decoder_config
        mask_function = create_causal_mask if decoder.sliding_window is None else create_sliding_window_causal_mask
        # no KV cache; passed by position: transformers renamed that parameter (past_key_values -> cache) within 5.x
        causal_mask = mask_function(decoder, inputs_embeds, attention_mask, None, position_ids=position_ids)
        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids=position_ids)
        for layer in self.layers:
            hidden_states = layer(
                hidden_states,
                attention_mask=causal_mask,
                position_ids=position_ids,
                position_embeddings=position_embeddings,
                **kwargs,
            )
        return BaseModelOutputWithPast(last_hidden_state=self.norm(hidden_states))


def reference_window_config(text: PreTrainedConfig) -> PreTrainedConfig:
    """The decoder's config as transformers 5's masks and attention kernels must see it to match the reference.

    The original Phi-3 code (transformers 4.x masks, flash-attn's ``window_size=(w, w)``) lets a query attend
    to itself and the ``w`` keys before it: ``w + 1`` keys. transformers 5 admits ``sliding_window`` keys in
    all. The returned copy carries ``w + 1`` (no window: unchanged); the model's saved config keeps the
    original ``w``. The attention implementation is copied too (set before the layers are built).
    """
    if text.sliding_window is None:
        return text
    decoder = copy.copy(text)
    decoder.sliding_window = text.sliding_window + 1
    return decoder


def check_placeholder_counts(per_row: list[int], per_image: list[int]) -> None:
    """Check that the images, taken in order, exactly fill each row's placeholder tokens.

    Raises ``ValueError`` naming the first row whose placeholders do not match its images' features, or
    the number of images left without placeholders.
    """
    image = 0
    for row, count in enumerate(per_row):
        taken, first = 0, image
        while taken < count and image < len(per_image):
            taken += per_image[image]
            image += 1
        if taken != count:
            raise ValueError(
                f"row {row}: input_ids hold {count} image placeholder tokens but images {first}..{image - 1} "
                f"give {taken} feature tokens; the processor and the model disagree (num_crops or image_sizes?)"
            )
    if image != len(per_image):
        raise ValueError(
            f"{len(per_image) - image} of {len(per_image)} images have no placeholder tokens in input_ids"
        )


@register_backbone
class Phi3VBackbone(Backbone):
    """Phi-3.5-V: ``<|image_1|>`` expands to ``<|image|>`` placeholder tokens; 1-D positions from the mask."""

    model_type: ClassVar[str] = "phi3_v"
    vision_inputs: ClassVar[tuple[str, ...]] = ("pixel_values", "image_sizes")

    @classmethod
    def build_model(cls, config: PreTrainedConfig) -> nn.Module:
        """A freshly initialised [`Phi3VModel`]."""
        return Phi3VModel(config)

    @classmethod
    def image_prefix_end_ids(cls, config: PreTrainedConfig) -> tuple[int, ...]:
        """BOS, as released: a prompt piece after an image starts with BOS, so the prefix through the last BOS
        is BOS + the image tokens + the following BOS with an image, and the first BOS alone without one."""
        return (int(config.text_config.bos_token_id),)

    @classmethod
    def load_pretrained(cls, model_name_or_path: str, **kwargs) -> nn.Module:
        """Load a [`Phi3VModel`] saved by this port (see ``xvlm2vec convert phi3v`` for original checkpoints)."""
        return Phi3VModel.from_pretrained(model_name_or_path, **kwargs)


__all__ = [
    "Phi3VBackbone",
    "Phi3VCLIPTower",
    "Phi3VImageEmbedding",
    "Phi3VModel",
    "Phi3VPreTrainedModel",
    "check_placeholder_counts",
    "reference_window_config",
]
