"""`xvlm2vec demo --objective`: the objective reaches the distillation, Matryoshka sizes are recorded in the
student, and the MMMEB runner evaluates a truncated embedding (tiny: quick world, small model, few rows)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from xvlm2vec.cli import main as cli_main
from xvlm2vec.demo.model import build_demo_model
from xvlm2vec.demo.pipeline import DemoConfig, build_data, distil_student
from xvlm2vec.evaluation.embedders import XVLM2VecEmbedder
from xvlm2vec.evaluation.runner import RunConfig, Runner
from xvlm2vec_common.results_document import averages

HIDDEN = 32  # the tiny model's width: Matryoshka sizes 32, 16, 8


@pytest.fixture(scope="module")
def tiny_student(tmp_path_factory):
    """A quick-world student distilled with `objective: matryoshka` from an untrained tiny demo model."""
    root = tmp_path_factory.mktemp("demo_objective")
    quick = DemoConfig.quick(seed=0)
    config = dataclasses.replace(
        quick, hidden=HIDDEN, layers=1, skd_rows=48, skd_batch_size=16, eval_batch_size=32, objective="matryoshka"
    )
    _, mmmeb, parallel = build_data(config, root)
    model, _ = build_demo_model(config.seed, config.hidden, config.layers, config.world.image_size)
    model.save_pretrained(root / "teacher")
    return distil_student(config, root / "teacher", parallel, root), mmmeb, config


def test_matryoshka_dims_are_recorded_in_the_student(tiny_student):
    student, _, _ = tiny_student
    saved = json.loads((student / "config.json").read_text())
    assert saved["matryoshka_dims"] == [HIDDEN, HIDDEN // 2, HIDDEN // 4]


def test_truncated_evaluation_runs_on_the_prefix(tiny_student):
    student, mmmeb, config = tiny_student
    full = XVLM2VecEmbedder.from_pretrained(str(student))
    quarter = XVLM2VecEmbedder(full.model, "student", truncate_dim=HIDDEN // 4)
    texts, images = ["a red circle", "un cerchio rosso", None], [None, None, None]
    reference = full.model.encode(texts=["a red circle", "un cerchio rosso"], normalize_embeddings=False)
    expected = reference[:, : HIDDEN // 4] / np.linalg.norm(reference[:, : HIDDEN // 4], axis=1, keepdims=True)
    # the prefix renormalised, both through encode and through the runner's prepare/embed_prepared path
    # (float32 arithmetic on the same numbers: 1e-5)
    np.testing.assert_allclose(quarter.embed(texts[:2], images[:2], 2), expected, atol=1e-5)
    np.testing.assert_allclose(quarter.embed_prepared(quarter.prepare(texts[:2], images[:2], 2)), expected, atol=1e-5)
    assert quarter.fingerprint != full.fingerprint  # a truncated run never reads the full width's cache
    run = RunConfig(
        tasks=["i2t"], languages=["en", "it"], styles=["plain"], batch_size=config.eval_batch_size, max_queries=8
    )
    scores = Runner(run).evaluate(quarter, str(mmmeb))
    assert sorted(record["language"] for record in scores) == ["en", "it"]
    means = averages(scores)
    assert 0.0 <= means["english"] <= 1.0 and 0.0 <= means["non_english"] <= 1.0
    with pytest.raises(ValueError, match="truncate_dim"):
        XVLM2VecEmbedder(full.model, "student", truncate_dim=HIDDEN + 1)


@pytest.mark.parametrize(
    ("flags", "objective", "dims"),
    [
        ([], "mse", None),
        (["--objective", "matryoshka"], "matryoshka", None),
        (["--objective", "matryoshka", "--matryoshka-dims", "128", "32"], "matryoshka", (128, 32)),
        (["--objective", "mse_infonce"], "mse_infonce", None),
    ],
)
def test_objective_flags_reach_the_demo_config(demo_runs, tmp_path, flags, objective, dims):
    assert cli_main(["demo", "--quick", "--output-dir", str(tmp_path), *flags]) == 0
    assert demo_runs == [dataclasses.replace(DemoConfig.quick(), objective=objective, matryoshka_dims=dims)]


def test_default_objective_adds_nothing_to_the_recipe():
    # mse is the recipe's own objective: today's demo runs with unchanged overrides
    assert DemoConfig.full().objective_overrides() == {}
    assert DemoConfig.full(seed=1).objective == "mse"
    matryoshka = dataclasses.replace(DemoConfig.full(), objective="matryoshka")
    assert matryoshka.objective_overrides() == {
        "objective": "matryoshka",
        "matryoshka_dims": [128, 64, 32],
        "matryoshka_base": "mse",
    }


def test_matryoshka_dims_without_matryoshka_is_a_usage_error(tmp_path, capsys):
    assert cli_main(["demo", "--output-dir", str(tmp_path), "--matryoshka-dims", "64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --matryoshka-dims needs --objective matryoshka"]


@pytest.mark.parametrize(
    ("config", "schedule"),
    [(DemoConfig.full(), ("cosine", 2.0, 1.0)), (DemoConfig.quick(), ("constant", 1.0, 1.0))],
)
def test_the_demo_schedule_reaches_the_recipe(monkeypatch, tmp_path, config, schedule):
    """The full demo's student runs one epoch with a cosine decay and the English term weighted 2; the quick one
    keeps the recipe's constant rate and weight 1 (the objectives ablation's settings)."""
    from xvlm2vec.training import script

    seen = []
    monkeypatch.setattr(script, "main", lambda *arguments: seen.append(arguments) or tmp_path / "student")
    distil_student(config, tmp_path / "teacher", tmp_path / "parallel", tmp_path)
    (_, training_args, _) = seen[0]
    scheduler = getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)
    assert (scheduler, training_args.en_loss_weight, training_args.num_train_epochs) == schedule
    assert training_args.x_loss_weight == 1.0
