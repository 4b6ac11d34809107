"""Benchmark the distillation recipes where the weights dominate memory: peak memory and steps/s side by side.

- ``released``: full fine-tuning + a separate frozen teacher copy, three forwards per batch (student en,
  student x, teacher en), as the released training script;
- ``lora_separate``: LoRA student + a separate frozen teacher copy (fused student forward);
- ``lora_self``: LoRA student whose teacher is itself with the adapters off (one copy of the weights);
- ``lora_self_cache``: ``lora_self`` with the teacher cache (teacher embeddings computed before training).

Each strategy trains the same model (same seed) on the same parallel corpus (the project's fixture writer
and corpus builder) with `SKDTrainer` and AdamW. The default model (~135M parameters, hidden 768, 12
layers) is big enough that weights, gradients and optimizer state, not activations, dominate memory, as at
Phi-3.5-V size. Each run is a fresh child process, so its peak resident memory (``ru_maxrss``) is its own;
strategies alternate over rounds and the median steps/s is kept (the machine may be shared). The parent
prints steps/s and peak memory above the post-import baseline with per-round ratios against ``released``, and
the computed model-state memory of each strategy at Phi-3.5-V size per GPU under FSDP (``--gpus``, 16).

    .venv/bin/python benchmarks/bench_train.py --output outputs/bench_train.json
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import save_figures  # benchmarks/figures.py: the script's folder is on sys.path

STRATEGIES = {
    "released": {"lora": False, "separate_teacher": True, "fused": False, "cache": False},
    "lora_separate": {"lora": True, "separate_teacher": True, "fused": True, "cache": False},
    "lora_self": {"lora": True, "separate_teacher": False, "fused": True, "cache": False},
    "lora_self_cache": {"lora": True, "separate_teacher": False, "fused": True, "cache": True},
}


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_corpus(folder: Path, rows: int, seed: int) -> Path:
    """A parallel corpus folder in the project layout: fixture release file -> `build_parallel`."""
    from dataset_builders.parallel import build_parallel
    from xvlm2vec.testing.fixtures import write_parallel

    source = folder / "release"
    write_parallel(source, rows=rows, seed=seed)
    build_parallel(source, folder / "corpus", dev_fraction=0.0, max_dev_rows=0)
    return folder / "corpus"


def run_strategy(name: str, args: argparse.Namespace) -> dict:
    """Train one strategy for warmup + measured steps and return its figures."""
    import torch
    from transformers import TrainerCallback
    from trl import ModelConfig

    from xvlm2vec.testing.tiny_model import build_tiny_model
    from xvlm2vec.training import SKDConfig, SKDTrainer
    from xvlm2vec.training.data import load_split
    from xvlm2vec.training.models import add_lora
    from xvlm2vec.training.script import SKDScriptArguments

    torch.set_num_threads(args.threads)
    settings = STRATEGIES[name]
    train = load_split(SKDScriptArguments(dataset_name=str(args.corpus), dataset_config="all"), "train", None)
    baseline = peak_rss_mib()
    model, _ = build_tiny_model("qwen2_vl", seed=0, hidden=args.hidden, layers=args.layers)
    teacher = copy.deepcopy(model) if settings["separate_teacher"] else None
    model_args = ModelConfig(
        use_peft=settings["lora"],
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        lora_task_type="FEATURE_EXTRACTION",
        lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    )
    student = add_lora(model, model_args)
    work = Path(tempfile.mkdtemp(prefix=f"bench_{name}_"))
    config = SKDConfig(
        output_dir=str(work / "out"),
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
        save_strategy="no",
        max_steps=args.warmup + args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=1e-5,
        logging_steps=10_000,
        seed=0,
        max_length=256,
        fused_student_forward=settings["fused"],
        teacher_cache=str(work / "cache") if settings["cache"] else None,
    )
    marks: list[float] = []

    class StepClock(TrainerCallback):
        """Record the wall time at the end of every optimizer step."""

        def on_step_end(self, *_args, **_kwargs) -> None:
            marks.append(time.perf_counter())

    started = time.perf_counter()
    trainer = SKDTrainer(
        model=student, args=config, train_dataset=train, teacher_model=teacher, callbacks=[StepClock()]
    )
    setup_s = time.perf_counter() - started
    trainer.train()
    measured = marks[args.warmup - 1 :] if args.warmup else [started + setup_s] + marks
    steps_per_s = (len(measured) - 1) / (measured[-1] - measured[0])
    return {
        "strategy": name,
        **settings,
        "steps_per_s": steps_per_s,
        "setup_s": setup_s,
        "peak_rss_above_baseline_mib": peak_rss_mib() - baseline,
        "peak_rss_mib": peak_rss_mib(),
        "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "trainable_parameters_m": sum(p.numel() for p in student.parameters() if p.requires_grad) / 1e6,
    }


def median_run(rounds: list[dict], reference: list[dict]) -> dict:
    """The round with the median steps/s, every round's steps/s, and the per-round ratios against ``reference``
    (the released recipe's runs of the same rounds), with their medians."""
    ordered = sorted(rounds, key=lambda run: run["steps_per_s"])
    speed = [run["steps_per_s"] / ref["steps_per_s"] for run, ref in zip(rounds, reference)]
    memory = [
        run["peak_rss_above_baseline_mib"] / ref["peak_rss_above_baseline_mib"] for run, ref in zip(rounds, reference)
    ]
    return {
        **ordered[len(ordered) // 2],
        "steps_per_s_rounds": [run["steps_per_s"] for run in rounds],
        "steps_per_s_vs_released_rounds": speed,
        "steps_per_s_vs_released": statistics.median(speed),
        "peak_memory_vs_released_rounds": memory,
        "peak_memory_vs_released": statistics.median(memory),
    }


def table(results: list[dict]) -> str:
    """A readable table with the per-round median ratios against the released recipe."""
    lines = [f"{'strategy':<18}{'steps/s':>9}{'x rel.':>8}{'spread':>8}{'peak MiB':>10}{'x rel.':>8}{'setup s':>9}"]
    for row in results:
        rounds = row["steps_per_s_rounds"]
        spread = (max(rounds) - min(rounds)) / row["steps_per_s"]
        lines.append(
            f"{row['strategy']:<18}{row['steps_per_s']:>9.3f}{row['steps_per_s_vs_released']:>8.2f}{spread:>8.0%}"
            f"{row['peak_rss_above_baseline_mib']:>10.1f}{row['peak_memory_vs_released']:>8.2f}{row['setup_s']:>9.2f}"
        )
    return "\n".join(lines)


def phi35v_fsdp_memory(gpus: int) -> dict[str, dict[str, float]]:
    """Model-state memory per GPU (GiB) of each strategy at Phi-3.5-V size under FSDP over ``gpus`` GPUs.

    From `xvlm2vec.training.memory` (activations excluded); a separate teacher is a full bfloat16 replica per
    GPU; the teacher cache changes no model state (it saves the teacher's forward and its activations).
    """
    from xvlm2vec.training.memory import (
        BF16,
        NO_SPLIT_WRAP,
        RELEASED_WRAP,
        count_parameters,
        full_finetuning_memory,
        lora_memory,
        phi35v_config,
    )

    config = phi35v_config()
    counts = count_parameters(config, NO_SPLIT_WRAP)
    lora = lora_memory(counts, gpus)
    estimates = {
        "released": full_finetuning_memory(count_parameters(config, RELEASED_WRAP), gpus),
        "lora_separate": dataclasses.replace(lora, teacher=counts.total * BF16),
        "lora_self": lora,
        "lora_self_cache": lora,
    }
    return {name: estimate.gib() for name, estimate in estimates.items()}


def memory_table(estimates: dict[str, dict[str, float]], gpus: int) -> str:
    """The computed Phi-3.5-V memory as a readable table."""
    lines = [
        f"Phi-3.5-V model states per GPU, FSDP full shard over {gpus} GPUs (GiB, activations excluded):",
        f"{'strategy':<18}{'weights':>9}{'grads':>8}{'AdamW':>8}{'teacher':>9}{'gathered':>10}{'total':>8}",
    ]
    for name, g in estimates.items():
        lines.append(
            f"{name:<18}{g['weights']:>9.2f}{g['gradients']:>8.2f}{g['optimizer']:>8.2f}{g['teacher']:>9.2f}"
            f"{g['gathered']:>10.2f}{g['total']:>8.2f}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=160, help="parallel pairs in the corpus")
    parser.add_argument("--steps", type=int, default=3, help="measured optimizer steps per strategy")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured steps first")
    parser.add_argument("--batch-size", type=int, default=4, help="pairs per step")
    parser.add_argument("--hidden", type=int, default=768, help="width of the Qwen2-VL-shaped model")
    parser.add_argument("--layers", type=int, default=12, help="depth of the Qwen2-VL-shaped model")
    parser.add_argument("--rounds", type=int, default=3, help="runs per strategy (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per run")
    parser.add_argument("--gpus", type=int, default=16, help="GPUs of the computed Phi-3.5-V FSDP memory (paper: 16)")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--only", choices=sorted(STRATEGIES), help=argparse.SUPPRESS)  # child process mode
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build the corpus once, run every strategy in its own process, print and save the comparison."""
    args = parse_args(argv)
    if args.only:
        print(json.dumps(run_strategy(args.only, args)))
        return 0
    with tempfile.TemporaryDirectory() as folder:
        corpus = build_corpus(Path(folder), args.rows, seed=0)
        runs: dict[str, list[dict]] = {name: [] for name in STRATEGIES}
        for _ in range(args.rounds):  # strategies alternate, so machine load drifts hit all of them alike
            for name in STRATEGIES:
                child = [
                    sys.executable,
                    __file__,
                    "--only",
                    name,
                    "--corpus",
                    str(corpus),
                    "--rows",
                    str(args.rows),
                    "--steps",
                    str(args.steps),
                    "--warmup",
                    str(args.warmup),
                    "--batch-size",
                    str(args.batch_size),
                    "--hidden",
                    str(args.hidden),
                    "--layers",
                    str(args.layers),
                    "--threads",
                    str(args.threads),
                ]
                done = subprocess.run(child, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise RuntimeError(f"strategy {name} failed:\n{done.stderr[-3000:]}")
                runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    results = [median_run(rounds, runs["released"]) for rounds in runs.values()]
    print(table(results))
    estimates = phi35v_fsdp_memory(args.gpus)
    print(memory_table(estimates, args.gpus))
    summary = {
        "settings": {k: v for k, v in vars(args).items() if k not in ("only", "corpus", "output")},
        "results": results,
        "phi35v_fsdp_gib_per_gpu": estimates,
    }
    save_figures(summary, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
