"""vLLM offline engines run from the vLLM environment (:mod:`~xvlm2vec.integrations.vllm_env`), driven from here.

:class:`VLLMEngines` starts one ``vllm_worker.py serve`` process per GPU that this process sees
(``CUDA_VISIBLE_DEVICES`` set to that one GPU: data parallel, each engine a full copy of the model), or one
engine on a machine without a GPU. :meth:`VLLMEngines.embed` splits a batch of rows into one contiguous share
per engine, has them embedded at the same time and returns the vectors in input order. Requests and answers
are JSON lines, images PNG files, embeddings ``.npy`` files read without pickle.
"""

from __future__ import annotations

import json
import os
import subprocess
import weakref
from pathlib import Path

import numpy as np

WORKER = Path(__file__).with_name("vllm_worker.py")
#: Set in every engine's environment: the engine core runs in the worker process (no extra process per engine).
ENGINE_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "TOKENIZERS_PARALLELISM": "false"}


def engine_keywords(arguments: list[str]) -> dict:
    """Command-line engine arguments (``--max-model-len 2048``, ``--enforce-eager``) as ``LLM`` keywords."""
    keywords, index = {}, 0
    while index < len(arguments):
        name = arguments[index].removeprefix("--").replace("-", "_")
        value = arguments[index + 1] if index + 1 < len(arguments) else None
        if value is None or value.startswith("--"):
            keywords[name], index = True, index + 1
        else:
            keywords[name], index = (int(value) if value.isdigit() else value), index + 2
    return keywords


def visible_gpus() -> list[str]:
    """The GPUs (``CUDA_VISIBLE_DEVICES`` entries, else indices) this process sees; empty without CUDA."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = [entry for entry in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if entry.strip()]
    return listed[:count] if len(listed) >= count else [str(index) for index in range(count)]


def _stop(processes: list[subprocess.Popen]) -> None:
    """Close the engines' input (they exit), kill any still running after a minute."""
    for process in processes:
        if process.stdin and not process.stdin.closed:
            process.stdin.close()
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class VLLMEngines:
    """One vLLM engine per visible GPU (one on CPU), serving the exported folder ``model`` with ``engine``
    (``LLM`` keyword arguments), run by ``python`` (the vLLM environment's); logs go under ``work_dir``."""

    def __init__(self, python: Path, model: str | Path, engine: dict, work_dir: Path) -> None:
        self.work_dir = Path(work_dir)
        self.processes: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self._requests = 0
        devices = visible_gpus() or [None]
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        env.update(ENGINE_ENV)
        self._finalizer = weakref.finalize(self, _stop, self.processes)
        for index, device in enumerate(devices):
            engine_env = dict(env) if device is None else {**env, "CUDA_VISIBLE_DEVICES": device}
            self.logs.append(self.work_dir / f"engine{index}.log")
            with open(self.logs[-1], "w", encoding="utf-8") as log:
                self.processes.append(
                    subprocess.Popen(
                        [str(python), str(WORKER), "serve"],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=log,
                        env=engine_env,
                        text=True,
                    )
                )
        for process in self.processes:
            self._send(process, {"model": str(model), "engine": engine})
        for index in range(len(self.processes)):
            self._answer(index)

    def _send(self, process: subprocess.Popen, request: dict) -> None:
        """Write one request line."""
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()

    def _answer(self, index: int) -> dict:
        """The next answer of engine ``index``; ``RuntimeError`` with its log's end when it exits instead."""
        line = self.processes[index].stdout.readline()
        if not line:
            self.processes[index].wait()
            tail = self.logs[index].read_text(encoding="utf-8", errors="replace")[-4000:]
            raise RuntimeError(
                f"vLLM engine {index} exited ({self.processes[index].returncode}); log {self.logs[index]}:\n{tail}"
            )
        return json.loads(line)

    def embed(self, rows: list[dict]) -> np.ndarray:
        """Embeddings (float32 [N, D], input order) of ``{"prompt", "image"}`` rows, shared among the engines."""
        count = len(self.processes)
        share = -(-len(rows) // count)
        jobs = []
        for index in range(count):
            part = rows[index * share : (index + 1) * share]
            if not part:
                continue
            self._requests += 1
            output = self.work_dir / f"embeddings{self._requests}.npy"
            self._send(self.processes[index], {"inputs": part, "output": str(output)})
            jobs.append((index, output))
        chunks = []
        for index, output in jobs:
            self._answer(index)
            chunks.append(np.load(output, allow_pickle=False))
            output.unlink()
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def close(self) -> None:
        """Stop the engines."""
        self._finalizer()


__all__ = ["ENGINE_ENV", "VLLMEngines", "engine_keywords", "visible_gpus"]
