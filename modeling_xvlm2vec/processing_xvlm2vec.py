"""Turning (text, image) rows into a padded backbone batch, with the checks that keep bad input out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from PIL import Image, UnidentifiedImageError
from transformers import BatchFeature

from .conventions import CONVENTIONS, DEFAULT_CONVENTION, Convention, format_row
from .instructions import CANONICAL_IMAGE_TAG, to_image_tag

ImageInput = Image.Image | str | os.PathLike | None


def load_image(image: ImageInput, row: int) -> Image.Image | None:
    """Return ``image`` as an RGB PIL image (opening a path), or raise ``ValueError`` naming ``row``."""
    if image is None or isinstance(image, Image.Image):
        return image.convert("RGB") if image is not None and image.mode != "RGB" else image
    if not isinstance(image, (str, os.PathLike)):
        raise ValueError(f"row {row}: image must be a PIL image, a path or None, got {type(image).__name__}")
    try:
        with Image.open(image) as opened:
            opened.load()
            return opened.convert("RGB")
    except (OSError, UnidentifiedImageError) as error:
        raise ValueError(f"row {row}: cannot read image {os.fspath(image)!r}: {error}") from error


def count_image_tags(text: str, image_tag: str) -> int:
    """How many image tags ``text`` holds, in the canonical or the backbone's own syntax."""
    return text.count(image_tag) + (text.count(CANONICAL_IMAGE_TAG) if image_tag != CANONICAL_IMAGE_TAG else 0)


def add_image_tags(texts: Sequence[Any], images: Sequence[Any], image_tag: str) -> list[Any]:
    """Give every row that has an image and no image tag the tag where VLM2Vec puts it.

    The tag goes at the start, followed by a newline (``<|image_1|>\\n`` + text); a row whose text is
    empty becomes the tag alone. Rows that already have a tag, have no image, or whose text is not a
    string are returned unchanged (``check_rows`` reports the latter).
    """
    tagged = []
    for text, image in zip(texts, images):
        if image is not None and isinstance(text, str) and count_image_tags(text, image_tag) == 0:
            text = f"{CANONICAL_IMAGE_TAG}\n{text}" if text.strip() else CANONICAL_IMAGE_TAG
        tagged.append(text)
    return tagged


def check_rows(
    texts: Sequence[str], images: Sequence[Any], image_tag: str, row_ids: Sequence[int] | None = None
) -> None:
    """Raise ``ValueError`` naming the row for a tag without image, too many tags, or an empty row.

    ``row_ids`` are the numbers the caller knows its rows by (default: their positions).
    """
    if len(texts) != len(images):
        raise ValueError(
            f"texts and images must have the same length, got {len(texts)} texts and {len(images)} images"
        )
    if not texts:
        raise ValueError("no inputs: give at least one text or image")
    row_ids = range(len(texts)) if row_ids is None else row_ids
    for row, text, image in zip(row_ids, texts, images):
        if not isinstance(text, str):
            raise ValueError(f"row {row}: text must be a string, got {type(text).__name__}")
        tags = count_image_tags(text, image_tag)
        if image is None and tags:
            raise ValueError(f"row {row}: the text has an image tag but no image was given")
        if image is not None and tags > 1:
            raise ValueError(f"row {row}: the text has {tags} image tags; one image per row is supported")
        if image is None and not text.strip():
            raise ValueError(f"row {row}: empty text and no image")


def format_prompts(
    texts: Sequence[str],
    images: Sequence[Any],
    image_tag: str,
    row_ids: Sequence[int] | None = None,
    convention: Convention = CONVENTIONS[DEFAULT_CONVENTION],
    system_prompt: str | None = None,
) -> list[str]:
    """The exact prompt strings :func:`prepare_inputs` gives the processor: rows checked, image tags added where
    missing, each row put in ``convention``'s prompt, the backbone's ``image_tag`` in place of the canonical one."""
    texts = add_image_tags(texts, images, image_tag)
    check_rows(texts, images, image_tag, row_ids)
    if image_tag != CANONICAL_IMAGE_TAG:
        texts = [text.replace(image_tag, CANONICAL_IMAGE_TAG) for text in texts]
    return [to_image_tag(format_row(convention, text, system_prompt), image_tag) for text in texts]


def prepare_inputs(
    processor: Any,
    texts: Sequence[str],
    images: Sequence[ImageInput],
    image_tag: str,
    padding_side: str = "right",
    max_length: int | None = None,
    row_ids: Sequence[int] | None = None,
    convention: Convention = CONVENTIONS[DEFAULT_CONVENTION],
    system_prompt: str | None = None,
) -> BatchFeature:
    """Validate rows, put each in ``convention``'s prompt and run the backbone processor into one padded batch.

    ``texts`` may use the canonical tag ``<|image_1|>`` or the backbone's own ``image_tag``; a row with
    an image and no tag gets one at the start (see ``add_image_tags``); rows without an image may be
    mixed with image rows. A chat convention puts each row in its template with ``system_prompt`` (default:
    the convention's) as the system instruction (see ``conventions.format_row``). With ``max_length``, a row
    whose tokenised length
    exceeds it raises ``ValueError`` (nothing is truncated silently: truncation could cut image tokens).
    Errors name rows by ``row_ids`` (default: positions in this call).
    """
    row_ids = list(range(len(texts))) if row_ids is None else list(row_ids)
    prompts = format_prompts(texts, images, image_tag, row_ids, convention, system_prompt)
    loaded = [load_image(image, row) for row, image in zip(row_ids, images)]
    present = [image for image in loaded if image is not None]
    tokenizer = getattr(processor, "tokenizer", processor)
    tokenizer.padding_side = padding_side
    batch = processor(text=prompts, images=present or None, padding=True, return_tensors="pt")
    check_lengths(batch, max_length, row_ids)
    return batch


def check_lengths(
    batch: BatchFeature, max_length: int | None, row_ids: Sequence[int], setting: str = "max_length"
) -> None:
    """Raise ``ValueError`` naming the rows of ``batch`` longer than ``max_length`` tokens (``None``: no cap).

    ``setting`` is the name the user set the cap by, used in the message.
    """
    if max_length is None:
        return
    lengths = batch["attention_mask"].sum(-1).tolist()
    too_long = [row for row, length in zip(row_ids, lengths) if length > max_length]
    if too_long:
        raise ValueError(f"rows {too_long} are longer than {setting}={max_length} tokens")
