"""Phi-3.5-V processor: the image processor plus the tokenizer, ``<|image_N|>`` tags expanded to placeholders.

As the original processor, the text is split at its image tags and each piece is tokenised on its own
(with the tokenizer's special tokens); between the pieces come as many placeholder tokens as the image
gives features. Unlike the original, whose placeholders are negative ids (``-N`` for image N) and which
takes one prompt at a time, the placeholders here are the real ``<|image|>`` token and a batch of prompts
is padded (right by default, with ``<|endoftext|>`` = 32000 in Phi-3.5-V) into one tensor.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

from PIL import Image
from transformers import BatchFeature
from transformers.processing_utils import ProcessorMixin

#: An image tag in a prompt: ``<|image_1|>``, ``<|image_2|>``, ...
IMAGE_TAG_PATTERN = re.compile(r"<\|image_(\d+)\|>")


class ImageTags(Sequence):
    """`<|image_1|>`, `<|image_2|>`, ...: the tag of each image of a prompt, by position (lazy, unbounded).

    The original processor's `img_tokens`, which vLLM's Phi-3.5-V support reads.
    """

    def __len__(self) -> int:
        return sys.maxsize

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[position] for position in range(*index.indices(len(self)))]
        if index < 0:
            raise IndexError("image tags are indexed from the first (no negative index)")
        return f"<|image_{index + 1}|>"


class Phi3VProcessor(ProcessorMixin):
    r"""Phi-3.5-V processor: [`Phi3VImageProcessor`] + the Phi-3.5 (Llama) tokenizer.

    In each prompt, `<|image_1|>`, `<|image_2|>`, ... stand for that prompt's images, which are taken in
    order from the flat `images` list. Each tag becomes `num_image_tokens` `<|image|>` placeholders.

    Args:
        image_processor ([`Phi3VImageProcessor`]): the HD-transform image processor.
        tokenizer ([`PreTrainedTokenizerBase`]): a tokenizer with the `<|image|>` token and a pad token.
    """

    image_token = "<|image|>"
    img_tokens = ImageTags()

    def __init__(self, image_processor=None, tokenizer=None, **kwargs):
        super().__init__(image_processor, tokenizer, **kwargs)

    @property
    def image_token_id(self) -> int:
        """Id of the `<|image|>` placeholder token in the tokenizer."""
        token_id = self.tokenizer.convert_tokens_to_ids(self.image_token)
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {self.image_token} token")
        return token_id

    @property
    def model_input_names(self) -> list[str]:
        """Names of the tensors the processor returns."""
        return ["input_ids", "attention_mask", "pixel_values", "image_sizes"]

    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        images: Image.Image | Sequence[Image.Image] | None = None,
        padding: bool | str = False,
        truncation: bool = False,
        max_length: int | None = None,
        padding_side: str | None = None,
        num_crops: int | None = None,
        return_tensors: str | None = "pt",
    ) -> BatchFeature:
        """Tokenise prompts, expand their image tags and process their images.

        Args:
            text: one prompt or a list; image tags `<|image_k|>` must be numbered 1..n in each prompt.
            images: one PIL image or the flat list of all prompts' images, in tag order.
            padding: as the tokenizer's (`True`/`"longest"`, `"max_length"`, `False`); needed for batches
                of different lengths when returning tensors.
            truncation: cut rows to `max_length`; `ValueError` if that would cut image placeholders.
            max_length: length for truncation / `"max_length"` padding.
            padding_side: `"right"` (VLM2Vec) or `"left"`; default: the tokenizer's.
            num_crops: override the image processor's `num_crops` for this call.
            return_tensors: `"pt"` (default), `"np"` or `None` (lists).

        Returns:
            `BatchFeature` with `input_ids`, `attention_mask` and, with images, `pixel_values`
            [num_images, num_crops + 1, 3, 336, 336] and `image_sizes` [num_images, 2].
        """
        if text is None:
            raise ValueError("Phi3VProcessor needs text: put <|image_1|> where the image goes")
        texts = [text] if isinstance(text, str) else list(text)
        images = [] if images is None else [images] if isinstance(images, Image.Image) else list(images)
        image_inputs = self.image_processor(images, num_crops=num_crops) if images else None
        tokens_per_image = image_inputs["num_img_tokens"].tolist() if images else []
        placeholder = self.image_token_id if images else None

        pieces_per_row, tags_per_row = [], []
        for row, prompt in enumerate(texts):
            if not isinstance(prompt, str):
                raise ValueError(f"row {row}: text must be a string, got {type(prompt).__name__}")
            tags = [int(number) for number in IMAGE_TAG_PATTERN.findall(prompt)]
            if tags != list(range(1, len(tags) + 1)):
                raise ValueError(
                    f"row {row}: image tags must be <|image_1|>, <|image_2|>, ... once each and in order, got {tags}"
                )
            pieces_per_row.append(IMAGE_TAG_PATTERN.split(prompt)[::2])
            tags_per_row.append(len(tags))
        if sum(tags_per_row) != len(images):
            raise ValueError(f"the prompts hold {sum(tags_per_row)} image tags but {len(images)} images were given")

        flat_pieces = [piece for pieces in pieces_per_row for piece in pieces]
        encoded = iter(self.tokenizer(flat_pieces)["input_ids"])
        next_image = 0
        rows = []
        for pieces in pieces_per_row:
            ids = list(next(encoded))
            for _ in pieces[1:]:
                ids += [placeholder] * tokens_per_image[next_image] + list(next(encoded))
                next_image += 1
            rows.append(ids)

        if truncation and max_length is not None:
            for row, ids in enumerate(rows):
                kept = ids[:max_length]
                if placeholder is not None and kept.count(placeholder) != ids.count(placeholder):
                    raise ValueError(
                        f"row {row}: truncating to max_length={max_length} would cut its image placeholder tokens"
                    )
                rows[row] = kept
        pad_kwargs = {"padding_side": padding_side} if padding_side is not None else {}
        batch = self.tokenizer.pad(
            {"input_ids": rows}, padding=padding, max_length=max_length, return_attention_mask=True, **pad_kwargs
        )
        data = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if image_inputs is not None:
            data["pixel_values"] = image_inputs["pixel_values"]
            data["image_sizes"] = image_inputs["image_sizes"]
        return BatchFeature(data=data, tensor_type=return_tensors)

    def calc_num_image_tokens_from_image_size(self, width: int, height: int) -> int:
        """Placeholder tokens an image of ``width`` x ``height`` pixels becomes (the original's name, read by vLLM)."""
        return self.image_processor.num_image_tokens(width, height)

    def batch_decode(self, *args, **kwargs) -> list[str]:
        """The tokenizer's `batch_decode`."""
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs) -> str:
        """The tokenizer's `decode`."""
        return self.tokenizer.decode(*args, **kwargs)


Phi3VProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["IMAGE_TAG_PATTERN", "ImageTags", "Phi3VProcessor"]
