"""Embed with vLLM's offline ``LLM.embed``; run by the vLLM environment's Python, not the project's.

Usage: ``python vllm_offline_embed.py REQUESTS.json OUTPUT.json``. ``REQUESTS.json`` holds
``{"models": [{"model": DIR, "engine": {LLM keyword arguments}, "inputs": [{"prompt": str, "image": PATH or
null}]}]}``; ``OUTPUT.json`` gets ``{DIR: [embedding, ...]}`` in input order. The models are loaded one after
the other in this one process. It imports vLLM and PIL only (the project is not installed there).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def embed_all(requests: dict) -> dict[str, list[list[float]]]:
    """Each model's embeddings of its inputs, through ``LLM(model, **engine).embed``."""
    from PIL import Image
    from vllm import LLM

    embeddings = {}
    for job in requests["models"]:
        llm = LLM(model=job["model"], **job["engine"])
        prompts = []
        for row in job["inputs"]:
            prompt = {"prompt": row["prompt"]}
            if row.get("image"):
                prompt["multi_modal_data"] = {"image": Image.open(row["image"]).convert("RGB")}
            prompts.append(prompt)
        embeddings[job["model"]] = [list(output.outputs.embedding) for output in llm.embed(prompts)]
        del llm
    return embeddings


def main(argv: list[str]) -> int:
    """Read the requests, embed, write the JSON output."""
    if len(argv) != 2:
        print("usage: vllm_offline_embed.py REQUESTS.json OUTPUT.json", file=sys.stderr)
        return 2
    requests = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    Path(argv[1]).write_text(json.dumps(embed_all(requests)), encoding="utf-8")
    return 0


if __name__ == "__main__":  # vLLM starts worker processes by spawning: the work must not run on import
    sys.exit(main(sys.argv[1:]))
