"""Time the demo teacher's training step with different torch thread counts, side by side in one run.

    .venv/bin/python benchmarks/bench_demo_threads.py --threads 1 2 --steps 5 --output /tmp/bench_threads.json

The demo's models are tiny, so a step is many small kernels; on a CPU shared with other jobs, extra
OpenMP threads mostly wait for each other. Thread counts are interleaved round by round, so load
changes on the machine hit every setting alike. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from xvlm2vec.demo.model import build_demo_model
from xvlm2vec.demo.teacher import teacher_pairs
from xvlm2vec.testing.world import WorldConfig, build_world
from xvlm2vec.training.contrastive import ContrastiveCollator, info_nce

from figures import save_figures  # benchmarks/figures.py: the script's folder is on sys.path


def main() -> None:
    """Run the interleaved timing and report median seconds per step and the ratios to the first setting."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to compare")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per thread count and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output", type=Path, default=None, help="JSON file for the results")
    args = parser.parse_args()

    world = build_world(WorldConfig())
    model, _ = build_demo_model(seed=0, hidden=128, layers=2, image_size=world.config.image_size)
    model.train()
    pairs = teacher_pairs(world, seed=0)
    collator = ContrastiveCollator(model.prepare_inputs)
    batches = [collator(pairs[i * args.batch_size : (i + 1) * args.batch_size]) for i in range(args.steps)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(batch: dict) -> None:
        query = model(**batch["query"], normalize=True).embeddings
        positive = model(**batch["positive"], normalize=True).embeddings
        info_nce(query, positive, 0.05, batch["same_positive"]).backward()
        optimizer.step()
        optimizer.zero_grad()

    step(batches[0])  # warm-up
    times: dict[int, list[float]] = {n: [] for n in args.threads}
    for _ in range(args.rounds):
        for threads in args.threads:
            torch.set_num_threads(threads)
            for batch in batches:
                start = time.perf_counter()
                step(batch)
                times[threads].append(time.perf_counter() - start)
    base = statistics.median(times[args.threads[0]])
    results = {
        str(n): {"median_s_per_step": statistics.median(t), "ratio_to_first": statistics.median(t) / base, "steps": len(t)}
        for n, t in times.items()
    }
    print("| threads | median s/step | x first |\n|---|---|---|")
    for n, row in results.items():
        print(f"| {n} | {row['median_s_per_step']:.3f} | {row['ratio_to_first']:.2f} |")
    save_figures({"batch_size": args.batch_size, "results": results}, args.output)


if __name__ == "__main__":
    main()
