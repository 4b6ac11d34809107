"""Benchmark self-knowledge distillation strategies on the same model and data, side by side.

(a) the reference recipe: a separate frozen teacher copy and three forwards per batch (student en,
    student x, teacher en);
(b) the self-teacher (the student with its LoRA adapters off) and one fused student forward;
(c) (b) with the teacher cache (teacher English embeddings computed once, before training).

Each strategy trains the same LoRA student (same seed) on the same parallel corpus (built with the
project's fixture writer and corpus builder) with `SKDTrainer`. Each runs in a fresh child process so
that its peak resident memory (`ru_maxrss`) is its own; strategies alternate over several rounds and the
median steps/s is kept (the machine is shared). The parent prints steps/s, peak memory above the
post-import baseline, and the ratios against (a), as a table and JSON.

    .venv/bin/python benchmarks/bench_train.py --hidden 512 --layers 4 --output outputs/bench_train.json
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STRATEGIES = {
    "a_reference": {"separate_teacher": True, "fused": False, "cache": False},
    "b_self_fused": {"separate_teacher": False, "fused": True, "cache": False},
    "c_self_fused_cache": {"separate_teacher": False, "fused": True, "cache": True},
}


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_corpus(folder: Path, rows: int, seed: int) -> Path:
    """A parallel corpus folder in the project layout: fixture release file -> `build_parallel`."""
    from xvlm2vec.testing.release import write_parallel
    from dataset_builders.parallel import build_parallel

    source = folder / "release"
    write_parallel(source, rows=rows, seed=seed)
    build_parallel(source, folder / "corpus", dev_fraction=0.0, max_dev_rows=0)
    return folder / "corpus"


def run_strategy(name: str, args: argparse.Namespace) -> dict:
    """Train one strategy for warmup + measured steps and return its figures."""
    import torch
    from transformers import TrainerCallback
    from trl import ModelConfig

    from xvlm2vec.testing.tiny_models import build_tiny_model
    from xvlm2vec.training import SKDConfig, SKDTrainer
    from xvlm2vec.training.script import SKDScriptArguments, add_lora, load_split

    torch.set_num_threads(args.threads)
    settings = STRATEGIES[name]
    train = load_split(SKDScriptArguments(dataset_name=str(args.corpus), dataset_config="all"), "train", None)
    baseline = peak_rss_mib()
    model, _ = build_tiny_model("qwen2_vl", seed=0, hidden=args.hidden, layers=args.layers)
    teacher = copy.deepcopy(model) if settings["separate_teacher"] else None
    model_args = ModelConfig(use_peft=True, lora_r=8, lora_alpha=16, lora_dropout=0.0, lora_task_type="FEATURE_EXTRACTION",
                             lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    student = add_lora(model, model_args)
    work = Path(tempfile.mkdtemp(prefix=f"bench_{name}_"))
    config = SKDConfig(
        output_dir=str(work / "out"), use_cpu=True, report_to="none", disable_tqdm=True, save_strategy="no",
        max_steps=args.warmup + args.steps, per_device_train_batch_size=args.batch_size, learning_rate=1e-4,
        logging_steps=10_000, seed=0, max_length=256, fused_student_forward=settings["fused"],
        teacher_cache=str(work / "cache") if settings["cache"] else None,
    )
    marks: list[float] = []

    class StepClock(TrainerCallback):
        """Record the wall time at the end of every optimizer step."""

        def on_step_end(self, *_args, **_kwargs) -> None:
            marks.append(time.perf_counter())

    started = time.perf_counter()
    trainer = SKDTrainer(model=student, args=config, train_dataset=train, teacher_model=teacher, callbacks=[StepClock()])
    setup_s = time.perf_counter() - started
    trainer.train()
    measured = marks[args.warmup - 1 :] if args.warmup else [started + setup_s] + marks
    steps_per_s = (len(measured) - 1) / (measured[-1] - measured[0])
    return {"strategy": name, **settings, "steps_per_s": steps_per_s, "setup_s": setup_s,
            "peak_rss_above_baseline_mib": peak_rss_mib() - baseline, "peak_rss_mib": peak_rss_mib(),
            "parameters_m": sum(p.numel() for p in student.parameters()) / 1e6}


def median_run(rounds: list[dict]) -> dict:
    """The round with the median steps/s, with every round's steps/s attached."""
    ordered = sorted(rounds, key=lambda run: run["steps_per_s"])
    return {**ordered[len(ordered) // 2], "steps_per_s_rounds": [run["steps_per_s"] for run in rounds]}


def table(results: list[dict]) -> str:
    """A readable table with ratios against strategy (a)."""
    reference = results[0]
    lines = [f"{'strategy':<22}{'steps/s':>9}{'x (a)':>8}{'peak MiB':>10}{'x (a)':>8}{'setup s':>9}"]
    for row in results:
        lines.append(
            f"{row['strategy']:<22}{row['steps_per_s']:>9.3f}{row['steps_per_s'] / reference['steps_per_s']:>8.2f}"
            f"{row['peak_rss_above_baseline_mib']:>10.1f}"
            f"{row['peak_rss_above_baseline_mib'] / reference['peak_rss_above_baseline_mib']:>8.2f}{row['setup_s']:>9.2f}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=160, help="parallel pairs in the corpus")
    parser.add_argument("--steps", type=int, default=10, help="measured optimizer steps per strategy")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured steps first")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per step")
    parser.add_argument("--hidden", type=int, default=512, help="width of the tiny Qwen2-VL model")
    parser.add_argument("--layers", type=int, default=4, help="depth of the tiny Qwen2-VL model")
    parser.add_argument("--rounds", type=int, default=3, help="runs per strategy (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per run")
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
                child = [sys.executable, __file__, "--only", name, "--corpus", str(corpus), "--rows", str(args.rows),
                         "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch-size",
                         str(args.batch_size), "--hidden", str(args.hidden), "--layers", str(args.layers),
                         "--threads", str(args.threads)]
                done = subprocess.run(child, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise RuntimeError(f"strategy {name} failed:\n{done.stderr[-3000:]}")
                runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    results = [median_run(rounds) for rounds in runs.values()]
    print(table(results))
    summary = {"settings": {k: v for k, v in vars(args).items() if k not in ("only", "corpus", "output")},
               "results": results}
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
