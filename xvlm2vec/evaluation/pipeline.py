"""Evaluate one or more embedders on MMMEB and write ``results.json``, ``results.md`` and ``results.png``
(and ``prompts.jsonl`` when the runner logs prompts)."""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from xvlm2vec.evaluation.embedders import Embedder
from xvlm2vec.evaluation.plot import plot_results
from xvlm2vec.evaluation.runner import Runner
from xvlm2vec_common.results_document import markdown_table, model_entry, results_document
from xvlm2vec_common.safe_outputs import atomic_output_dir

RESULTS_FILENAME = "results.json"
CACHE_DIRNAME = "embedding_cache"


def evaluate_models(
    embedders: list[Embedder],
    data: str,
    output_dir: str | Path,
    runner: Runner,
    keep: Collection[str] = (CACHE_DIRNAME,),
) -> dict[str, Any]:
    """Score every embedder with ``runner`` on ``data``; the main process writes the outputs.

    With ``runner.config.save_prompts``, ``prompts.jsonl`` holds one JSON line per embedded query
    and distinct candidate (model, config, language, style, side, row id, prompt, image).

    ``output_dir`` is replaced atomically (:func:`~xvlm2vec_common.safe_outputs.atomic_output_dir`):
    the entries matching ``keep`` (default: the embedding cache) are carried over, everything
    else comes from this run. Returns the results document (also on non-main processes, which
    write nothing).
    """
    models = []
    for embedder in embedders:
        scores = runner.evaluate(embedder, data)
        models.append(model_entry(embedder.name, embedder.kind, embedder.fingerprint, scores))
    document = results_document(models, data, runner.data_fingerprints, runner.config.styles, runner.config.ties)
    if runner.state.is_main_process:
        inputs = [data, *(embedder.name for embedder in embedders)]  # names of local models are their folders
        with atomic_output_dir(output_dir, RESULTS_FILENAME, keep=keep, inputs=inputs) as staging:
            (staging / RESULTS_FILENAME).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
            (staging / "results.md").write_text(markdown_table(document))
            plot_results(document, staging / "results.png")
            if runner.config.save_prompts:
                with open(staging / "prompts.jsonl", "w", encoding="utf-8") as handle:
                    for line in runner.prompt_log:
                        handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    return document
