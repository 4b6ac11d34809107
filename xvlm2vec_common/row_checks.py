"""What a row must satisfy so that every verb after the builders can process it.

One set of checks serves both sides: ``build mmmeb`` and ``build parallel`` reject a row that fails
one (a counted rejection naming file and line), ``train``'s collator skips it, and ``eval`` refuses a
dataset holding one (built elsewhere) with one line naming the split and query, instead of aborting
halfway or running for minutes:

- texts: non-empty and at most :data:`MAX_TEXT_CHARS` characters (``empty_text``, ``text_too_long``);
- images: an aspect ratio of at most :data:`MAX_ASPECT_RATIO` (``extreme_aspect_ratio``): Qwen2-VL's
  and Qwen2.5-VL's image processors abort the whole batch above it;
- image tags of a parallel row: the same number on both sides, one when the row has an image and none
  without (``lost_image_tag``, ``image_tag_mismatch``);
- language codes with a region (``pt-BR``, BCP 47) as split names: ``datasets`` split names allow no
  ``-``, so the split of ``pt-BR`` is ``pt_BR`` (:func:`split_name`, :func:`split_language`).
"""

from __future__ import annotations

from modeling_xvlm2vec.instructions import CANONICAL_IMAGE_TAG

MAX_TEXT_CHARS = 8192
"""Longest text accepted, in characters (queries, candidates, corpus sides): about 2,000 tokens, four times the
longest training sequence of the recipes (``max_length: 512``). The release's longest texts are a few hundred
characters; one 100,000-character query alone took 4 minutes and 1.7 GB to embed on CPU."""
MAX_ASPECT_RATIO = 200
"""Largest ratio of an image's longer to its shorter side; Qwen2-VL's ``smart_resize`` raises above it."""


class RowError(ValueError):
    """A row that cannot be used; ``reason`` is the counted rejection reason, ``line_no`` its line when known."""

    def __init__(self, reason: str, message: str, line_no: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.line_no = line_no


def check_text(value: object, what: str) -> str:
    """Return ``value`` when it is a usable text, else raise ``RowError`` (``empty_text``, ``text_too_long``).

    A text holding nothing but image tags and spaces is empty.
    """
    if not isinstance(value, str) or not value.replace(CANONICAL_IMAGE_TAG, "").strip():
        raise RowError("empty_text", f"{what} is empty or not a string")
    if len(value) > MAX_TEXT_CHARS:
        raise RowError("text_too_long", f"{what} holds {len(value)} characters, over the limit of {MAX_TEXT_CHARS}")
    return value


def image_shape_problem(width: int, height: int) -> tuple[str, str] | None:
    """``(reason, detail)`` when an image of ``width`` x ``height`` pixels cannot be processed, else None."""
    if min(width, height) < 1:
        return "corrupt_image", f"{width}x{height} pixels"
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        return (
            "extreme_aspect_ratio",
            f"{width}x{height} pixels, an aspect ratio over {MAX_ASPECT_RATIO} (the Qwen2-VL processors refuse it)",
        )
    return None


def check_image_tags(text_en: str, text_lang: str, has_image: bool) -> None:
    """Raise ``RowError`` unless both sides hold the same number of image tags: one with an image, none without."""
    tags_en, tags_x = text_en.count(CANONICAL_IMAGE_TAG), text_lang.count(CANONICAL_IMAGE_TAG)
    if tags_en != tags_x:
        raise RowError(
            "lost_image_tag", f"image tag mismatch between sides ({tags_en} in text_en, {tags_x} in text_lang)"
        )
    if tags_en != int(has_image):
        if not has_image:
            detail = "image tag without image"
        else:
            detail = "image without image tag" if tags_en == 0 else f"{tags_en} image tags for one image"
        raise RowError("image_tag_mismatch", f"the image tag and the image disagree: {detail}")


def split_name(language: str) -> str:
    """The split name of a language code: ``pt-BR`` -> ``pt_BR`` (split names allow no ``-``); others unchanged."""
    return language.replace("-", "_")


def split_language(split: str) -> str:
    """The language code of a split name (the inverse of :func:`split_name`): ``pt_BR`` -> ``pt-BR``."""
    return split.replace("_", "-")
