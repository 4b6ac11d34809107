"""The wheel is complete: built, installed non-editable into a fresh venv, used from an empty folder.

How the venv gets its dependencies (honestly): this machine installs nothing from the network at test
time, and the dependencies (torch, transformers, ...) live in the checkout's ``.venv``. The fresh venv
(``python -m venv --without-pip``, no ``--system-site-packages``) gets one ``.pth`` file listing the
``.venv``'s site-packages directory: its packages become importable, but the ``.pth`` files inside it are
not processed (only a venv's own site-packages are), so the ``.venv``'s editable install of this
project (an import hook installed by a ``.pth``) is never active. The wheel itself is installed into the
fresh venv by pip (``--no-deps``), console script included. Every command runs from an empty folder
with no ``PYTHONPATH``, and the test asserts where each package was imported from.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # make test-slow (CI runs it after make test): minutes on 2 cores

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("xvlm2vec", "modeling_xvlm2vec", "dataset_builders", "hub_cards")
NOT_SOURCE = shutil.ignore_patterns(
    ".venv",
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "demo_output",
    "outputs",
    "tests",
    "benchmarks",
    ".pytest_cache",
)


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{command} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str], Path]:
    """(the fresh venv's bin folder, the environment to run in, an empty working folder)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"  # a copy, so the build leaves nothing (build/, egg-info) in the checkout
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCE)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(base / "dist"),
            str(source),
        ],
        base,
        dict(os.environ),
    )
    wheel = next((base / "dist").glob("xvlm2vec-*.whl"))
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], base, dict(os.environ))
    purelib = Path(
        _run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], base, {}
        ).strip()
    )
    (purelib / "_checkout_venv_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--quiet",
            "--no-deps",
            str(wheel),
        ],
        base,
        dict(os.environ),
    )
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(HF_HOME=str(base / "hf_home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1")
    empty = base / "empty"
    empty.mkdir()
    return venv / "bin", env, empty


def test_packages_come_from_the_installed_wheel(installed) -> None:
    bin_dir, env, empty = installed
    code = (
        f"import json, importlib; print(json.dumps({{p: importlib.import_module(p).__file__ for p in {PACKAGES!r}}}))"
    )
    where = json.loads(_run([str(bin_dir / "python"), "-c", code], empty, env))
    venv = bin_dir.parent.resolve()
    for package, path in where.items():
        assert Path(path).resolve().is_relative_to(venv), f"{package} imported from {path}, not the installed wheel"
        assert not Path(path).resolve().is_relative_to(ROOT), f"{package} imported from the checkout"


def test_version_train_eval_and_metric_from_an_empty_folder(installed) -> None:
    bin_dir, env, work = installed
    cli = str(bin_dir / "xvlm2vec")
    assert _run([cli, "--version"], work, env).strip() == f"xvlm2vec {_version(bin_dir, env, work)}"

    # a few steps of the shipped tiny recipe, which builds its own tiny model and fixtures' corpus
    out = _run([cli, "train", "--config", "tiny_cpu", "--max_steps", "2", "--output_dir", "student"], work, env)
    assert json.loads(out[out.index("{\n") :])["saved"] == "student"
    assert (work / "student" / "config.json").is_file() and (work / "student" / "model.safetensors").is_file()

    # MMMEB fixtures built and scored with the shipped metric (found inside the package, not in a checkout)
    _run([cli, "fixtures", "mmmeb", "--output-dir", "release", "--rows", "2"], work, env)
    _run([cli, "build", "mmmeb", "--source", "release", "--output-dir", "mmmeb"], work, env)
    _run(
        [
            cli,
            "eval",
            "--model",
            "student",
            "--data",
            "mmmeb",
            "--output-dir",
            "scores",
            "--tasks",
            "xtd_t2i",
            "--languages",
            "en",
            "it",
            "--styles",
            "plain",
            "--no-cache",
        ],
        work,
        env,
    )
    results = json.loads((work / "scores" / "results.json").read_text())
    assert [model["name"] for model in results["models"]] == ["student"]

    metric = (
        "import evaluate, xvlm2vec; m = evaluate.load(xvlm2vec.metric_path()); "
        "print(m.compute(predictions=[[0.1, 0.9, 0.2], [0.8, 0.1, 0.3]], references=[1, 2])['precision@1'])"
    )
    assert float(_run([str(bin_dir / "python"), "-c", metric], work, env)) == 0.5  # first row right, second wrong
    assert sorted(p.name for p in work.iterdir()) == ["mmmeb", "release", "scores", "student"]


def _version(bin_dir: Path, env: dict[str, str], cwd: Path) -> str:
    return _run(
        [str(bin_dir / "python"), "-c", "import importlib.metadata as m; print(m.version('xvlm2vec'))"], cwd, env
    ).strip()
