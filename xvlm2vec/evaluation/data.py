"""Read MMMEB splits (the Hub layout of docs/architecture.md) into light, image-decoding-free rows.

Images stay encoded until an embedder needs them: each image is known by an id (the SHA-256 of its
bytes, or its path when it is stored by path only) and decoded from a table of unique images.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import datasets
from PIL import Image

from dataset_builders import hub_layout
from dataset_builders.hub_folder import read_hub_folder
from dataset_builders.image_cells import open_image_cell
from dataset_builders.mmmeb import FEATURES as MMMEB_FEATURES
from modeling_xvlm2vec.instructions import INSTRUCTIONS

REQUIRED_COLUMNS = tuple(MMMEB_FEATURES)
# Rows decoded to Python at a time: a t2i row may carry a thousand encoded candidate images.
ROWS_PER_READ = 16


def parse_config(config: str) -> tuple[str, str]:
    """Split a config name ``{dataset}_{task}`` (e.g. ``xtd_i2t``) into dataset and task."""
    dataset, _, task = config.rpartition("_")
    if not dataset or task not in INSTRUCTIONS:
        raise ValueError(
            f"config {config!r} is not of the form {{dataset}}_{{task}} with task in {sorted(INSTRUCTIONS)}"
        )
    return dataset, task


@dataclass
class Candidate:
    """One candidate: a text, or an image id (exactly one of them is set)."""

    text: str | None
    image_id: str | None


@dataclass
class QueryRow:
    """One query: its text and/or image id, its own candidate list and the positive's index."""

    id: str
    text: str | None
    image_id: str | None
    candidates: list[Candidate]
    positive_index: int


@dataclass
class SplitData:
    """All queries of one (config, language) split plus the encoded bytes of every image they use.

    ``fingerprint`` is a SHA-256 of the rows' content (images by content hash), so it changes
    whenever the data does, wherever it is stored.
    """

    config: str
    dataset: str
    task: str
    language: str
    fingerprint: str
    rows: list[QueryRow]
    images: dict[str, dict] = field(default_factory=dict)

    def image(self, image_id: str | None) -> Image.Image | None:
        """Decode the image ``image_id`` (None stays None)."""
        if image_id is None:
            return None
        return open_image_cell(self.images[image_id]).convert("RGB")

    def image_name(self, image_id: str | None) -> str | None:
        """The file name the image ``image_id`` was stored under (None for no image or no name)."""
        return None if image_id is None else self.images[image_id].get("path")


def _image_id(stored: dict | None, where: str) -> str | None:
    if stored is None:
        return None
    if stored.get("bytes") is not None:
        return "sha256:" + hashlib.sha256(stored["bytes"]).hexdigest()
    if stored.get("path"):
        return "path:" + stored["path"]
    raise ValueError(f"{where}: image has neither bytes nor path")


def load_split(data: str, config: str, language: str, max_queries: int | None = None) -> SplitData:
    """Load split ``language`` of ``config`` from the folder or Hub repo ``data``.

    Validates columns and each row (a candidate list must be all texts or all images and
    non-empty; the positive index must fall inside it), raising a ``ValueError`` that names the
    split and query id. A query whose text is null is kept here: the protocol skips it when scoring.
    """
    dataset_name, task = parse_config(config)
    folder = read_hub_folder(data)
    table = folder.load_split(config, language) if folder else hub_layout.load_split(data, config, language)
    missing = [column for column in REQUIRED_COLUMNS if column not in table.column_names]
    if missing:
        raise ValueError(f"{data} {config}/{language}: missing columns {missing}")
    if max_queries is not None:
        table = table.select(range(min(max_queries, len(table))))
    rows: list[QueryRow] = []
    images: dict[str, dict] = {}
    digest = hashlib.sha256(f"{config}/{language}".encode())
    raw = table.with_format("arrow")
    for start in range(0, len(table), ROWS_PER_READ):
        batch = raw[start : start + ROWS_PER_READ].to_pylist()
        for record in batch:
            where = f"{config}/{language} query {record['id']!r}"
            query_image = _image_id(record["query_image"], where)
            if query_image is not None:
                images.setdefault(query_image, record["query_image"])
            texts, stored_images = record["candidate_texts"] or [], record["candidate_images"] or []
            if bool(texts) == bool(stored_images):
                raise ValueError(
                    f"{where}: needs either candidate texts or candidate images "
                    f"(got {len(texts)} and {len(stored_images)})"
                )
            if texts:
                candidates = [Candidate(text, None) for text in texts]
            else:
                candidates = []
                for stored in stored_images:
                    image_id = _image_id(stored, where)
                    images.setdefault(image_id, stored)
                    candidates.append(Candidate(None, image_id))
            positive = int(record["positive_index"])
            if not 0 <= positive < len(candidates):
                raise ValueError(f"{where}: positive index {positive} out of range for {len(candidates)} candidates")
            row = QueryRow(record["id"], record["query_text"], query_image, candidates, positive)
            digest.update(json.dumps(asdict(row), ensure_ascii=False).encode())
            rows.append(row)
    return SplitData(config, dataset_name, task, language, digest.hexdigest(), rows, images)


def split_names(data: str, config: str) -> list[str]:
    """The language splits of ``config`` (a local folder's card is parsed once: :mod:`dataset_builders.hub_folder`)."""
    folder = read_hub_folder(data)
    return folder.split_names(config) if folder else list(datasets.get_dataset_split_names(data, config))


def config_names(data: str) -> list[str]:
    """The ``{dataset}_{task}`` configs of the MMMEB folder or repo ``data``."""
    folder = read_hub_folder(data)
    return folder.config_names() if folder else list(datasets.get_dataset_config_names(data))
