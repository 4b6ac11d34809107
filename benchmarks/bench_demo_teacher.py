"""Time the demo's teacher stage per epoch: the earlier settings against today's, side by side in one run.

    .venv/bin/python benchmarks/bench_demo_teacher.py --epochs 2 --rounds 3 \
        --output benchmarks/results/bench_demo_teacher.json

Both variants run the demo's own `train_english_teacher` (the Trainer, its DataLoader, collation, save) on the
full demo's world and model for ``--epochs`` epochs, with the demo's threads:

- ``before``: every weight trained, AdamW beta2 0.999, collation in the training process (the demo until
  2026-12-04: 40 epochs at 5e-4);
- ``now``: the `DemoConfig` defaults (vision patch embedding and blocks frozen, beta2 0.95, one DataLoader
  worker collating ahead: 32 epochs at 7e-4).

After an untimed warm-up of each, variants alternate within each round, so load changes hit both alike.
Reported: median seconds per epoch of each, their ratio, and the projected teacher stage (epochs of each
setting times its seconds per epoch).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

from figures import save_figures  # benchmarks/figures.py: the script's folder is on sys.path

from xvlm2vec.demo.pipeline import DemoConfig, seeded, train_english_teacher
from xvlm2vec.testing.world import build_world

BEFORE_EPOCHS, BEFORE_LEARNING_RATE = 40.0, 5e-4


def variants(epochs: float, threads: int) -> dict[str, DemoConfig]:
    """The two teacher settings, each cut to ``epochs`` epochs."""
    now = dataclasses.replace(DemoConfig.full(), threads=threads)
    before = dataclasses.replace(
        now,
        teacher_learning_rate=BEFORE_LEARNING_RATE,
        teacher_adam_beta2=0.999,
        teacher_frozen=(),
        teacher_dataloader_workers=0,
    )
    return {
        name: dataclasses.replace(config, teacher_epochs=epochs) for name, config in (("before", before), ("now", now))
    }


def main() -> None:
    """Run the interleaved timing, print a table and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, default=2.0, help="epochs per timed run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=DemoConfig.threads, help="torch threads (the demo's: 2)")
    parser.add_argument("--output", type=Path, default=None, help="JSON file for the results")
    args = parser.parse_args()

    configs = variants(args.epochs, args.threads)
    world = build_world(DemoConfig.full().world)
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory() as scratch:
        for name, config in variants(0.1, args.threads).items():  # warm-up (first imports, allocator), untimed
            with seeded(config.seed, config.threads):
                train_english_teacher(config, world, Path(scratch) / f"warmup_{name}")
        for round_index in range(args.rounds):
            for name, config in configs.items():
                with seeded(config.seed, config.threads):
                    start = time.perf_counter()
                    train_english_teacher(config, world, Path(scratch) / f"{name}{round_index}")
                    seconds[name].append((time.perf_counter() - start) / args.epochs)
                print(f"round {round_index + 1}: {name} {seconds[name][-1]:.2f} s/epoch", flush=True)
    per_epoch = {name: statistics.median(values) for name, values in seconds.items()}
    stage = {"before": per_epoch["before"] * BEFORE_EPOCHS, "now": per_epoch["now"] * DemoConfig.teacher_epochs}
    results = {
        "threads": args.threads,
        "epochs_per_run": args.epochs,
        "rounds": args.rounds,
        "s_per_epoch": per_epoch,
        "s_per_epoch_all": seconds,
        "per_epoch_ratio_now_to_before": per_epoch["now"] / per_epoch["before"],
        "projected_stage_s": stage,
        "projected_stage_ratio_now_to_before": stage["now"] / stage["before"],
        "load_average_end": os.getloadavg()[0],
    }
    print(f"threads {args.threads}, {args.epochs:g} epochs per run, {args.rounds} rounds")
    print("| setting | s/epoch (median) | epochs | projected teacher stage s |\n|---|---|---|---|")
    print(f"| before | {per_epoch['before']:.2f} | {BEFORE_EPOCHS:g} | {stage['before']:.0f} |")
    print(f"| now | {per_epoch['now']:.2f} | {DemoConfig.teacher_epochs:g} | {stage['now']:.0f} |")
    print(
        f"now / before: {results['per_epoch_ratio_now_to_before']:.2f} per epoch, "
        f"{results['projected_stage_ratio_now_to_before']:.2f} for the stage"
    )
    save_figures(results, args.output)


if __name__ == "__main__":
    main()
