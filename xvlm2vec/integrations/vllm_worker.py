"""Embed with vLLM's offline engine (``LLM.embed``); run by the vLLM environment's Python, not the project's.

It imports vLLM, PIL and numpy only (the project is not installed in that environment), and is run by path:

- ``python vllm_worker.py embed REQUESTS.json OUTPUT.json``: ``REQUESTS.json`` holds ``{"models": [{"model":
  DIR, "engine": {LLM keyword arguments}, "inputs": [ROW, ...]}]}``; ``OUTPUT.json`` gets ``{DIR: [embedding,
  ...]}`` in input order. The models are loaded one after the other in this one process.
- ``python vllm_worker.py serve``: one engine that embeds batches on request (``xvlm2vec eval --engine vllm``,
  :mod:`xvlm2vec.integrations.vllm_engine`). Protocol, one JSON object a line: the first line read is ``{"model":
  DIR, "engine": {...}}``, answered ``{"ready": true}`` once the engine is built; each later line ``{"inputs":
  [ROW, ...], "output": PATH}`` is answered ``{"done": PATH}`` after the embeddings (float32 [N, D], input order)
  are written to ``PATH`` with ``numpy.save`` (no pickle); an end of input ends the worker. The answers go to
  the original standard output, which is then redirected to standard error (vLLM logs to standard output).

A ROW is ``{"prompt": str, "image": PATH or null}``: the exact prompt string and an image file (PNG: the same
pixels the project's own engine gets), converted to RGB as the project's processor does.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def engine_inputs(rows: list[dict]) -> list[dict]:
    """vLLM prompts of the rows: the prompt text, with the image (RGB) as multi-modal data when there is one."""
    from PIL import Image

    prompts = []
    for row in rows:
        prompt = {"prompt": row["prompt"]}
        if row.get("image"):
            with Image.open(row["image"]) as image:
                prompt["multi_modal_data"] = {"image": image.convert("RGB")}
        prompts.append(prompt)
    return prompts


def embed_rows(llm, rows: list[dict]) -> list[list[float]]:
    """``llm.embed`` of the rows, in input order."""
    return [list(output.outputs.embedding) for output in llm.embed(engine_inputs(rows), use_tqdm=False)]


def embed_all(requests: dict) -> dict[str, list[list[float]]]:
    """Each model's embeddings of its inputs, through ``LLM(model, **engine).embed``."""
    from vllm import LLM

    embeddings = {}
    for job in requests["models"]:
        llm = LLM(model=job["model"], **job["engine"])
        embeddings[job["model"]] = embed_rows(llm, job["inputs"])
        del llm
    return embeddings


def serve(requests, answers) -> None:
    """Build the engine the first request names, then embed each later request into its ``.npy`` file."""
    import numpy as np
    from vllm import LLM

    setup = json.loads(requests.readline())
    llm = LLM(model=setup["model"], **setup["engine"])
    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    for line in requests:
        request = json.loads(line)
        vectors = np.asarray(embed_rows(llm, request["inputs"]), dtype=np.float32)
        temporary = request["output"] + ".part.npy"
        np.save(temporary, vectors, allow_pickle=False)
        os.replace(temporary, request["output"])
        answers.write(json.dumps({"done": request["output"]}) + "\n")
        answers.flush()


def main(argv: list[str]) -> int:
    """``embed REQUESTS.json OUTPUT.json`` or ``serve`` (see the module docstring)."""
    if argv[:1] == ["embed"] and len(argv) == 3:
        requests = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
        Path(argv[2]).write_text(json.dumps(embed_all(requests)), encoding="utf-8")
        return 0
    if argv == ["serve"]:
        answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
        sys.stdout.flush()
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        serve(sys.stdin, answers)
        return 0
    print("usage: vllm_worker.py embed REQUESTS.json OUTPUT.json | vllm_worker.py serve", file=sys.stderr)
    return 2


if __name__ == "__main__":  # vLLM starts worker processes by spawning: the work must not run on import
    sys.exit(main(sys.argv[1:]))
