"""Benchmark: the MMMEB runner vs the reference code's per-query loop, side by side in one run.

The reference loop embeds one query at a time and re-embeds that query's candidates for every
formatting style. The runner deduplicates candidates per split, embeds queries and candidates in
batches, and caches candidate embeddings on disk (timed cold, then warm). Both score the same
tiny random XVLM2Vec model on the same synthetic MMMEB folder (built with the dataset builders);
the benchmark checks they agree on every score before reporting queries/s and ratios.

    python benchmarks/bench_eval.py --rows 16 --candidates 8 --output bench_eval.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from dataset_builders.fixtures import write_mmmeb
from dataset_builders.mmmeb import build_mmmeb
from modeling_xvlm2vec.instructions import STYLES
from xvlm2vec.evaluation.data import load_split
from xvlm2vec.evaluation.embedders import Embedder, XVLM2VecEmbedder
from xvlm2vec.evaluation.runner import RunConfig, Runner, protocol_prompt, select_splits
from xvlm2vec.tiny_models import build_tiny_model


@dataclass
class BenchConfig:
    """Benchmark settings (see ``--help``)."""

    backbone: str = "qwen2_vl"
    rows: int = 16
    candidates: int = 8
    batch_size: int = 16
    tasks: tuple[str, ...] = ("xtd_i2t", "xtd_t2i")
    languages: tuple[str, ...] = ("en", "it")
    output: str | None = None


def reference_loop(embedder: Embedder, data: str, config: RunConfig, metric) -> tuple[list[dict], int]:
    """Score like the reference code: per style, per query, embed the query and then its candidates."""
    records, queries = [], 0
    for name, lang in select_splits(data, config.tasks, config.languages):
        split = load_split(data, name, lang)
        for style in config.styles:
            scores = []
            for row in tqdm(split.rows, desc=f"reference {name}/{lang}/{style}", leave=False):
                query = protocol_prompt(embedder, split.task, "query", lang, row.text, style)
                q = embedder.embed([query], [split.image(row.image_id)], 1)[0]
                texts = [protocol_prompt(embedder, split.task, "candidate", lang, c.text, style) for c in row.candidates]
                images = [split.image(c.image_id) for c in row.candidates]
                scores.append(embedder.embed(texts, images, config.batch_size) @ q)
                queries += 1
            result = metric(predictions=[s.tolist() for s in scores], references=[r.positive_index for r in split.rows])
            records.append({"config": name, "language": lang, "style": style, **result})
    return records, queries


def main(argv: list[str] | None = None) -> dict:
    """Build the data and model, time the reference loop and the runner (cold, warm), print and return figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = BenchConfig()
    parser.add_argument("--backbone", default=defaults.backbone, help="tiny backbone family (default qwen2_vl)")
    parser.add_argument("--rows", type=int, default=defaults.rows, help="queries per split")
    parser.add_argument("--candidates", type=int, default=defaults.candidates, help="candidates per query")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="runner batch size")
    parser.add_argument("--tasks", nargs="+", default=list(defaults.tasks), help="configs or tasks to run")
    parser.add_argument("--languages", nargs="+", default=list(defaults.languages), help="languages to run")
    parser.add_argument("--output", default=None, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    bench = BenchConfig(args.backbone, args.rows, args.candidates, args.batch_size, tuple(args.tasks), tuple(args.languages), args.output)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_mmmeb(root / "release", rows_per_file=bench.rows, num_candidates=bench.candidates)
        build_mmmeb(root / "release", root / "data")
        data = str(root / "data")
        model, _ = build_tiny_model(bench.backbone, seed=0)
        embedder = XVLM2VecEmbedder(model, f"tiny-{bench.backbone}")
        config = RunConfig(tasks=list(bench.tasks), languages=list(bench.languages), styles=list(STYLES),
                           batch_size=bench.batch_size, cache_dir=str(root / "cache"))
        runner = Runner(config)
        for split_name, lang in select_splits(data, config.tasks, config.languages):
            load_split(data, split_name, lang)  # warm the datasets cache so neither side pays the conversion

        start = time.perf_counter()
        reference, queries = reference_loop(embedder, data, config, runner.metric)
        reference_s = time.perf_counter() - start

        start = time.perf_counter()
        cold = runner.evaluate(embedder, data)
        cold_s = time.perf_counter() - start
        warm_runner = Runner(config, metric=runner.metric)
        start = time.perf_counter()
        warm = warm_runner.evaluate(embedder, data)
        warm_s = time.perf_counter() - start

    for ours, theirs in zip(cold, reference):
        for key in ("precision@1", "recall@5", "mrr"):
            # Batched vs single-row float32 reductions: cosines differ by ~1e-7, so ranks (and these
            # averages) only change on near-ties; 1e-9 demands identical ranks.
            assert abs(ours[key] - theirs[key]) < 1e-9, (ours, theirs)
    assert cold == warm

    figures = {
        "setup": {**vars(bench), "tasks": list(bench.tasks), "languages": list(bench.languages), "styles": list(STYLES)},
        "queries_scored": queries,
        "reference_loop": {"seconds": reference_s, "queries_per_s": queries / reference_s},
        "runner_cold_cache": {"seconds": cold_s, "queries_per_s": queries / cold_s,
                              "rows_embedded": dict(runner.embedded_rows)},
        "runner_warm_cache": {"seconds": warm_s, "queries_per_s": queries / warm_s,
                              "rows_embedded": dict(warm_runner.embedded_rows)},
        "speedup_cold": reference_s / cold_s,
        "speedup_warm": reference_s / warm_s,
    }
    print(f"{'method':<22}{'seconds':>10}{'queries/s':>12}{'vs reference':>14}")
    for label, key in [("reference per-query", "reference_loop"), ("runner, cold cache", "runner_cold_cache"),
                       ("runner, warm cache", "runner_warm_cache")]:
        entry = figures[key]
        print(f"{label:<22}{entry['seconds']:>10.2f}{entry['queries_per_s']:>12.1f}{reference_s / entry['seconds']:>13.2f}x")
    if bench.output:
        Path(bench.output).write_text(json.dumps(figures, indent=2) + "\n")
    return figures


if __name__ == "__main__":
    main()
