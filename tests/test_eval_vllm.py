"""``xvlm2vec eval --engine vllm`` scores like the default engine: same prompts, same results, same cache layout.

A tiny fp32 Qwen2-VL and Qwen2.5-VL (the latter served with ``--convert embed``, by two engines standing for
two visible GPUs: the data-parallel path; decoder width 128, head size 32 as vLLM's CPU attention needs) are
each evaluated on the built tiny MMMEB (an image-query and a text-query task, every style, several batches) by
both engines; vLLM's CPU build runs from its own venv (:mod:`xvlm2vec.integrations.vllm_env`).
Marker ``vllm`` (``make test-vllm``).

Tolerance 1e-5 (absolute): fp32 on both sides with the same weights and preprocessing, only the kernels differ
(``tests/test_vllm_engine.py`` measures 1.6e-7 on the same kind of model).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from xvlm2vec.cli import main
from xvlm2vec.export_vllm import REPORT_NAME
from xvlm2vec.integrations import vllm_engine
from xvlm2vec.integrations.vllm_embedder import ensure_export
from xvlm2vec.testing.tiny_model import save_tiny_model
from xvlm2vec_common.results_document import validate

pytestmark = pytest.mark.vllm

ATOL = 1e-5
#: A short context and no compilation keep the CPU engine small and quick to start.
ENGINE_ARGS = {"max_model_len": 1024, "enforce_eager": True}


def structure(document: dict) -> object:
    """The document with every number replaced by its type: what both engines must share exactly."""
    if isinstance(document, dict):
        return {key: structure(value) for key, value in document.items() if key not in ("fingerprint", "created")}
    if isinstance(document, list):
        return [structure(value) for value in document]
    return type(document).__name__ if isinstance(document, (int, float)) else document


def numbers(document: object, path: str = "") -> dict[str, float]:
    """Every number of the document by its path."""
    if isinstance(document, dict):
        return {k: v for key, value in document.items() for k, v in numbers(value, f"{path}/{key}").items()}
    if isinstance(document, list):
        return {k: v for index, value in enumerate(document) for k, v in numbers(value, f"{path}/{index}").items()}
    return {path: float(document)} if isinstance(document, (int, float)) and not isinstance(document, bool) else {}


def cache_files(out: Path) -> dict[str, dict[str, np.ndarray]]:
    """The embedding cache's files by (config/split), each as its tensors."""
    return {
        f"{path.parent.name}/{path.name}": load_file(str(path))
        for path in (out / "embedding_cache").rglob("*.safetensors")
    }


def spy(send, calls: list):
    """``VLLMEngines._send`` that also records (engine, rows) of each embedding request."""

    def recorded(self, process, request):
        if "inputs" in request:
            calls.append((self.processes.index(process), len(request["inputs"])))
        return send(self, process, request)

    return recorded


@pytest.mark.parametrize(("backbone", "engines"), [("qwen2_vl", 1), ("qwen2_5_vl", 2)])
def test_vllm_engine_equals_default_engine(backbone, engines, built_mmmeb, tmp_path, monkeypatch, vllm_python) -> None:
    """With ``engines`` 2, two CPU engines stand for two visible GPUs: each batch is shared between them."""
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    gpus = [str(index) for index in range(engines)] if engines > 1 else []
    monkeypatch.setattr(vllm_engine, "visible_gpus", lambda: gpus)
    requests: list[tuple[int, int]] = []
    monkeypatch.setattr(vllm_engine.VLLMEngines, "_send", spy(vllm_engine.VLLMEngines._send, requests))
    model = save_tiny_model(backbone, tmp_path / "model", hidden=128)
    common = ["--model", str(model), "--data", str(built_mmmeb), "--tasks", "xtd_i2t", "vqa", "--languages", "fr"]
    common += ["--batch-size", "5", "--save-prompts"]
    assert main(["eval", *common, "--output-dir", str(tmp_path / "default")]) == 0
    vllm = ["--engine", "vllm", "--vllm-engine-args", json.dumps(ENGINE_ARGS), "--vllm-exports", str(tmp_path / "x")]
    assert main(["eval", *common, *vllm, "--output-dir", str(tmp_path / "vllm")]) == 0

    default, served = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("default", "vllm"))
    validate(served)
    assert structure(served) == structure(default)
    assert served["models"][0]["fingerprint"] != default["models"][0]["fingerprint"]  # the cache key has the engine
    expected, got = numbers(default), numbers(served)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert abs(got[key] - value) <= ATOL, (key, got[key], value)

    # The same prompts were embedded, and every cached candidate embedding agrees within the tolerance.
    prompts = [(tmp_path / name / "prompts.jsonl").read_text() for name in ("default", "vllm")]
    assert prompts[0] == prompts[1]
    default_cache, vllm_cache = cache_files(tmp_path / "default"), cache_files(tmp_path / "vllm")
    assert sorted(vllm_cache) == sorted(default_cache) and len(default_cache) == 2
    for name, tensors in default_cache.items():
        np.testing.assert_array_equal(vllm_cache[name]["keys"], tensors["keys"])
        difference = np.abs(vllm_cache[name]["embeddings"] - tensors["embeddings"]).max()
        print(f"{name}: max abs difference of cached embeddings {difference:.2e}")  # shown by -rP
        np.testing.assert_allclose(vllm_cache[name]["embeddings"], tensors["embeddings"], atol=ATOL, rtol=0)

    # Every engine embedded rows (each batch is shared between the engines, the first taking the larger share).
    assert {engine for engine, _ in requests} == set(range(engines))

    # One export, named by the model's fingerprint (the default engine's), which a later run reuses.
    exports = list((tmp_path / "x").iterdir())
    assert [path.name for path in exports] == [default["models"][0]["fingerprint"][:32]]
    written = (exports[0] / REPORT_NAME).stat().st_mtime_ns
    assert ensure_export(str(model), default["models"][0]["fingerprint"], tmp_path / "x")[0] == exports[0]
    assert (exports[0] / REPORT_NAME).stat().st_mtime_ns == written
