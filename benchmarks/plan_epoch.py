"""Planning figure: wall time and GPU-hours of one epoch of the parallel corpus, from a measured GPU check.

Reads the per-device step of each recipe from a ``gpu_check.py`` JSON (one GPU, per-device batch of image rows)
and scales it to a data-parallel FSDP run:

    micro-steps per GPU = rows / (gpus * pairs per step)
    compute-bound time  = micro-steps * measured step
    upper bound         = micro-steps * (measured step + all-gather/reduce-scatter time, none of it overlapped)

The communication term moves ``gathers`` bf16 copies of the model per micro-step through each GPU's link:
the LoRA self-teacher gathers the sharded weights for the teacher forward, the student forward and the backward
(3); the released recipe keeps its teacher whole on every GPU and gathers for the student forward and backward,
then reduce-scatters bf16 gradients (3). Model-state memory per GPU comes from ``xvlm2vec.training.memory``
(both recipes fit an 80 GB H100 at per-device batch 8, see docs/performance.md), so the measured batch is kept.

    python benchmarks/plan_epoch.py --gpu-check benchmarks/results/gpu_check_h100.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: The released corpus: 20 MMEB-train subsets x 10,000 rows x 4 languages (it, es, fr, de).
CORPUS_ROWS = 20 * 10_000 * 4
#: bf16 copies of the model each recipe moves through a GPU's link per micro-step (see the module docstring).
GATHERS = {"skd_lora_self_teacher": 3, "skd_released": 3}
BF16 = 2


def plan(
    phase: dict[str, Any], parameters: int, gathers: int, rows: int, gpus: int, link_gb_s: float
) -> dict[str, float]:
    """Epoch figures of one recipe's measured ``phase`` (a gpu_check phase) on ``gpus`` GPUs."""
    pairs = phase["pairs_per_step"]
    micro_steps = rows / (gpus * pairs)
    step = phase["step_s_median"]
    communication = gathers * parameters * BF16 * (gpus - 1) / gpus / (link_gb_s * 1e9)
    hours = micro_steps * step / 3600
    upper = micro_steps * (step + communication) / 3600
    return {
        "step_s": step,
        "pairs_per_step": pairs,
        "micro_steps_per_gpu": micro_steps,
        "communication_s_per_step": communication,
        "hours": hours,
        "hours_upper": upper,
        "gpu_hours": hours * gpus,
        "gpu_hours_upper": upper * gpus,
    }


def table(figures: dict[str, dict[str, float]], gpus: int, rows: int) -> str:
    """The plans as a Markdown table."""
    lines = [
        f"One epoch of {rows:,} parallel rows on {gpus} GPUs (compute-bound .. no communication overlapped)",
        "",
        "| recipe | measured step s | pairs/step | micro-steps per GPU | comm. s/step | hours | GPU-hours |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, plan_figures in figures.items():
        f = plan_figures
        lines.append(
            f"| {name} | {f['step_s']:.2f} | {f['pairs_per_step']} | {f['micro_steps_per_gpu']:,.0f} "
            f"| {f['communication_s_per_step']:.2f} | {f['hours']:.2f} .. {f['hours_upper']:.2f} "
            f"| {f['gpu_hours']:.0f} .. {f['gpu_hours_upper']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the planning table (and write it as JSON with ``--output``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-check", type=Path, required=True, help="a gpu_check.py JSON (one GPU)")
    parser.add_argument("--gpus", type=int, default=16, help="GPUs of the planned run (default 16)")
    parser.add_argument(
        "--rows", type=int, default=CORPUS_ROWS, help=f"parallel rows per epoch (default {CORPUS_ROWS:,})"
    )
    parser.add_argument(
        "--link-gb-s",
        type=float,
        default=40.0,
        help="per-GPU collective bandwidth in GB/s across nodes (default 40: one 400 Gb/s NIC per GPU, ~80%% used)",
    )
    parser.add_argument("--output", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    check = json.loads(args.gpu_check.read_text(encoding="utf-8"))
    parameters = check["model"]["parameters"]
    figures = {
        name: plan(check["phases"][name], parameters, gathers, args.rows, args.gpus, args.link_gb_s)
        for name, gathers in GATHERS.items()
        if check["phases"].get(name, {}).get("status") == "ok"
    }
    print(table(figures, args.gpus, args.rows))
    if args.output is not None:
        document = {"gpu_check": str(args.gpu_check), "gpus": args.gpus, "rows": args.rows, "plans": figures}
        args.output.write_text(json.dumps({**document, "link_gb_s": args.link_gb_s}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
