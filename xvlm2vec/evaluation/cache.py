"""On-disk cache of candidate embeddings, in safetensors files, keyed by content.

One file per (model fingerprint, data fingerprint, dataset config, language split) holds two
tensors: ``keys`` (uint8 [N, 32], the SHA-256 of each candidate's exact prompt text and image
identity) and ``embeddings`` (float32 [N, D]). Changing the model's weights, configuration,
processor or tokenizer files or code (see :mod:`xvlm2vec.fingerprint`), the data, the
instruction, the formatting style or the candidate itself changes the file or the key, so a stale
embedding is never reused. A file that cannot be trusted (truncated, garbage, inconsistent
shapes, non-finite values, another width than the model's, a checksum that does not match: a zeroed
or overwritten file) is discarded with a warning and its embeddings are computed again. A file that
cannot be written (disk full, read-only) is skipped with a warning: the scores do not depend on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from dataset_builders.names import check_name

KEY_BYTES = 32
CHECKSUM_KEY = "sha256"
logger = logging.getLogger(__name__)


def checksum(keys: np.ndarray, embeddings: np.ndarray) -> str:
    """SHA-256 (hex) of a cache file's two tensors, stored in its metadata and checked on load."""
    digest = hashlib.sha256(np.ascontiguousarray(keys, dtype=np.uint8).tobytes())
    digest.update(np.ascontiguousarray(embeddings, dtype="<f4").tobytes())
    return digest.hexdigest()


def candidate_key(prompt: str | None, image_id: str | None) -> bytes:
    """SHA-256 digest identifying one input row: its exact prompt text and its image's identity."""
    digest = hashlib.sha256()
    digest.update(b"T" + (prompt.encode("utf-8") if prompt is not None else b"\xff"))
    digest.update(b"\x00I" + (image_id.encode("utf-8") if image_id is not None else b"\xff"))
    return digest.digest()


class EmbeddingCache:
    """Reads and writes candidate-embedding files under ``root`` (``None`` disables the disk cache)."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None

    def path(self, model_fingerprint: str, data_fingerprint: str, config: str, split: str) -> Path | None:
        """The cache file of one dataset split for one model, or None when caching is off.

        ``config`` and ``split`` come from the data (a Hub card): they are checked safe names
        (:func:`dataset_builders.names.check_name`) before they become a path.
        """
        if self.root is None:
            return None
        check_name(config, "config")
        check_name(split, "split")
        return self.root / model_fingerprint[:32] / data_fingerprint[:32] / config / f"{split}.safetensors"

    def load(self, path: Path | None, width: int | None = None) -> dict[bytes, np.ndarray]:
        """Entries stored at ``path``; empty when there is none or when the file cannot be trusted.

        ``width`` is the model's embedding width: a file of another width is discarded too. A
        discarded file is named in a warning and replaced on the next :meth:`save`.
        """
        if path is None or not path.is_file():
            return {}
        try:
            with safe_open(str(path), framework="np") as handle:
                stored = (handle.metadata() or {}).get(CHECKSUM_KEY)
                keys, embeddings = handle.get_tensor("keys"), handle.get_tensor("embeddings")
        except Exception as error:  # safetensors raises several types for damaged files
            return self._discard(path, f"unreadable ({type(error).__name__}: {error})")
        if keys.dtype != np.uint8 or keys.ndim != 2 or keys.shape[1] != KEY_BYTES:
            return self._discard(
                path, f"keys of shape {keys.shape} and type {keys.dtype}, expected [N, {KEY_BYTES}] uint8"
            )
        if embeddings.ndim != 2 or len(keys) != len(embeddings):
            return self._discard(path, f"{len(keys)} keys for embeddings of shape {embeddings.shape}")
        if width is not None and embeddings.shape[1] != width:
            return self._discard(path, f"embeddings of width {embeddings.shape[1]}, the model's is {width}")
        if not np.isfinite(embeddings).all():
            return self._discard(path, "non-finite embeddings")
        if embeddings.dtype != np.float32 or stored != checksum(keys, embeddings):
            return self._discard(path, "checksum missing or not matching (a damaged or overwritten file)")
        return {bytes(key): vector for key, vector in zip(keys, embeddings.astype(np.float32))}

    @staticmethod
    def _discard(path: Path, reason: str) -> dict[bytes, np.ndarray]:
        """Warn that ``path`` is ignored for ``reason``; no entries."""
        logger.warning("embedding cache file %s discarded: %s; recomputing its embeddings", path, reason)
        return {}

    def save(self, path: Path | None, entries: dict[bytes, np.ndarray]) -> None:
        """Write ``entries`` to ``path`` atomically (a temporary file renamed into place), with their checksum.

        A file system error (disk full, read-only folder) leaves no partial file and is a warning.
        """
        if path is None or not entries:
            return
        keys = np.frombuffer(b"".join(entries), dtype=np.uint8).reshape(len(entries), KEY_BYTES)
        embeddings = np.stack(list(entries.values())).astype(np.float32)
        temporary = path.with_suffix(f".tmp{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            metadata = {CHECKSUM_KEY: checksum(keys, embeddings)}
            save_file({"keys": keys, "embeddings": embeddings}, str(temporary), metadata=metadata)
            os.replace(temporary, path)
        except (OSError, SafetensorError) as error:  # safetensors reports a full disk as its own error
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            logger.warning("embedding cache file %s not written (%s); the scores are not affected", path, error)
