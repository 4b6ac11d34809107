"""Shared test fixtures: tiny models per backbone, small images, and an isolated Python runner."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from xvlm2vec.testing.tiny_model import BUILDERS, build_tiny_model

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


#: Every supported backbone; the model tests are parametrised over all of them.
BACKBONES = sorted(BUILDERS)


@pytest.fixture(scope="session")
def tiny_models() -> Callable:
    """Return a cached ``get(backbone, padding_side="right")`` -> (model, processor)."""
    cache: dict = {}

    def get(backbone: str, padding_side: str = "right"):
        key = (backbone, padding_side)
        if key not in cache:
            cache[key] = build_tiny_model(backbone, seed=0, padding_side=padding_side)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def images() -> list[Image.Image]:
    """A few small RGB images of different sizes and aspect ratios."""
    colours = [(220, 30, 30), (30, 200, 40), (20, 40, 230), (240, 200, 20)]
    sizes = [(56, 56), (84, 42), (40, 70), (64, 64)]
    out = []
    for (w, h), colour in zip(sizes, colours):
        img = Image.new("RGB", (w, h), (255, 255, 255))
        img.paste(colour, (w // 4, h // 4, 3 * w // 4, 3 * h // 4))
        out.append(img)
    return out


def _site_packages() -> list[str]:
    return [p for p in site.getsitepackages() if Path(p).is_dir()]


@pytest.fixture(scope="session")
def run_isolated() -> Callable[[str, Path], dict]:
    """Run Python ``code`` in a fresh interpreter where this project is NOT importable.

    ``python -I -S`` ignores the environment, the current folder and ``.pth`` files (the editable
    install's import hook), and only site-packages is put back on ``sys.path``. The code must print
    one JSON object on its last stdout line, which is returned.
    """

    def run(code: str, cwd: Path) -> dict:
        prelude = f"import sys; sys.path.extend({_site_packages()!r})\n"
        guard = (
            "import importlib.util\n"
            "assert importlib.util.find_spec('modeling_xvlm2vec') is None, 'project importable'\n"
            "assert importlib.util.find_spec('xvlm2vec') is None, 'project importable'\n"
        )
        env = {
            "HF_HUB_OFFLINE": "1",
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "HF_HOME": str(Path(cwd) / ".hf_home"),
        }
        proc = subprocess.run(
            [sys.executable, "-I", "-S", "-c", prelude + guard + code],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0:
            raise AssertionError(f"isolated run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    return run


@pytest.fixture(scope="session")
def built_mmmeb(tmp_path_factory) -> Path:
    """MMMEB built by the project's builder from release-format fixtures (4 queries per file, 4 candidates).

    Shared read-only: tests that change it work on a copy.
    """
    from dataset_builders.mmmeb import build_mmmeb
    from xvlm2vec.testing.fixtures import write_mmmeb

    root = tmp_path_factory.mktemp("mmmeb")
    write_mmmeb(root / "release", rows_per_file=4, num_candidates=4)
    build_mmmeb(root / "release", root / "built")
    return root / "built"


@pytest.fixture(scope="session")
def released_table_mmmeb(tmp_path_factory) -> Path:
    """MMMEB built by the project's builder from release files holding the texts of ``released_prompts.TEXTS``
    (one query per file, plus a null-text query in English t2i and vqa)."""
    from released_prompts import write_release

    from dataset_builders.mmmeb import build_mmmeb

    root = tmp_path_factory.mktemp("table")
    report = build_mmmeb(write_release(root / "release"), root / "built")
    assert report.rejected == {}  # a null query text is kept (as null), not rejected
    return root / "built"


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The vLLM venv's Python (marker ``vllm`` tests); skipped with the reason when it cannot be built (a failure
    under CI)."""
    from xvlm2vec.export_vllm import VLLM_VERSION
    from xvlm2vec.integrations.vllm_env import ensure_vllm_env

    try:
        return ensure_vllm_env()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"the vLLM {VLLM_VERSION} environment could not be built: {error}")


@pytest.fixture
def demo_runs(monkeypatch) -> list:
    """The `DemoConfig`s `xvlm2vec demo` hands to `run_demo`, recorded instead of run (an empty results.md is
    written so the CLI's printing finds its table)."""
    from xvlm2vec.demo import pipeline

    seen: list = []

    def record(config, output_dir):
        seen.append(config)
        (output_dir / "results.md").write_text("")
        return {"example": "", "targets": {}, "timings_s": {}}

    monkeypatch.setattr(pipeline, "run_demo", record)
    return seen
