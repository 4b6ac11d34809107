"""Phi-3.5-V image processor: the HD transform into 336x336 crops plus one global view.

Each image is resized (aspect ratio kept) so that its longer side spans ``scale`` crops, with ``scale``
the largest value whose crop grid fits in ``num_crops``; the shorter side is padded with white to a
multiple of 336 (centred). The padded image is normalised with the CLIP mean/std, cut into 336x336 crops
row by row, and a bicubic 336x336 resize of the whole padded image is put first as the global view.
``pixel_values`` is ``[num_images, num_crops + 1, 3, 336, 336]`` (unused crops are zeros) and
``image_sizes`` holds each padded (height, width).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

#: Side of one crop (the CLIP ViT-L/14-336 input).
CROP_SIZE = 336
#: Tokens per crop side after CLIP (24 patches) and the 2x2 merge.
MERGED_GRID = 12


def num_image_tokens(height: int, width: int) -> int:
    """Feature tokens of one image whose HD-transformed size is ``height`` x ``width`` (multiples of 336).

    Sub-image grid with one separator per merged row, one global separator, and the global view with one
    separator per row: ``((h // 336) * (w // 336) + 1) * 144 + 1 + (h // 336 + 1) * 12``.
    """
    rows, cols = height // CROP_SIZE, width // CROP_SIZE
    return (rows * cols + 1) * MERGED_GRID**2 + 1 + (rows + 1) * MERGED_GRID


def hd_resized_size(width: int, height: int, num_crops: int) -> tuple[int, int]:
    """(width, height) an image is resized to before padding, for at most ``num_crops`` crops.

    Computed on the landscape orientation (sides swapped for a portrait image) and swapped back. A side
    that would round to 0 pixels (extremely elongated images) is kept at 1 pixel.
    """
    portrait = width < height
    long_side, short_side = (height, width) if portrait else (width, height)
    ratio = long_side / short_side
    scale = 1
    while scale * math.ceil(scale / ratio) <= num_crops:
        scale += 1
    scale -= 1
    new_long = scale * CROP_SIZE
    new_short = max(1, int(new_long / ratio))
    return (new_short, new_long) if portrait else (new_long, new_short)


def hd_padded_size(width: int, height: int, num_crops: int) -> tuple[int, int]:
    """(width, height) of the HD-transformed image: resized, then the short side padded to a multiple of 336."""
    new_width, new_height = hd_resized_size(width, height, num_crops)
    if width < height:
        return math.ceil(new_width / CROP_SIZE) * CROP_SIZE, new_height
    return new_width, math.ceil(new_height / CROP_SIZE) * CROP_SIZE


def hd_transform(image: Image.Image, num_crops: int) -> Image.Image:
    """Resize ``image`` (bilinear) and pad it with white to the HD size, centring it on the short side.

    As the original, the work is done on the landscape orientation: a portrait image is transposed,
    resized and padded in height, then transposed back.
    """
    portrait = image.width < image.height
    if portrait:
        image = image.transpose(Image.Transpose.TRANSPOSE)
    new_width, new_height = hd_resized_size(image.width, image.height, num_crops)
    resized = image.resize((new_width, new_height), Image.Resampling.BILINEAR)
    padded_height = math.ceil(new_height / CROP_SIZE) * CROP_SIZE
    canvas = Image.new("RGB", (new_width, padded_height), (255, 255, 255))
    canvas.paste(resized, (0, (padded_height - new_height) // 2))
    return canvas.transpose(Image.Transpose.TRANSPOSE) if portrait else canvas


class Phi3VImageProcessor(BaseImageProcessor):
    r"""Phi-3.5-V image processor (HD transform, CLIP normalisation, crops + global view).

    Args:
        num_crops (`int`, defaults to 4):
            Most 336x336 sub-image crops per image (VLM2Vec / xVLM2Vec evaluate with 4; Phi-3.5-V's chat
            default is 16). `pixel_values` holds `num_crops + 1` crops per image.
        image_mean (`list[float]`, *optional*): normalisation mean, CLIP's by default.
        image_std (`list[float]`, *optional*): normalisation std, CLIP's by default.
        do_convert_rgb (`bool`, defaults to `True`): convert every image to RGB with PIL's `convert("RGB")`,
            which drops an alpha channel (RGBA, LA, transparent palettes) without compositing, as the stack the
            released models were trained and evaluated with (transformers 4.x) did. `False`: images must
            already be RGB (`ValueError` otherwise).
    """

    model_input_names = ["pixel_values", "image_sizes"]

    def __init__(
        self,
        num_crops: int = 4,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        do_convert_rgb: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if int(num_crops) < 1:
            raise ValueError(f"num_crops must be >= 1, got {num_crops}")
        self.num_crops = int(num_crops)
        self.image_mean = list(image_mean if image_mean is not None else OPENAI_CLIP_MEAN)
        self.image_std = list(image_std if image_std is not None else OPENAI_CLIP_STD)
        self.do_convert_rgb = do_convert_rgb

    def num_image_tokens(self, width: int, height: int, num_crops: int | None = None) -> int:
        """Placeholder tokens an image of ``width`` x ``height`` pixels expands to."""
        padded_width, padded_height = hd_padded_size(width, height, num_crops or self.num_crops)
        return num_image_tokens(padded_height, padded_width)

    def to_crops(self, image: Image.Image, num_crops: int) -> tuple[torch.Tensor, tuple[int, int]]:
        """[num_crops + 1, 3, 336, 336] crops of one image (global view first, zero padded) and its HD size."""
        padded = hd_transform(image, num_crops)
        pixels = torch.from_numpy(np.asarray(padded, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255)
        mean = torch.tensor(self.image_mean, dtype=torch.float32)[:, None, None]
        std = torch.tensor(self.image_std, dtype=torch.float32)[:, None, None]
        pixels = (pixels - mean) / std
        height, width = pixels.shape[1:]
        rows, cols = height // CROP_SIZE, width // CROP_SIZE
        global_view = F.interpolate(pixels[None], size=(CROP_SIZE, CROP_SIZE), mode="bicubic")
        crops = pixels.reshape(3, rows, CROP_SIZE, cols, CROP_SIZE).permute(1, 3, 0, 2, 4)
        crops = crops.reshape(rows * cols, 3, CROP_SIZE, CROP_SIZE)
        padding = torch.zeros(num_crops - rows * cols, 3, CROP_SIZE, CROP_SIZE)
        return torch.cat([global_view, crops, padding]), (height, width)

    def preprocess(
        self,
        images: Image.Image | Sequence[Image.Image],
        num_crops: int | None = None,
        return_tensors: str | None = None,
    ) -> BatchFeature:
        """Process one image or a list of PIL images.

        Returns a `BatchFeature` with `pixel_values` [N, num_crops + 1, 3, 336, 336], `image_sizes` [N, 2]
        (HD height, width) and `num_img_tokens` [N] (placeholder tokens per image).
        """
        images = [images] if isinstance(images, Image.Image) else list(images)
        num_crops = int(num_crops or self.num_crops)
        if num_crops < 1:
            raise ValueError(f"num_crops must be >= 1, got {num_crops}")
        pixel_values, image_sizes, tokens = [], [], []
        for index, image in enumerate(images):
            if not isinstance(image, Image.Image):
                raise ValueError(f"image {index}: expected a PIL image, got {type(image).__name__}")
            if image.width < 1 or image.height < 1:
                raise ValueError(f"image {index}: empty image ({image.width}x{image.height})")
            if image.mode != "RGB":
                if not self.do_convert_rgb:
                    raise ValueError(f"image {index}: mode {image.mode} is not RGB and do_convert_rgb is False")
                image = image.convert("RGB")  # alpha dropped, not composited (the released stack)
            crops, (height, width) = self.to_crops(image, num_crops)
            pixel_values.append(crops)
            image_sizes.append([height, width])
            tokens.append(num_image_tokens(height, width))
        data = {
            "pixel_values": torch.stack(pixel_values)
            if pixel_values
            else torch.zeros(0, num_crops + 1, 3, CROP_SIZE, CROP_SIZE),
            "image_sizes": torch.tensor(image_sizes, dtype=torch.long).reshape(-1, 2),
            "num_img_tokens": torch.tensor(tokens, dtype=torch.long),
        }
        return BatchFeature(data=data, tensor_type=return_tensors)


Phi3VImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = ["CROP_SIZE", "MERGED_GRID", "Phi3VImageProcessor", "hd_padded_size", "hd_transform", "num_image_tokens"]
