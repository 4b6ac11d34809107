"""README.md's commands, read out of the README and run as printed.

Run, exactly as printed: every line of every ```bash block, in order, from a folder shaped like the
checkout (links to its ``train.py``, ``recipes/`` and ``accelerate_configs/``) so that outputs land
in a temporary folder, with the checkout's ``.venv/bin`` first on ``PATH``.
Not run here, and why: ``make demo`` (five minutes; tests/test_demo.py runs the same pipeline,
reduced) and ``make test`` (it is this suite). The Python example under "Using a model" is run with
its two placeholders ("path/or/repo", "cat.jpg") replaced by a model and an image the test made.
The other Python examples ("Use it with": sentence-transformers, MTEB, vLLM export) are run, with
their placeholders filled, by tests/test_readme_integrations.py. The command table is a synopsis with
placeholders (``DIR``, ``NAME``); its runnable instances are the bash block above it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
NOT_RUN = {"make demo": "tests/test_demo.py runs the demo (reduced)", "make test": "this suite"}


def blocks(language: str) -> list[str]:
    """The README's fenced code blocks of ``language``."""
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.S | re.M)


def commands() -> list[str]:
    """Every command line of the README's bash blocks (comments stripped), in order."""
    lines = [
        line.split("#")[0].strip() if line.lstrip().startswith("make ") else line.strip()
        for block in blocks("bash")
        for line in block.splitlines()
    ]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_readme_has_the_two_commands_and_a_runnable_block() -> None:
    found = commands()
    assert found[:2] == ["make demo", "make test"]
    assert any(line.startswith("xvlm2vec train --config tiny_cpu") for line in found)
    assert any(
        line.startswith("accelerate launch") and "train.py --config recipes/tiny_cpu.yaml" in line for line in found
    )


def test_every_readme_command_runs_as_printed(tmp_path: Path) -> None:
    for name in ("train.py", "recipes", "accelerate_configs"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    ran = []
    for command in commands():
        if command in NOT_RUN:
            continue
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"README command failed: {command}\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}"
        ran.append((command, done.stdout))
    outputs = dict(ran)
    assert len(ran) == len(commands()) - len(NOT_RUN)
    assert next(out for cmd, out in ran if cmd == "xvlm2vec --version").startswith("xvlm2vec ")
    for student in ("runs/tiny_student", "runs/tiny_student_2"):
        assert (tmp_path / student / "model.safetensors").is_file()
    assert (tmp_path / "runs" / "scores" / "results.json").is_file()
    assert "'precision@1': 1.0" in outputs[next(cmd for cmd in outputs if cmd.startswith("python -c"))]

    # "Using a model", with its placeholders pointed at what the commands above made
    example = blocks("python")[0]
    image = next((tmp_path / "runs" / "mmmeb_release").rglob("*.jpg"))
    code = example.replace("path/or/repo", str(tmp_path / "runs" / "tiny_student")).replace("cat.jpg", str(image))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"tensor\(\[\[[-0-9.]+\]\]\)|\[\[[-0-9.e ]+\]\]", done.stdout), done.stdout
