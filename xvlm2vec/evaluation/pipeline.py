"""Evaluate one or more embedders on MMMEB and write ``results.json``, ``results.md`` and ``results.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xvlm2vec.evaluation.embedders import Embedder
from xvlm2vec.evaluation.plot import plot_results
from xvlm2vec.evaluation.results import markdown_table, model_entry, results_document
from xvlm2vec.evaluation.runner import Runner


def evaluate_models(embedders: list[Embedder], data: str, output_dir: str | Path, runner: Runner) -> dict[str, Any]:
    """Score every embedder with ``runner`` on ``data``; the main process writes the three outputs.

    Returns the results document (also on non-main processes, which write nothing).
    """
    models = []
    for embedder in embedders:
        scores = runner.evaluate(embedder, data)
        models.append(model_entry(embedder.name, embedder.kind, embedder.fingerprint, scores))
    document = results_document(models, data, runner.data_fingerprints, runner.config.styles)
    if runner.state.is_main_process:
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "results.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        (output_dir / "results.md").write_text(markdown_table(document))
        plot_results(document, output_dir / "results.png")
    return document
