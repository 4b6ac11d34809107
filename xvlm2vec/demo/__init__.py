"""``xvlm2vec demo``: the whole method end to end on a synthetic multilingual world, offline, on CPU.

Renders a world of coloured shapes with texts in en/it/es/fr/de, builds MMMEB-shaped test data and a
parallel corpus with the project's builders, trains an English-only tiny teacher contrastively,
distils a multilingual student with ``train.py`` + ``recipes/tiny_cpu.yaml`` (self-teacher, LoRA),
scores both on every MMMEB task and language, renders the student's card and reloads the student in
a fresh process for a cross-lingual retrieval example. See docs/demo.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from xvlm2vec_common.cli_arguments import positive_int
from xvlm2vec_common.cli_errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``xvlm2vec demo``."""
    from xvlm2vec.training.objectives import OBJECTIVES

    parser.add_argument(
        "--output-dir", type=Path, default=Path("demo_output"), help="where everything goes (default demo_output)"
    )
    parser.add_argument("--quick", action="store_true", help="reduced run (smaller world, fewer steps, one style)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the world, the weights and the training (default 0)"
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch threads (default 2, 1 with --quick); use 1 on a CPU other jobs share (docs/demo.md)",
    )
    parser.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default="mse",
        help="distillation objective of the student (default mse, as released; docs/training.md#objectives)",
    )
    parser.add_argument(
        "--matryoshka-dims",
        type=positive_int,
        nargs="+",
        default=None,
        help="with --objective matryoshka: the prefix sizes trained (default the full, 1/2 and 1/4 width)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo, print the results table, the targets and the retrieval example; 0 when it ran."""
    from .pipeline import DemoConfig, run_demo

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    config = DemoConfig.quick(args.seed) if args.quick else DemoConfig.full(args.seed)
    if args.threads is not None:
        config = dataclasses.replace(config, threads=args.threads)
    if args.matryoshka_dims and args.objective != "matryoshka":
        raise UsageError("--matryoshka-dims needs --objective matryoshka")
    matryoshka_dims = tuple(args.matryoshka_dims) if args.matryoshka_dims else None
    config = dataclasses.replace(config, objective=args.objective, matryoshka_dims=matryoshka_dims)
    summary = run_demo(config, args.output_dir)
    print((args.output_dir / "results.md").read_text())
    print(summary["example"])
    print("targets (held-out split):")
    for name, check in summary["targets"].items():
        print(f"  {'met ' if check['met'] else 'MISS'} {name}: {check['value']}")
    print(json.dumps(summary["timings_s"]))
    print(f"outputs in {args.output_dir}: results.json, results.md, results.png, demo_summary.json, student/README.md")
    return 0
