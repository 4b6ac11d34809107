"""The evaluation's embedding cache: keyed by everything that changes an embedding (processor,
tokenizer and code included), and a damaged or mismatched cache file is discarded with a warning
and recomputed, never trusted and never fatal."""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from test_eval_runner import ColourEmbedder, run, toy_splits, write_mmmeb_folder

from xvlm2vec.evaluation.embedders import XVLM2VecEmbedder
from xvlm2vec.evaluation.runner import RunConfig, Runner
from xvlm2vec.fingerprint import code_state
from xvlm2vec.testing.tiny_model import save_tiny_model


@pytest.fixture(scope="module")
def metric():
    import evaluate

    return evaluate.load(RunConfig().metric).compute


def _evaluate(model_dir: Path, data: Path, cache: Path | None, metric) -> tuple[Runner, list[dict]]:
    runner = Runner(RunConfig(cache_dir=str(cache) if cache else None, batch_size=4, styles=["punct"]), metric=metric)
    return runner, runner.evaluate(XVLM2VecEmbedder.from_pretrained(str(model_dir)), str(data))


def test_edited_processor_or_tokenizer_is_not_served_stale_embeddings(tmp_path, metric) -> None:
    model_dir = save_tiny_model("qwen2_vl", tmp_path / "model")
    data = write_mmmeb_folder(tmp_path / "data", {"toy_t2i": {"en": toy_splits()["toy_t2i"]["en"]}})
    cache = tmp_path / "cache"
    first, _ = _evaluate(model_dir, data, cache, metric)
    assert first.embedded_rows["candidates"] == 4

    config_path = model_dir / "processor_config.json"
    settings = json.loads(config_path.read_text())
    settings["image_processor"]["image_mean"] = [0.1, 0.9, 0.5]  # weights untouched, images preprocessed differently
    config_path.write_text(json.dumps(settings))
    edited, cached_records = _evaluate(model_dir, data, cache, metric)
    assert edited.embedded_rows["candidates"] == 4  # recomputed, not the old image embeddings
    _, fresh_records = _evaluate(model_dir, data, None, metric)
    assert cached_records == fresh_records

    fingerprint = XVLM2VecEmbedder.from_pretrained(str(model_dir)).fingerprint
    tokenizer_path = model_dir / "tokenizer.json"
    tokenizer = json.loads(tokenizer_path.read_text())
    tokenizer["normalizer"] = {"type": "Lowercase"}  # a tokenizer change: same weights, other token ids
    tokenizer_path.write_text(json.dumps(tokenizer))
    assert XVLM2VecEmbedder.from_pretrained(str(model_dir)).fingerprint != fingerprint


def test_code_state_follows_the_source_files(tmp_path, monkeypatch) -> None:
    package = tmp_path / "fake_models"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "modeling_fake.py").write_text("class Fake:\n    scale = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("fake_models.modeling_fake")
    before = code_state(module.Fake())
    assert "fake_models/modeling_fake.py" in before
    (package / "backbone_fake.py").write_text("SCALE = 2\n")  # a sibling file the model imports changes
    assert code_state(module.Fake()) != before
    sys.modules.pop("fake_models.modeling_fake")
    sys.modules.pop("fake_models")


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00garbage, not a safetensors file" * 10)


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _wrong_width(path: Path) -> None:
    tensors = load_file(str(path))
    save_file({"keys": tensors["keys"], "embeddings": np.ones((len(tensors["keys"]), 5), np.float32)}, str(path))


@pytest.mark.parametrize("damage", [_garbage, _truncated, _wrong_width])
def test_damaged_cache_file_is_discarded_and_recomputed(tmp_path, metric, caplog, damage) -> None:
    data = write_mmmeb_folder(tmp_path / "data", {"toy_t2i": toy_splits()["toy_t2i"]})
    cache = tmp_path / "cache"
    first, records = run(data, ColourEmbedder(), metric, cache)
    files = sorted(cache.rglob("*.safetensors"))
    assert len(files) == 2
    damage(files[0])
    with caplog.at_level(logging.WARNING, logger="xvlm2vec.evaluation.cache"):
        again, records_again = run(data, ColourEmbedder(), metric, cache)
    assert records_again == records
    assert 0 < again.embedded_rows["candidates"] < first.embedded_rows["candidates"]  # the damaged split only
    assert any(str(files[0]) in message and "discarded" in message for message in caplog.messages)
    third, _ = run(data, ColourEmbedder(), metric, cache)
    assert third.embedded_rows["candidates"] == 0  # the discarded file was rewritten whole
