"""Benchmark: the MMMEB runner vs the released evaluation flow, interleaved on the same model and data.

The released flow (swapUniba/xVLM2Vec: one script embeds each split's unique candidates per style in
batches of 4 and stores them, a second embeds the queries one at a time and scores them) is the
baseline; the runner deduplicates candidates across styles, batches queries too, and keeps candidate
embeddings in its cache. Both read the splits with the same reader inside the timing. Both are timed
cold (nothing stored) and warm (candidate embeddings stored by a previous run: the released flow then
only embeds its queries), in rounds whose order rotates (the machine may be shared); medians, spreads
and per-round ratios are reported. The per-query loop that re-embeds every query's candidate list
(``--per-query-loop``) is kept as a second reference. Every method must give the same scores (checked
before anything is reported). Torch runs one thread by default (``--threads``).

    python benchmarks/bench_eval.py --rows 32 --candidates 8 --rounds 3 --output bench_eval.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from figures import save_figures  # benchmarks/figures.py: the script's folder is on sys.path

from dataset_builders.mmmeb import build_mmmeb
from modeling_xvlm2vec.instructions import STYLES
from xvlm2vec.evaluation.data import SplitData, load_split
from xvlm2vec.evaluation.embedders import Embedder, XVLM2VecEmbedder
from xvlm2vec.evaluation.prompts import candidate_input, query_input
from xvlm2vec.evaluation.runner import RunConfig, Runner, select_splits
from xvlm2vec.testing.fixtures import write_mmmeb
from xvlm2vec.testing.tiny_model import build_tiny_model

#: Candidate batch size of the released embedding script.
RELEASED_BATCH_SIZE = 4

Scores = dict[tuple[str, str, str], list[np.ndarray]]


def candidate_items(
    embedder: Embedder, split: SplitData, style: str
) -> tuple[list[tuple[str | None, str | None]], list[list[int]]]:
    """The split's unique candidates under ``style`` (first-seen order) and each query's indices into them."""
    unique: dict[tuple[str | None, str | None], int] = {}
    lists = []
    for row in split.rows:
        if query_input(embedder, split.task, split.language, row, style) is None:
            continue  # skipped by the protocol (null text), as the runner does
        lists.append(
            [
                unique.setdefault(candidate_input(embedder, split.task, split.language, c, style), len(unique))
                for c in row.candidates
            ]
        )
    return list(unique), lists


def embed_items(
    embedder: Embedder, split: SplitData, items: list[tuple[str | None, str | None]], batch_size: int
) -> np.ndarray:
    """Embed (prompt, image id) items in batches of ``batch_size``, in order."""
    chunks = [
        embedder.embed(
            [text for text, _ in items[start : start + batch_size]],
            [split.image(image_id) for _, image_id in items[start : start + batch_size]],
            batch_size,
        )
        for start in range(0, len(items), batch_size)
    ]
    return np.concatenate(chunks)


def released_flow(
    embedder: Embedder, data: str, pairs: list[tuple[str, str]], styles: list[str], store: dict, batch_size: int
) -> Scores:
    """The released flow: each split read from ``data`` (with the runner's reader, so both pay the same);
    per split and style, unique candidates embedded in batches (skipped when ``store`` already holds them,
    as the released script skips stored embeddings); queries one at a time."""
    scores: Scores = {}
    for split in (load_split(data, name, lang) for name, lang in pairs):
        for style in styles:
            items, lists = candidate_items(embedder, split, style)
            key = (split.config, split.language, style)
            if key not in store:
                store[key] = embed_items(embedder, split, items, batch_size)
            candidates = store[key]
            scores[key] = []
            kept = [
                row for row in split.rows if query_input(embedder, split.task, split.language, row, style) is not None
            ]
            for row, indices in zip(kept, lists):
                query, image_id = query_input(embedder, split.task, split.language, row, style)
                vector = embedder.embed([query], [split.image(image_id)], 1)[0]
                scores[key].append(candidates[indices] @ vector)
    return scores


def per_query_loop(
    embedder: Embedder, data: str, pairs: list[tuple[str, str]], styles: list[str], batch_size: int
) -> Scores:
    """Second reference: per split (read from ``data``), style and query, embed the query, then its whole
    candidate list."""
    scores: Scores = {}
    for split in (load_split(data, name, lang) for name, lang in pairs):
        for style in styles:
            scores[(split.config, split.language, style)] = rows = []
            for row in split.rows:
                query = query_input(embedder, split.task, split.language, row, style)
                if query is None:
                    continue  # skipped by the protocol (null text)
                vector = embedder.embed([query[0]], [split.image(query[1])], 1)[0]
                items = [candidate_input(embedder, split.task, split.language, c, style) for c in row.candidates]
                rows.append(embed_items(embedder, split, items, batch_size) @ vector)
    return scores


def runner_flow(embedder: Embedder, data: str, config: RunConfig, metric: Callable) -> tuple[Scores, Runner]:
    """The runner's own evaluation; its scores captured per (config, language, style)."""
    runner = Runner(config, metric=metric)
    scores: Scores = {}
    score_split = runner.score_split

    def capture(embedder_, split, style, *args, **kwargs):
        found = score_split(embedder_, split, style, *args, **kwargs)
        scores[(split.config, split.language, style)] = found
        return found

    runner.score_split = capture
    runner.evaluate(embedder, data)
    return scores, runner


def same_scores(ours: Scores, theirs: Scores, name: str) -> None:
    """Assert equal scores: same ranking of every query's candidates, cosines within 1e-5.

    Batched and single-row float32 forwards differ by ~1e-7 in the cosines; 1e-5 is far above that and far
    below the gaps between the tiny model's candidates.
    """
    assert ours.keys() == theirs.keys(), (name, sorted(ours), sorted(theirs))
    for key in ours:
        for a, b in zip(ours[key], theirs[key], strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5, err_msg=f"{name} {key}")
            assert list(np.argsort(-a, kind="stable")) == list(np.argsort(-b, kind="stable")), (name, key, a, b)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="qwen2_vl", help="tiny backbone family (default qwen2_vl)")
    parser.add_argument("--rows", type=int, default=32, help="queries per split")
    parser.add_argument("--candidates", type=int, default=8, help="candidates per query")
    parser.add_argument("--batch-size", type=int, default=16, help="runner batch size")
    parser.add_argument(
        "--released-batch-size",
        type=int,
        default=RELEASED_BATCH_SIZE,
        help="candidate batch size of the released flow (4, as released)",
    )
    parser.add_argument("--tasks", nargs="+", default=["xtd_i2t", "xtd_t2i"], help="configs or tasks to run")
    parser.add_argument("--languages", nargs="+", default=["en", "it"], help="languages to run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians reported)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: on a shared machine extra threads stall each other)"
    )
    parser.add_argument("--per-query-loop", action="store_true", help="also time the per-query loop (once)")
    parser.add_argument("--output", type=Path, default=None, help="write the figures to this JSON file")
    return parser.parse_args(argv)


def summary(seconds: list[float], queries: int) -> dict:
    """Median seconds and queries/s with the spread over rounds."""
    median = statistics.median(seconds)
    return {
        "seconds": seconds,
        "seconds_median": median,
        "queries_per_s": queries / median,
        "spread": (max(seconds) - min(seconds)) / median,
    }


def main(argv: list[str] | None = None) -> dict:
    """Build data and model, run the methods in rotating order, check scores, print and return figures."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    styles = list(STYLES)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_mmmeb(root / "release", rows_per_file=args.rows, num_candidates=args.candidates)
        build_mmmeb(root / "release", root / "data")
        data = str(root / "data")
        model, _ = build_tiny_model(args.backbone, seed=0)
        embedder = XVLM2VecEmbedder(model, f"tiny-{args.backbone}")
        config = RunConfig(
            tasks=list(args.tasks), languages=list(args.languages), styles=styles, batch_size=args.batch_size
        )
        metric = Runner(config).metric
        pairs = select_splits(data, config.tasks, config.languages)
        queries = sum(len(load_split(data, name, lang).rows) for name, lang in pairs) * len(styles)
        _ = embedder.fingerprint  # computed once, outside the timings

        def with_cache(folder: str) -> Scores:
            return runner_flow(embedder, data, RunConfig(**{**vars(config), "cache_dir": str(root / folder)}), metric)[
                0
            ]

        released_store: dict = {}
        methods: dict[str, Callable[[int], Scores]] = {  # each takes the round number
            "released_cold": lambda _: released_flow(embedder, data, pairs, styles, {}, args.released_batch_size),
            "released_warm": lambda _: released_flow(
                embedder, data, pairs, styles, released_store, args.released_batch_size
            ),
            "runner_cold": lambda round_index: with_cache(f"cold-{round_index}"),
            "runner_warm": lambda _: with_cache("warm"),
        }
        released_flow(embedder, data, pairs, styles, released_store, args.released_batch_size)  # fills the warm store
        reference = with_cache("warm")  # fills the runner's warm cache; every method must give these scores
        seconds: dict[str, list[float]] = {name: [] for name in methods}
        names = list(methods)
        for round_index in range(args.rounds):
            order = names[round_index % len(names) :] + names[: round_index % len(names)]
            for name in order:
                start = time.perf_counter()
                scores = methods[name](round_index)
                seconds[name].append(time.perf_counter() - start)
                same_scores(scores, reference, name)
        figures = {
            "setup": {
                **{k: v for k, v in vars(args).items() if k != "output"},
                "styles": styles,
                "output": str(args.output) if args.output else None,
            },
            "queries_scored": queries,
            "load_average_end": os.getloadavg(),
            "methods": {name: summary(values, queries) for name, values in seconds.items()},
            "runner_vs_released_cold": statistics.median(
                [r / o for r, o in zip(seconds["released_cold"], seconds["runner_cold"])]
            ),
            "runner_vs_released_warm": statistics.median(
                [r / o for r, o in zip(seconds["released_warm"], seconds["runner_warm"])]
            ),
        }
        if args.per_query_loop:
            start = time.perf_counter()
            same_scores(per_query_loop(embedder, data, pairs, styles, args.batch_size), reference, "per_query_loop")
            loop_s = time.perf_counter() - start
            figures["methods"]["per_query_loop"] = summary([loop_s], queries)
    print(f"{queries} queries scored per run; {args.rounds} interleaved rounds; scores identical across methods")
    print(f"{'method':<16}{'median s':>10}{'queries/s':>11}{'spread':>8}")
    for name, entry in figures["methods"].items():
        print(f"{name:<16}{entry['seconds_median']:>10.2f}{entry['queries_per_s']:>11.1f}{entry['spread']:>8.0%}")
    print(
        f"runner / released (per-round median): cold {figures['runner_vs_released_cold']:.2f}x, "
        f"warm {figures['runner_vs_released_warm']:.2f}x"
    )
    return save_figures(figures, args.output)


if __name__ == "__main__":
    main()
