"""Sharding: a 2-process CPU run (gloo) with the layers sharded by torch FSDP2 matches one process.

accelerate does not turn FSDP on without accelerators, so this test drives the same sharding directly:
`fully_shard` on every class in the model's `_no_split_modules` (what accelerate's TRANSFORMER_BASED_WRAP
wraps), then on the root; the loss is the trainer's own (`DistillationLoss`). This file is
also the worker script that `torchrun` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist

STEPS = 3
GLOBAL_BATCH = 8
LR = 0.5


def run_worker(output: Path, shard: bool, lr: float = LR, flag_step: int | None = None) -> list[float]:
    """Train STEPS SGD steps on fixed rows; each process takes its share of every global batch.

    With ``flag_step`` the training guard runs before every optimizer step (as the trainer's does) and the last
    process flags step ``flag_step`` as non-finite: every process must then skip that step."""
    from test_train_fixtures import lora_student, parallel_rows

    from xvlm2vec.training import DistillationLoss, ParallelCollator
    from xvlm2vec.training.guards import RunGuard
    from xvlm2vec.training.teacher import Teacher

    rank, world = (dist.get_rank(), dist.get_world_size()) if shard else (0, 1)
    model = lora_student(seed=0)
    collator = ParallelCollator(model.get_base_model().prepare_inputs, max_length=64)
    teacher = Teacher(model)
    if shard:
        from torch.distributed.fsdp import fully_shard

        layer_classes = set(model.get_base_model()._no_split_modules)
        sharded = [module for module in model.modules() if type(module).__name__ in layer_classes]
        assert sharded, f"no module of {layer_classes} found"
        for module in sharded:
            fully_shard(module)
        fully_shard(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    rows = parallel_rows(STEPS * GLOBAL_BATCH, seed=5, image_every=3)
    losses, skips = [], []

    def reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
        if shard:
            dist.all_reduce(tensor)
        return tensor

    guard = RunGuard(max_bad_row_share=1.0, max_nonfinite_steps=STEPS, reduce_sum=reduce_sum)
    for step in range(STEPS):
        batch = collator(rows[step * GLOBAL_BATCH : (step + 1) * GLOBAL_BATCH][rank::world])
        loss = DistillationLoss()(model, teacher, batch).loss
        loss.backward()
        if flag_step is not None:
            if step == flag_step and rank == world - 1:
                guard.flag("non-finite loss (flagged by the test)")
            parameters = [p for p in model.parameters() if p.grad is not None]
            skips.append(guard.decide_step([p.grad for p in parameters], torch.device("cpu")))
            if skips[-1]:
                for parameter in parameters:
                    parameter.grad = None
        optimizer.step()
        optimizer.zero_grad()
        mean = loss.detach().clone()
        if shard:
            dist.all_reduce(mean)
            mean /= world
        losses.append(mean.item())
    output.with_suffix(f".rank{rank}.json").write_text(json.dumps({"losses": losses, "world": world, "skips": skips}))
    return losses


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun(output: Path, *extra: str) -> None:
    """Run this file's worker in two processes with torchrun."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        __file__,
        "--output",
        str(output),
        *extra,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]


def test_two_process_fsdp2_matches_single_process(tmp_path: Path) -> None:
    single = run_worker(tmp_path / "single.json", shard=False)
    output = tmp_path / "sharded.json"
    torchrun(output)
    sharded = json.loads(output.with_suffix(".rank0.json").read_text())
    assert sharded["world"] == 2
    # Step 0 sees identical weights, so only the split of the batch over processes (float summation order)
    # separates the two; later steps add the sharded gradient reduction. float32 rounding over three steps
    # stays far below 1e-4 relative.
    assert torch.allclose(torch.tensor(sharded["losses"]), torch.tensor(single), rtol=1e-4, atol=0)
    # The comparison can fail: gradients summed instead of averaged over the two processes equal a doubled
    # learning rate, and that run leaves the tolerance by far after step 0.
    doubled = run_worker(tmp_path / "doubled.json", shard=False, lr=2 * LR)
    assert doubled[0] == single[0]
    assert not torch.allclose(torch.tensor(doubled[1:]), torch.tensor(single[1:]), rtol=1e-3, atol=0)


def test_a_step_flagged_on_one_process_is_skipped_by_both(tmp_path: Path) -> None:
    """The training guard under FSDP2: the last process alone flags step 1; both skip it (the one all-reduce of
    the guard), and the sharded run still matches one process that skipped the same step."""
    single = run_worker(tmp_path / "single.json", shard=False, flag_step=1)
    assert json.loads((tmp_path / "single.rank0.json").read_text())["skips"] == [False, True, False]
    torchrun(tmp_path / "sharded.json", "--flag-step", "1")
    ranks = [json.loads((tmp_path / f"sharded.rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["skips"] for r in ranks] == [[False, True, False]] * 2
    # same tolerance as above; a rank that stepped alone would change the step-2 loss far beyond it
    assert torch.allclose(torch.tensor(ranks[0]["losses"]), torch.tensor(single), rtol=1e-4, atol=0)
    unguarded = run_worker(tmp_path / "unguarded.json", shard=False)
    assert not torch.allclose(torch.tensor(unguarded[2:]), torch.tensor(single[2:]), rtol=1e-3, atol=0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="torchrun worker of the FSDP2 sharding test")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--flag-step", type=int, default=None)
    arguments = parser.parse_args()
    dist.init_process_group("gloo")
    run_worker(arguments.output, shard=True, flag_step=arguments.flag_step)
    # Both ranks reach this point before either tears gloo down: a rank that destroys its group while the
    # other still uses the shared store aborts the process ("terminate called without an active exception").
    dist.barrier()
    dist.destroy_process_group()
