"""Teacher English embeddings computed once per (teacher weights, data, settings) and stored as safetensors."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..fingerprint import code_state, processor_state
from ..progress import bar_disabled
from .collator import ParallelCollator
from .teacher import Teacher
from .tensors import parameter_dtype, to_dtype

logger = logging.getLogger(__name__)

TEACHER_ROW = "teacher_row"


def _update(digest: Any, data: bytes) -> None:
    digest.update(len(data).to_bytes(8, "little"))
    digest.update(data)


def image_bytes(cell: Any) -> bytes:
    """Bytes that identify an image cell (`{"bytes", "path"}`, a PIL image or None)."""
    if cell is None:
        return b"\x00none"
    if isinstance(cell, dict):
        if cell.get("bytes") is not None:
            return cell["bytes"]
        path = cell.get("path")
        try:
            return Path(path).read_bytes()
        except OSError:
            return f"unreadable:{path}".encode()
    return f"{cell.mode}{cell.size}".encode() + cell.tobytes()


def rows_fingerprint(dataset: datasets.Dataset) -> str:
    """sha256 of the English texts and images of `dataset`, in order."""
    columns = dataset.select_columns(["text_en", "image"])
    if isinstance(columns.features["image"], datasets.Image) and columns.features["image"].decode:
        columns = columns.cast_column("image", datasets.Image(decode=False))
    digest = hashlib.sha256()
    for batch in columns.iter(batch_size=1000):
        for text, image in zip(batch["text_en"], batch["image"]):
            _update(digest, (text or "").encode())
            _update(digest, image_bytes(image))
    return digest.hexdigest()


def settings_fingerprint(
    model_config: Any,
    processor: Any,
    max_length: int | None,
    image_pooling: str = "prefix",
    image_resize: Sequence[int] | None = None,
) -> str:
    """sha256 of what else shapes a teacher embedding: model config, processor (tokenizer included) and code, max
    length, image pooling and resize."""
    digest = hashlib.sha256()
    _update(digest, model_config.to_json_string(use_diff=False).encode())
    _update(digest, json.dumps({"processor": processor_state(processor), "code": code_state(processor)},
                               sort_keys=True, default=str).encode())
    resize = list(image_resize) if image_resize is not None else None
    _update(digest, json.dumps({"max_length": max_length, "image_pooling": image_pooling, "image_resize": resize}).encode())
    return digest.hexdigest()


def compute_teacher_embeddings(
    teacher: Teacher,
    runner: torch.nn.Module,
    dataset: datasets.Dataset,
    collator: ParallelCollator,
    batch_size: int,
    image_pooling: str = "prefix",
) -> dict[str, torch.Tensor]:
    """Teacher embeddings of every row's English side ([N, D] float32; NaN rows for rows the collator refuses)."""
    device = next(runner.parameters()).device
    dtype = parameter_dtype(runner)
    embeddings: torch.Tensor | None = None
    image_embeddings: torch.Tensor | None = None
    for start in tqdm(range(0, len(dataset), batch_size), desc="teacher cache", disable=bar_disabled()):
        examples = [
            dict(example, **{TEACHER_ROW: start + offset})
            for offset, example in enumerate(dataset.select(range(start, min(start + batch_size, len(dataset)))))
        ]
        rows, _ = collator.clean(examples)
        if not rows:
            continue
        batch, rows, _ = collator.prepare(rows, ("text_en",))
        batch = to_dtype(batch, dtype, device)
        emb, image_emb = teacher.embed(runner, batch, with_images=True, image_pooling=image_pooling)
        if embeddings is None:
            embeddings = torch.full((len(dataset), emb.shape[-1]), float("nan"))
            image_embeddings = torch.full((len(dataset), image_emb.shape[-1]), float("nan"))
        index = torch.tensor([row.teacher_row for row in rows])
        embeddings[index] = emb.float().cpu()
        image_embeddings[index] = image_emb.float().cpu()
    if embeddings is None:
        raise ValueError("the teacher cache is empty: every training row is bad")
    return {"embeddings": embeddings, "image_embeddings": image_embeddings}


def load_or_build_teacher_cache(
    folder: str | Path,
    teacher: Teacher,
    runner: torch.nn.Module,
    dataset: datasets.Dataset,
    collator: ParallelCollator,
    settings: str,
    batch_size: int,
    image_pooling: str = "prefix",
) -> tuple[dict[str, torch.Tensor], Path]:
    """Load the cache file of (teacher, data, settings) from `folder`, or compute and write it.

    The file is named by the combined fingerprint and its metadata repeats it; a file whose metadata does
    not match is recomputed, so a changed teacher or dataset never reuses stale embeddings.
    """
    key = hashlib.sha256(f"{teacher.fingerprint()}|{rows_fingerprint(dataset)}|{settings}".encode()).hexdigest()
    path = Path(folder) / f"teacher-{key[:32]}.safetensors"
    if path.is_file():
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        if metadata.get("key") == key and metadata.get("rows") == str(len(dataset)):
            logger.info("teacher cache hit: %s", path)
            return load_file(str(path)), path
        logger.warning("teacher cache %s does not match its key; recomputing", path)
    cache = compute_teacher_embeddings(teacher, runner, dataset, collator, batch_size, image_pooling)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(cache, str(path), metadata={"key": key, "rows": str(len(dataset))})
    logger.info("teacher cache written: %s", path)
    return cache, path


def with_teacher_rows(dataset: datasets.Dataset) -> datasets.Dataset:
    """Add the `teacher_row` column (row index into the cache), replacing an existing one."""
    if TEACHER_ROW in dataset.column_names:
        dataset = dataset.remove_columns(TEACHER_ROW)
    return dataset.add_column(TEACHER_ROW, list(range(len(dataset))))
