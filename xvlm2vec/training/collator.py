"""Turning parallel-corpus rows into student and teacher batches, with bad rows skipped (counted) or refused."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image
from transformers import BatchFeature

from dataset_builders.image_cells import open_image_cell
from xvlm2vec_common.row_checks import RowError, check_image_tags, check_text, image_shape_problem

logger = logging.getLogger(__name__)

PrepareInputs = Callable[..., BatchFeature]
TEACHER_EMBEDDING = "teacher_embedding"
TEACHER_IMAGE_EMBEDDING = "teacher_image_embedding"


@dataclass(frozen=True)
class Rejection:
    """A parallel row the collator refused: its id, language, source data set (provenance) and the reason."""

    row_id: str
    reason: str
    lang: str | None = None
    source_dataset: str | None = None


@dataclass
class ParallelRow:
    """One validated parallel pair: its id, both texts, the decoded shared image (or None) and its position in the
    collated examples."""

    row_id: str
    text_en: str
    text_lang: str
    image: Image.Image | None
    position: int = 0
    source: dict[str, Any] = field(default_factory=dict, repr=False)


def to_rgb(image: Image.Image, resize: Sequence[int] | None) -> Image.Image:
    """`image` resized to `resize` (width, height; PIL's default filter, in the image's own mode) then made RGB.

    The order is the released run's (`Image.open(path).resize((1344, 1344))`, RGB conversion later in the
    processor); the conversion drops alpha, as the released stack did.
    """
    if resize is not None:
        image = image.resize(tuple(resize))
    return image.convert("RGB")


def decode_image(value: Any, row_id: str, resize: Sequence[int] | None = None) -> Image.Image | None:
    """Decode a datasets `Image` cell (`{"bytes", "path"}`, a PIL image or None) to RGB, or raise `ValueError`.

    With `resize` (width, height) the image is resized first, see `to_rgb`.
    """
    try:
        image = open_image_cell(value)
    except ValueError as error:
        raise ValueError(f"row {row_id}: {error}") from error
    if image is None:
        return None
    problem = image_shape_problem(*image.size) if resize is None else None
    if problem is not None:
        raise ValueError(f"row {row_id}: image of {problem[1]}")
    return to_rgb(image, resize)


class ParallelCollator:
    """Collate parallel-corpus rows (`id`, `text_en`, `text_lang`, `image`) for [`SKDTrainer`].

    Output keys: `student_inputs` (English rows then x rows, one padded batch) or, unfused,
    `student_en_inputs` and `student_lang_inputs`; then either `teacher_embeddings` (and
    `teacher_image_embeddings`), read from the rows' `teacher_embedding` (`teacher_image_embedding`) columns
    when the dataset has them (the teacher cache, `teacher_columns`), or `teacher_inputs` (the English side);
    and `skipped_rows`, the number of bad rows dropped, `rejected_rows` (their :class:`Rejection`s) and `rows`
    (how many rows came in).

    A row is bad when it fails the checks the builders apply (`xvlm2vec_common.row_checks`: a text empty or
    too long, an image of extreme aspect ratio unless `image_resize` is set, image tags on one side only or
    without an image), its image cannot be read, or a side is longer than `max_length` tokens.
    `bad_rows="skip"` drops it with a warning naming its id; `"error"` raises `ValueError` naming it. With
    `image_resize` (width, height) every image is resized to that size first (the released run: 1344x1344).
    When every row of a batch is bad, the collator raises `ValueError`, or with `keep_empty` returns
    `{"empty_batch": True, ...}` with the counts (the trainer skips such a batch and counts it).
    """

    def __init__(
        self,
        prepare_inputs: PrepareInputs,
        max_length: int | None = None,
        bad_rows: str = "skip",
        fused: bool = True,
        image_resize: Sequence[int] | None = None,
        keep_empty: bool = False,
    ) -> None:
        if bad_rows not in ("skip", "error"):
            raise ValueError(f"bad_rows must be 'skip' or 'error', got {bad_rows!r}")
        self.prepare_inputs = prepare_inputs
        self.max_length = max_length
        self.bad_rows = bad_rows
        self.fused = fused
        self.image_resize = image_resize
        self.keep_empty = keep_empty

    # ------------------------------------------------------------------ validation
    def _reject(self, row: dict[str, Any] | ParallelRow, row_id: str, reason: str) -> Rejection:
        """Raise for `bad_rows="error"`; else log the skip and return the row's :class:`Rejection`."""
        message = f"parallel row {row_id}: {reason}"
        if self.bad_rows == "error":
            raise ValueError(message)
        logger.warning("skipping %s", message)
        source = row if isinstance(row, dict) else row.source
        return Rejection(row_id, reason, source.get("lang"), source.get("source_dataset"))

    @staticmethod
    def _check_texts(row: dict[str, Any], row_id: str) -> str | None:
        """Return why the row's texts are bad, or None."""
        try:
            text_en, text_lang = (
                check_text(row.get("text_en"), "text_en"),
                check_text(row.get("text_lang"), "text_lang"),
            )
            check_image_tags(text_en, text_lang, row.get("image") is not None)
        except RowError as error:
            return str(error)
        return None

    def _fits(self, row: ParallelRow) -> str | None:
        """Return why the row cannot be processed (too long, processor refusal), or None."""
        for side, text in (("text_en", row.text_en), ("text_lang", row.text_lang)):
            try:
                self.prepare_inputs([text], [row.image], max_length=self.max_length)
            except ValueError as error:
                return f"{side}: {error}"
        return None

    def clean(self, rows: Sequence[dict[str, Any]]) -> tuple[list[ParallelRow], list[Rejection]]:
        """Validate and decode rows; return the good ones and the rejections of the others."""
        good: list[ParallelRow] = []
        rejected: list[Rejection] = []
        for position, row in enumerate(rows):
            row_id = str(row.get("id", f"#{position}"))
            reason = self._check_texts(row, row_id)
            image = None
            if reason is None:
                try:
                    image = decode_image(row.get("image"), row_id, self.image_resize)
                except ValueError as error:
                    reason = str(error).removeprefix(f"row {row_id}: ")
            if reason is not None:
                rejected.append(self._reject(row, row_id, reason))
                continue
            provenance = {key: row.get(key) for key in ("lang", "source_dataset")}
            good.append(ParallelRow(row_id, row["text_en"], row["text_lang"], image, position, provenance))
        return good, rejected

    def build(self, rows: list[ParallelRow], sides: Sequence[str]) -> BatchFeature:
        """One padded batch of the rows' `sides` (attribute names), side after side, images repeated."""
        texts = [getattr(row, side) for side in sides for row in rows]
        images = [row.image for _ in sides for row in rows]
        return self.prepare_inputs(texts, images, max_length=self.max_length)

    def prepare(
        self, rows: list[ParallelRow], sides: Sequence[str]
    ) -> tuple[BatchFeature | None, list[ParallelRow], list[Rejection]]:
        """Build the batch of `sides`, dropping rows that do not fit; return it (None when no row fits), the rows
        kept and the rejections.
        """
        try:
            return self.build(rows, sides), rows, []
        except ValueError:
            pass  # find the offending rows one by one, then rebuild without them
        fitting, rejected = [], []
        for row in rows:
            reason = self._fits(row)
            if reason is None:
                fitting.append(row)
            else:
                rejected.append(self._reject(row, row.row_id, reason))
        return (self.build(fitting, sides) if fitting else None), fitting, rejected

    # ------------------------------------------------------------------ batches
    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        rows, rejected = self.clean(examples)
        batch: dict[str, Any] = {}
        english = None
        if rows and self.fused:
            batch["student_inputs"], rows, dropped = self.prepare(rows, ("text_en", "text_lang"))
            rejected += dropped
        elif rows:
            english, rows, dropped = self.prepare(rows, ("text_en",))
            rejected += dropped
            if rows:
                batch["student_lang_inputs"], kept, more = self.prepare(rows, ("text_lang",))
                if more:  # an x side did not fit: rebuild the English side on the same rows
                    english, rows, rejected = (self.build(kept, ("text_en",)) if kept else None), kept, rejected + more
            batch["student_en_inputs"] = english
        counts = {"skipped_rows": len(rejected), "rejected_rows": rejected, "rows": len(examples)}
        if not rows:
            if not self.keep_empty:
                raise ValueError(f"every row of the batch is bad ({len(examples)} rows); see the warnings above")
            return {"empty_batch": True, **counts}
        batch.update(counts)
        if TEACHER_EMBEDDING in examples[0]:
            batch.update(self.cached_teacher(examples, rows))
        else:
            batch["teacher_inputs"] = english if english is not None else self.build(rows, ("text_en",))
        return batch

    @staticmethod
    def cached_teacher(examples: Sequence[dict[str, Any]], rows: list[ParallelRow]) -> dict[str, torch.Tensor]:
        """The kept rows' teacher embeddings from their teacher-cache columns."""
        found = {}
        for column, key in (
            (TEACHER_EMBEDDING, "teacher_embeddings"),
            (TEACHER_IMAGE_EMBEDDING, "teacher_image_embeddings"),
        ):
            if column not in examples[0]:
                continue
            values = [examples[row.position][column] for row in rows]
            missing = [row.row_id for row, value in zip(rows, values) if value is None]
            if missing:
                raise ValueError(
                    f"the teacher cache has no embedding for rows {missing}; delete the cache file to rebuild it"
                )
            found[key] = torch.tensor(values, dtype=torch.float32)
        return found
