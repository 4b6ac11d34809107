"""The runner with a tiny random XVLM2Vec model on MMMEB built by the dataset builders: the
``xvlm2vec eval`` verb end to end, and one query scored alone equals the same query in a batch."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from xvlm2vec.cli import main
from xvlm2vec.evaluation.data import load_split
from xvlm2vec.evaluation.embedders import XVLM2VecEmbedder
from xvlm2vec.evaluation.runner import RunConfig, Runner
from xvlm2vec.testing.tiny_model import save_tiny_model
from xvlm2vec_common.results_document import validate


def test_eval_verb_end_to_end(built_mmmeb, tmp_path):
    model_dir = save_tiny_model("qwen2_vl", tmp_path / "model")
    out = tmp_path / "out"
    args = [
        "eval",
        "--model",
        str(model_dir),
        "--data",
        str(built_mmmeb),
        "--output-dir",
        str(out),
        "--tasks",
        "xtd_i2t",
        "vqa",
        "--languages",
        "fr",
        "--batch-size",
        "3",
    ]
    assert main(args) == 0
    document = json.loads((out / "results.json").read_text())
    validate(document)
    cells = {(r["config"], r["language"], r["style"]) for r in document["models"][0]["scores"]}
    expected = {(c, "fr", s) for c in ("xtd_i2t", "maxm_v1_vqa") for s in ("plain", "punct", "newline")}
    assert cells == expected
    assert all(r["num_queries"] == 4 for r in document["models"][0]["scores"])
    assert document["models"][0]["kind"] == "xvlm2vec"
    assert "| " + str(model_dir) + " | xtd_i2t |" in (out / "results.md").read_text()
    with Image.open(out / "results.png") as img:
        assert img.format == "PNG"
    cache_files = sorted(out.joinpath("embedding_cache").rglob("*.safetensors"))
    assert len(cache_files) == 2  # one per (config, language)

    # A second run reads the cache and reproduces the scores exactly (same stored vectors).
    assert main(args) == 0
    assert json.loads((out / "results.json").read_text())["models"] == document["models"]


@pytest.mark.parametrize(("config", "language"), [("xtd_t2i", "it"), ("maxm_v1_vqa", "fr")])
def test_one_query_alone_equals_in_batch(built_mmmeb, tiny_models, config, language):
    model, _ = tiny_models("qwen2_vl")
    embedder = XVLM2VecEmbedder(model, "tiny")
    split = load_split(str(built_mmmeb), config, language)
    batched = Runner(RunConfig(batch_size=4), metric=lambda **_: {}).score_split(embedder, split, "punct", {}, {})
    for index in range(len(split.rows)):
        alone_split = dataclasses.replace(split, rows=split.rows[index : index + 1])
        alone = Runner(RunConfig(batch_size=1), metric=lambda **_: {}).score_split(
            embedder, alone_split, "punct", {}, {}
        )
        # Padding and batch composition change float32 reduction order only: 1e-5 absolute on cosines
        # in [-1, 1] is far below the gaps that decide a ranking here, and far above float32 noise.
        np.testing.assert_allclose(alone[0], batched[index], atol=1e-5)


@pytest.mark.slow
def test_two_processes_match_one(built_mmmeb, tmp_path):
    """accelerate with two CPU processes splits the work and gathers exactly the one-process scores."""
    import os
    import subprocess
    import sys

    model_dir = save_tiny_model("qwen2_vl", tmp_path / "model")
    common = [
        "--model",
        str(model_dir),
        "--data",
        str(built_mmmeb),
        "--tasks",
        "xtd_t2i",
        "vqa",
        "--languages",
        "fr",
        "--batch-size",
        "2",
        "--no-cache",
    ]
    assert main(["eval", *common, "--output-dir", str(tmp_path / "one")]) == 0
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--cpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "xvlm2vec",
        "eval",
        *common,
        "--output-dir",
        str(tmp_path / "two"),
    ]
    proc = subprocess.run(
        launch, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = json.loads((tmp_path / "one" / "results.json").read_text())["models"][0]["scores"]
    two = json.loads((tmp_path / "two" / "results.json").read_text())["models"][0]["scores"]
    assert len(one) == 6
    for a, b in zip(one, two):
        # Gathered rows keep their order; per-row embeddings may differ in float32 noise only (batch
        # composition differs), which does not move a rank of these 4-candidate lists.
        assert a == b
