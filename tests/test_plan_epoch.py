"""benchmarks/plan_epoch.py: the epoch plan is the measured step scaled by the stated formula."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_plan_epoch():
    """Import benchmarks/plan_epoch.py as a module."""
    spec = importlib.util.spec_from_file_location("plan_epoch", ROOT / "benchmarks" / "plan_epoch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plan_scales_the_measured_step(tmp_path, capsys):
    plan_epoch = load_plan_epoch()
    check = {
        "model": {"parameters": 4_000_000_000},
        "phases": {
            "skd_lora_self_teacher": {"status": "ok", "step_s_median": 2.0, "pairs_per_step": 8},
            "skd_released": {"status": "oom"},
        },
    }
    source = tmp_path / "check.json"
    source.write_text(json.dumps(check))
    output = tmp_path / "plan.json"
    args = ["--gpu-check", str(source), "--gpus", "16", "--rows", "128000", "--link-gb-s", "40", "--output"]
    assert plan_epoch.main([*args, str(output)]) == 0
    plans = json.loads(output.read_text())["plans"]
    assert list(plans) == ["skd_lora_self_teacher"]  # a phase that did not run is not planned
    lora = plans["skd_lora_self_teacher"]
    assert lora["micro_steps_per_gpu"] == 1000  # 128,000 rows / (16 GPUs x 8 pairs)
    assert lora["hours"] == pytest.approx(1000 * 2.0 / 3600)
    # 3 bf16 copies of 4e9 parameters, 15/16 of them from other GPUs, at 40 GB/s: 0.5625 s per micro-step
    assert lora["communication_s_per_step"] == pytest.approx(0.5625)
    assert lora["gpu_hours_upper"] == pytest.approx(16 * 1000 * 2.5625 / 3600)
    assert "| skd_lora_self_teacher | 2.00 | 8 | 1,000 |" in capsys.readouterr().out
