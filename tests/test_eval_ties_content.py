"""Ties by content and a cache that cannot be trusted (issue 21, item 6).

Identical candidates (same text, same image bytes) must score exactly the same, whatever order a
matrix product sums them in, so ``ties_at_top`` sees them and ``--ties`` applies; a cache file whose
bytes were changed (zeroed) must be discarded with a warning, never used.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from test_eval_runner import ColourEmbedder, image, write_mmmeb_folder

from xvlm2vec.evaluation.embedders import Embedder
from xvlm2vec.evaluation.runner import RunConfig, Runner

WIDTH = 8


@pytest.fixture(scope="module")
def metric():
    import evaluate

    return evaluate.load(RunConfig().metric).compute


def noisy_vectors() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors ``a``, ``b`` and a query ``q`` for which ``np.stack([a, b, a]) @ q`` gives ``a``'s two copies
    different float32 scores (the product's reduction order differs by row); searched by seed."""
    for seed in range(1000):
        rng = np.random.default_rng(seed)
        a, b, q = (v / np.linalg.norm(v) for v in rng.standard_normal((3, WIDTH)).astype(np.float32))
        scores = np.stack([a, b, a]) @ q
        if scores[0] != scores[2] and scores[0] > scores[1]:
            return a, b, q
    pytest.skip("this BLAS sums every row alike: no float noise to show")


class TableEmbedder(Embedder):
    """Embeds each text by a fixed table (prompts are the raw texts: no instructions)."""

    kind = "custom"
    image_tag = "<|image_1|>"
    uses_instructions = False
    name = "table"
    fingerprint = "table-v1"

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def embed(self, texts, images, batch_size):
        return np.stack([self.table[text] for text in texts]).astype(np.float32)


def test_byte_identical_candidates_tie_whatever_the_float_noise(tmp_path, metric):
    """The positive ``a`` and a byte-identical copy at the end of the list: a tie at the top under both rules."""
    a, b, q = noisy_vectors()
    data = write_mmmeb_folder(
        tmp_path, {"toy_t2i": {"en": [{"id": "q", "query_text": "query", "candidate_texts": ["a", "b", "a"]}]}}
    )
    embedder = TableEmbedder({"query": q, "a": a, "b": b})
    for ties, precision in (("pessimistic", 0.0), ("optimistic", 1.0)):
        runner = Runner(RunConfig(ties=ties), metric=metric)
        (record,) = runner.evaluate(embedder, str(data))
        assert record["ties_at_top"] == 1
        assert record["precision@1"] == precision


def test_identical_image_bytes_tie(tmp_path, metric):
    """Two candidates holding the same image bytes under different file names are one candidate, one score."""
    data = write_mmmeb_folder(
        tmp_path,
        {
            "toy_t2i": {
                "en": [{"id": "q", "query_text": "a red car", "candidate_images": [image("red"), image("red")]}]
            }
        },
    )
    runner = Runner(RunConfig(styles=["plain"]), metric=metric)
    (record,) = runner.evaluate(ColourEmbedder(), str(data))
    assert (record["ties_at_top"], record["precision@1"]) == (1, 0.0)


def test_zeroed_cache_file_is_discarded(tmp_path, metric, caplog):
    """Zeroing the embeddings of a cache file (its header intact) must not zero the scores: the file fails its
    checksum, is named in a warning and recomputed."""
    data = write_mmmeb_folder(
        tmp_path / "data",
        {
            "toy_t2i": {
                "en": [{"id": "q", "query_text": "a red car", "candidate_images": [image("red"), image("blue")]}]
            }
        },
    )
    config = RunConfig(styles=["plain"], cache_dir=str(tmp_path / "cache"))
    first = Runner(config, metric=metric).evaluate(ColourEmbedder(), str(data))
    (path,) = (tmp_path / "cache").rglob("*.safetensors")
    raw = bytearray(path.read_bytes())
    size = int.from_bytes(raw[:8], "little")
    start, end = (8 + size + offset for offset in json.loads(raw[8 : 8 + size])["embeddings"]["data_offsets"])
    raw[start:end] = bytes(end - start)  # the embeddings zeroed, the keys intact: finite, the right shapes
    path.write_bytes(bytes(raw))
    embedder = ColourEmbedder()
    with caplog.at_level(logging.WARNING, logger="xvlm2vec.evaluation.cache"):
        second = Runner(config, metric=metric).evaluate(embedder, str(data))
    assert second == first
    assert any(str(path) in message and "checksum" in message for message in caplog.messages)
    assert any(seen_image for _, seen_image in embedder.seen)  # the candidates were embedded again
