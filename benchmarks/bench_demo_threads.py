"""Time the demo teacher's training step with different torch thread counts, side by side in one run.

    .venv/bin/python benchmarks/bench_demo_threads.py --threads 1 2 --output benchmarks/results/bench_demo_threads.json

The step is the full demo's (``DemoConfig.full()``: its world, model size, frozen modules, optimiser and teacher
batch size, batches drawn from the shuffled English pairs), split into collation (tokenising and image
processing, which stays on one thread) and the forward, backward and optimizer step. The demo's
models are tiny, so a step is many small kernels; on a CPU shared with other jobs, extra OpenMP
threads mostly wait for each other. Thread counts are interleaved round by round, so load changes
on the machine hit every setting alike. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from pathlib import Path

import torch
from figures import save_figures  # benchmarks/figures.py: the script's folder is on sys.path

from xvlm2vec.demo.model import build_demo_model, freeze_modules
from xvlm2vec.demo.pipeline import DemoConfig
from xvlm2vec.demo.teacher import teacher_pairs
from xvlm2vec.testing.world import build_world
from xvlm2vec.training.contrastive import ContrastiveCollator, info_nce


def main() -> None:
    """Run the interleaved timing and report median seconds per step and the ratios to the first setting."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to compare")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per thread count and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--output", type=Path, default=None, help="JSON file for the results")
    args = parser.parse_args()

    config = DemoConfig.full()
    torch.use_deterministic_algorithms(True)  # as the demo runs
    world = build_world(config.world)
    model, _ = build_demo_model(config.seed, config.hidden, config.layers, config.world.image_size)
    freeze_modules(model, config.teacher_frozen)  # as the demo trains its teacher
    model.train()
    pairs = teacher_pairs(world, seed=config.seed)
    random.Random(config.seed).shuffle(pairs)  # the Trainer's batches mix every task
    size = config.teacher_batch_size
    collator = ContrastiveCollator(model.prepare_inputs)
    trained = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=config.teacher_learning_rate, betas=(0.9, config.teacher_adam_beta2))

    def step(rows: list) -> tuple[float, float]:
        start = time.perf_counter()
        batch = collator(rows)
        collated = time.perf_counter()
        query = model(**batch["query"], normalize=True).embeddings
        positive = model(**batch["positive"], normalize=True).embeddings
        info_nce(query, positive, config.temperature, batch["same_positive"]).backward()
        optimizer.step()
        optimizer.zero_grad()
        return collated - start, time.perf_counter() - collated

    chunks = [pairs[i * size : (i + 1) * size] for i in range(args.steps)]
    step(chunks[0])  # warm-up
    times: dict[int, dict[str, list[float]]] = {n: {"collate": [], "compute": []} for n in args.threads}
    for _ in range(args.rounds):
        for threads in args.threads:
            torch.set_num_threads(threads)
            for rows in chunks:
                collate, compute = step(rows)
                times[threads]["collate"].append(collate)
                times[threads]["compute"].append(compute)
    totals = {n: [a + b for a, b in zip(t["collate"], t["compute"])] for n, t in times.items()}
    base = statistics.median(totals[args.threads[0]])
    results = {
        str(n): {
            "median_s_per_step": statistics.median(totals[n]),
            "median_collate_s": statistics.median(t["collate"]),
            "median_compute_s": statistics.median(t["compute"]),
            "ratio_to_first": statistics.median(totals[n]) / base,
            "steps": len(totals[n]),
        }
        for n, t in times.items()
    }
    print(f"batch {size}, image {config.world.image_size}px, load average {os.getloadavg()[0]:.2f} at the end")
    print("| threads | median s/step | collate s | compute s | x first |\n|---|---|---|---|---|")
    for n, row in results.items():
        print(
            f"| {n} | {row['median_s_per_step']:.3f} | {row['median_collate_s']:.3f} | {row['median_compute_s']:.3f} "
            f"| {row['ratio_to_first']:.2f} |"
        )
    save_figures(
        {
            "batch_size": size,
            "image_size": config.world.image_size,
            "load_average_end": os.getloadavg()[0],
            "results": results,
        },
        args.output,
    )


if __name__ == "__main__":
    main()
