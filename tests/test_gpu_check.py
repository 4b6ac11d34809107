"""benchmarks/gpu_check.py: its --tiny mode runs end to end without datasets/trl/evaluate, and its FLOP count is
exact.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

pytestmark = pytest.mark.slow  # make test-slow (CI runs it after make test): minutes on 2 cores

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"

# Runs the check with `datasets`, `trl` and `evaluate` unimportable (the GPU machine has none of them), then
# proves the blocker worked by failing to import one of them.
BLOCKED_RUN = """
import runpy, sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("datasets", "trl", "evaluate"):
            raise ImportError(f"{name} is blocked: the GPU machine does not have it")
        return None
sys.meta_path.insert(0, Blocker())
sys.argv = ["gpu_check.py", *sys.argv[1:]]
try:
    runpy.run_path(SCRIPT_PATH, run_name="__main__")
except SystemExit as done:
    if done.code:
        raise
try:
    import datasets  # noqa: F401
except ImportError:
    print("BLOCKER-OK")
"""


def load_gpu_check():
    """Import benchmarks/gpu_check.py as a module."""
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_tiny_mode_runs_every_variant_without_datasets_trl_evaluate(tmp_path):
    """Every phase runs on CPU (Liger, which needs CUDA, is recorded as skipped and the later phases run without it),
    the table lists every phase, and the figures behind it are consistent."""
    gpu_check = load_gpu_check()
    output = tmp_path / "gpu_check.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = ["--tiny", "--output", str(output), "--batch-size", "2", "--warmup", "0", "--steps", "1"]
    args += ["--encode-rows", "2", "--encode-repeats", "1", "--budget-s", "100000"]
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN.replace("SCRIPT_PATH", repr(str(SCRIPT))), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "BLOCKER-OK" in done.stdout
    assert "skd_lora_self_teacher: ok" in done.stdout  # progress lines reach stdout
    result = json.loads(output.read_text())
    assert result["environment"]["tiny"] is True and result["environment"]["attn_implementation"] == "sdpa"
    assert {"torch", "transformers", "device", "liger_kernel"} <= set(result["environment"])
    phases = result["phases"]
    lora_names = [name for name, _ in gpu_check.LORA_VARIANTS]
    assert list(phases) == ["skd_released", "encode_texts", "encode_images", *lora_names]
    for name in ["skd_released", "encode_texts", "encode_images", *lora_names]:
        if not name.startswith("encode"):
            assert f"| {name} |" in result["table"] and f"| {name} |" in done.stdout  # a printed table row per step
        expected = "skipped" if name == gpu_check.LIGER_PHASE else "ok"
        assert phases[name]["status"] == expected, (name, phases[name])
    assert "CUDA" in phases[gpu_check.LIGER_PHASE]["reason"]
    lora, released = phases["skd_lora_self_teacher"], phases["skd_released"]
    # LoRA trains the adapters only; the released recipe trains every weight of the model
    assert 0 < lora["trainable_parameters"] < released["trainable_parameters"] / 20
    assert released["trainable_parameters"] == result["model"]["parameters"]
    # same batch: the full backward (2x forward, vision included) costs more model FLOPs than LoRA's
    assert released["model_tflops_per_step"] > lora["model_tflops_per_step"] > 0
    # checkpointing recomputes the student decoder's forward: all of it, half of it, none of it
    recomputed = {
        name: phases[name]["hardware_tflops_per_step"] - phases[name]["model_tflops_per_step"]
        for name in ("skd_lora_self_teacher", "lora+bf16+checkpoint_half", "lora+bf16+no_checkpoint")
    }
    assert recomputed["skd_lora_self_teacher"] > 0 and recomputed["lora+bf16+no_checkpoint"] == 0
    assert recomputed["lora+bf16+checkpoint_half"] == pytest.approx(recomputed["skd_lora_self_teacher"] / 2)
    assert lora["pairs_per_step"] == 2 and lora["tokens_per_s"] > 0 and lora["mfu"] is None and lora["hfu"] is None
    # each lever was applied in its phase, and the phases on the same batch report their loss drift
    assert phases["lora+bf16_adapters"]["levers"]["bf16_adapters"] and not lora["levers"]["bf16_adapters"]
    assert phases["lora+bf16+no_checkpoint+compile"]["levers"]["compile"]
    assert not phases["lora_fast+batch_x2"]["levers"]["liger"]  # skipped here: the later phases say so
    for name in lora_names[1:5]:
        assert 0 <= phases[name]["loss_max_rel_drift"] < 0.05, name  # bf16 adapters on a float32 tiny model
    assert phases["lora_fast+batch_x2"]["pairs_per_step"] == 4
    shuffled, grouped = phases["lora_fast+mixed_rows_shuffled"], phases["lora_fast+mixed_rows_grouped"]
    assert shuffled["student_tokens_per_step"] == grouped["student_tokens_per_step"]  # the same rows
    assert grouped["padded_student_tokens_per_step"] < shuffled["padded_student_tokens_per_step"]
    assert phases["encode_images"]["rows"] == 2 and phases["encode_texts"]["rows_per_s"] > 0
    assert result["total_seconds"] < 900


def test_budget_skips_the_phases_that_would_start_late(tmp_path):
    gpu_check = load_gpu_check()
    output = tmp_path / "late.json"
    args = ["--tiny", "--output", str(output), "--batch-size", "1", "--warmup", "0", "--steps", "1"]
    assert gpu_check.main([*args, "--budget-s", "0", "--phases", "released", "lora"]) == 0
    phases = json.loads(output.read_text())["phases"]
    assert {phase["status"] for phase in phases.values()} == {"skipped"}
    assert len(phases) == 1 + len(gpu_check.LORA_VARIANTS)


def test_forward_flops_equal_torch_flop_counter():
    """The analytic FLOPs behind MFU equal torch's count of the same forward (eager attention, so every
    matmul is visible to the counter) exactly, for an image row and for a text row."""
    gpu_check = load_gpu_check()
    torch.manual_seed(0)
    model = gpu_check.build_model(gpu_check.tiny_phi3_v_config(), torch.device("cpu"), torch.float32, "eager")
    model.set_processor(gpu_check.tiny_phi3_v_processor())
    row = gpu_check.synthetic_pairs(1, 336)[0]
    for texts, images in (([row["text_en"]], [row["image"]]), ([row["text_lang"].split("\n", 1)[1]], [None])):
        batch = model.prepare_inputs(texts, images)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(**batch)
        computed = gpu_check.forward_flops(model, batch)
        assert (computed["vision"] > 0) == (images[0] is not None)
        assert sum(computed.values()) == counter.get_total_flops()
