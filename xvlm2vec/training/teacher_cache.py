"""The teacher's English embeddings as columns of the training split: one fingerprinted, cached `Dataset.map`."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import pyarrow
import pyarrow.ipc
import torch

from modeling_xvlm2vec.prefetch import CopyPool, prefetch

from ..fingerprint import code_state, processor_state
from .collator import TEACHER_EMBEDDING, TEACHER_IMAGE_EMBEDDING, ParallelCollator
from .loss import parameter_dtype, to_dtype
from .teacher import Teacher

logger = logging.getLogger(__name__)

SOURCE_COLUMNS = ("id", "text_en", "text_lang", "image")


def settings_fingerprint(
    model_config: Any,
    processor: Any,
    max_length: int | None,
    image_pooling: str = "prefix",
    image_resize: Sequence[int] | None = None,
) -> str:
    """sha256 of what else shapes the teacher columns: model config, processor (tokenizer included) and code, max
    length, image pooling and resize."""
    state = {
        "config": model_config.to_json_string(use_diff=False),
        "processor": processor_state(processor),
        "code": code_state(processor),
        "max_length": max_length,
        "image_pooling": image_pooling,
        "image_resize": list(image_resize) if image_resize is not None else None,
    }
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()


def teacher_columns(
    dataset: datasets.Dataset,
    teacher: Teacher,
    runner: torch.nn.Module,
    collator: ParallelCollator,
    settings: str,
    folder: str | Path,
    batch_size: int,
    image_pooling: str = "prefix",
    num_workers: int = 0,
) -> tuple[datasets.Dataset, Path]:
    """`dataset` with the teacher's English embeddings as the `teacher_embedding` column and its image-loss pooling
    (`image_pooling`) as `teacher_image_embedding` (both computed, so runs with and without `image_loss` share
    the file), float32; None for a row the collator refuses (it never reaches training).

    One batched `Dataset.map` whose `new_fingerprint` is a sha256 of the teacher weights, `settings`
    (`settings_fingerprint`) and the dataset's own fingerprint; its result is the arrow file
    `folder/teacher-<fingerprint>.arrow`, so a later run with the same teacher, data and settings reads it
    instead of running the teacher, and a changed one gets another file. A cache file that cannot be read is
    recomputed. Returns the dataset with the columns and the cache file's path.

    With ``num_workers > 0``, that many threads decode the next batches' images and run the processor (each with
    a private copy of the collator) while the teacher embeds the current batch; the columns are the same.
    """
    names = [TEACHER_EMBEDDING, TEACHER_IMAGE_EMBEDDING]
    dataset = dataset.remove_columns([name for name in names if name in dataset.column_names])
    fingerprint = hashlib.sha256(f"{teacher.fingerprint()}|{settings}|{dataset._fingerprint}".encode()).hexdigest()
    path = Path(folder) / f"teacher-{fingerprint[:32]}.arrow"
    device = next(runner.parameters()).device
    dtype = parameter_dtype(runner)

    def prepared(examples: list[dict], own: ParallelCollator) -> tuple[list, Any]:
        """The rows the collator keeps and their processed English batch (None when none is kept)."""
        rows, _ = own.clean(examples)
        if not rows:
            return rows, None
        inputs, rows, _ = own.prepare(rows, ("text_en",))
        return rows, inputs

    def rows_of(batch: dict[str, list]) -> list[dict]:
        return [dict(zip(batch, values)) for values in zip(*batch.values())]

    copies = CopyPool(collator)

    def prepare_ahead(start: int) -> tuple[int, list, Any]:
        with copies.borrow() as own:
            return start, *prepared(rows_of(source[start : start + batch_size]), own)

    ahead = None  # set below, once the source columns are chosen

    def embed(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        found: dict[str, list] = {name: [None] * len(indices) for name in names}
        if ahead is None:
            rows, inputs = prepared(rows_of(batch), collator)
        else:
            start, rows, inputs = next(ahead)
            if start != indices[0]:
                raise RuntimeError(f"teacher cache: batch at row {indices[0]} arrived, row {start} was prepared")
        if rows:
            outputs = teacher.embed(runner, to_dtype(inputs, dtype, device), True, image_pooling)
            for name, values in zip(names, outputs):
                for row, value in zip(rows, values.float().cpu().tolist()):
                    found[name][row.position] = value
        return found

    # only the columns the collator reads, images undecoded (never re-encoded); the map writes the new columns only
    source = dataset.select_columns([name for name in SOURCE_COLUMNS if name in dataset.column_names])
    if isinstance(source.features.get("image"), datasets.Image):
        source = source.cast_column("image", datasets.Image(decode=False))
    features = datasets.Features({name: datasets.List(datasets.Value("float32")) for name in names})
    if num_workers:  # lazy: nothing is prepared unless the map really runs
        ahead = prefetch(prepare_ahead, range(0, len(source), batch_size), num_workers)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and not _readable(path):
        logger.warning("teacher cache %s cannot be read; recomputing", path)
        path.unlink()
    columns = source.map(
        embed,
        with_indices=True,
        batched=True,
        batch_size=batch_size,
        features=features,
        remove_columns=source.column_names,
        new_fingerprint=fingerprint,
        cache_file_name=str(path),
        load_from_cache_file=True,
        desc="teacher cache",
    )
    if ahead is not None:
        ahead.close()  # a map read from its cache file never started it; otherwise it is exhausted
    if columns.data.column(TEACHER_EMBEDDING).null_count == len(columns):
        raise ValueError("the teacher cache is empty: every training row is bad")
    return datasets.concatenate_datasets([dataset, columns], axis=1), path


def _readable(path: Path) -> bool:
    """Whether `path` is a readable arrow stream file (a datasets cache file)."""
    try:
        with pyarrow.memory_map(str(path)) as source:
            pyarrow.ipc.open_stream(source).read_all()
    except (OSError, pyarrow.ArrowException):
        return False
    return True
