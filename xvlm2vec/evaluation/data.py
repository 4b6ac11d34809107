"""Read MMMEB splits (the Hub layout of docs/architecture.md) into light, image-decoding-free rows.

Images stay encoded until an embedder needs them: each image is known by an id (the SHA-256 of its
bytes, or its path when it is stored by path only) and decoded from a table of unique images.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field

import datasets
from PIL import Image

from dataset_builders import hub_layout
from dataset_builders.hub_folder import read_hub_folder
from dataset_builders.image_cells import open_image_cell
from dataset_builders.mmmeb import FEATURES as MMMEB_FEATURES
from modeling_xvlm2vec.instructions import INSTRUCTIONS
from xvlm2vec_common.cli_errors import UsageError
from xvlm2vec_common.row_checks import RowError, check_text, image_shape_problem, split_language

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


class DataError(UsageError):
    """A row of the ``--data`` dataset that no model can process (one the builders reject): a user error."""


def _check_text(text: str | None, what: str, where: str) -> None:
    """Raise :class:`DataError` when a present ``text`` is longer than the builders accept (an empty one still
    embeds)."""
    if text is None:
        return
    try:
        check_text(text, what)
    except RowError as error:
        if error.reason == "empty_text":
            return
        raise DataError(f"{where}: {error}; rebuild the dataset with `xvlm2vec build mmmeb`") from None


def _check_image(stored: dict, where: str) -> None:
    """Raise :class:`DataError` when a stored image's header declares a shape the builders reject."""
    if stored.get("bytes") is None:
        return
    try:
        with Image.open(io.BytesIO(stored["bytes"])) as image:
            size = image.size
    except (OSError, Image.DecompressionBombError) as error:
        raise DataError(f"{where}: unreadable image ({error})") from None
    problem = image_shape_problem(*size)
    if problem is not None:
        raise DataError(f"{where}: image of {problem[1]}; rebuild the dataset with `xvlm2vec build mmmeb`")


def _image_id(stored: dict | None, where: str) -> str | None:
    if stored is None:
        return None
    if stored.get("bytes") is not None:
        return "sha256:" + hashlib.sha256(stored["bytes"]).hexdigest()
    if stored.get("path"):
        return "path:" + stored["path"]
    raise DataError(f"{where}: image has neither bytes nor path")


def load_split(data: str, config: str, language: str, max_queries: int | None = None) -> SplitData:
    """Load split ``language`` of ``config`` from the folder or Hub repo ``data``.

    Validates columns and each row (a candidate list must be all texts or all images and
    non-empty; the positive index must fall inside it; a text or image the builders reject,
    ``xvlm2vec_common.row_checks``: over ``MAX_TEXT_CHARS``, an extreme aspect ratio), raising a
    :class:`DataError` (a ``ValueError``; the CLI prints it as one line) that names the split and
    query id. A query whose text is null is kept here: the protocol skips it when scoring.
    ``language`` is a split name (``pt_BR``); the split's ``language`` is its code (``pt-BR``).
    """
    dataset_name, task = parse_config(config)
    folder = read_hub_folder(data)
    table = folder.load_split(config, language) if folder else hub_layout.load_split(data, config, language)
    missing = [column for column in REQUIRED_COLUMNS if column not in table.column_names]
    if missing:
        raise DataError(f"{data} {config}/{language}: missing columns {missing}")
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
            _check_text(record["query_text"], "query text", where)
            query_image = _image_id(record["query_image"], where)
            if query_image is not None and query_image not in images:
                _check_image(record["query_image"], where)
                images[query_image] = record["query_image"]
            texts, stored_images = record["candidate_texts"] or [], record["candidate_images"] or []
            if bool(texts) == bool(stored_images):
                raise DataError(
                    f"{where}: needs either candidate texts or candidate images "
                    f"(got {len(texts)} and {len(stored_images)})"
                )
            if texts:
                for position, text in enumerate(texts):
                    _check_text(text, f"candidate {position}", where)
                candidates = [Candidate(text, None) for text in texts]
            else:
                candidates = []
                for stored in stored_images:
                    image_id = _image_id(stored, where)
                    if image_id not in images:
                        _check_image(stored, where)
                        images[image_id] = stored
                    candidates.append(Candidate(None, image_id))
            positive = int(record["positive_index"])
            if not 0 <= positive < len(candidates):
                raise DataError(f"{where}: positive index {positive} out of range for {len(candidates)} candidates")
            row = QueryRow(record["id"], record["query_text"], query_image, candidates, positive)
            digest.update(json.dumps(asdict(row), ensure_ascii=False).encode())
            rows.append(row)
    return SplitData(config, dataset_name, task, split_language(language), digest.hexdigest(), rows, images)


def split_names(data: str, config: str) -> list[str]:
    """The language splits of ``config`` (a local folder's card is parsed once: :mod:`dataset_builders.hub_folder`)."""
    folder = read_hub_folder(data)
    return folder.split_names(config) if folder else list(datasets.get_dataset_split_names(data, config))


def config_names(data: str) -> list[str]:
    """The ``{dataset}_{task}`` configs of the MMMEB folder or repo ``data`` (a card pointing outside a local
    folder is a UsageError, :func:`dataset_builders.hub_layout.check_data_files`)."""
    folder = read_hub_folder(data)
    if folder is not None:
        return folder.config_names()
    hub_layout.check_data_files(data)
    return list(datasets.get_dataset_config_names(data))
