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

from ..fingerprint import code_state, processor_state
from .collator import TEACHER_EMBEDDING, TEACHER_IMAGE_EMBEDDING, ParallelCollator
from .teacher import Teacher
from .tensors import parameter_dtype, to_dtype

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
) -> tuple[datasets.Dataset, Path]:
    """`dataset` with the teacher's English embeddings as the `teacher_embedding` column and its image-loss pooling
    (`image_pooling`) as `teacher_image_embedding` (both computed, so runs with and without `image_loss` share
    the file), float32; None for a row the collator refuses (it never reaches training).

    One batched `Dataset.map` whose `new_fingerprint` is a sha256 of the teacher weights, `settings`
    (`settings_fingerprint`) and the dataset's own fingerprint; its result is the arrow file
    `folder/teacher-<fingerprint>.arrow`, so a later run with the same teacher, data and settings reads it
    instead of running the teacher, and a changed one gets another file. A cache file that cannot be read is
    recomputed. Returns the dataset with the columns and the cache file's path.
    """
    names = [TEACHER_EMBEDDING, TEACHER_IMAGE_EMBEDDING]
    dataset = dataset.remove_columns([name for name in names if name in dataset.column_names])
    fingerprint = hashlib.sha256(f"{teacher.fingerprint()}|{settings}|{dataset._fingerprint}".encode()).hexdigest()
    path = Path(folder) / f"teacher-{fingerprint[:32]}.arrow"
    device = next(runner.parameters()).device
    dtype = parameter_dtype(runner)

    def embed(batch: dict[str, list]) -> dict[str, list]:
        examples = [dict(zip(batch, values)) for values in zip(*batch.values())]
        found: dict[str, list] = {name: [None] * len(examples) for name in names}
        rows, _ = collator.clean(examples)
        if rows:
            inputs, rows, _ = collator.prepare(rows, ("text_en",))
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
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and not _readable(path):
        logger.warning("teacher cache %s cannot be read; recomputing", path)
        path.unlink()
    columns = source.map(
        embed,
        batched=True,
        batch_size=batch_size,
        features=features,
        remove_columns=source.column_names,
        new_fingerprint=fingerprint,
        cache_file_name=str(path),
        load_from_cache_file=True,
        desc="teacher cache",
    )
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
