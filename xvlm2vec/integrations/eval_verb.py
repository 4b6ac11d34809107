"""``xvlm2vec eval`` with its engines: :mod:`xvlm2vec.evaluation.eval`'s verb, whose ``--engine vllm`` embeds
through vLLM (:mod:`xvlm2vec.integrations.vllm_embedder`), which the evaluation library, a layer below, cannot
import.
"""

from __future__ import annotations

import argparse
import subprocess

from xvlm2vec.evaluation import eval as eval_verb
from xvlm2vec_common.cli_errors import UsageError

add_arguments = eval_verb.add_arguments


def vllm_sources(sources: list, args: argparse.Namespace) -> list:
    """The checked xVLM2Vec ``sources`` loaded through vLLM (:class:`~xvlm2vec.integrations.vllm_embedder.
    VLLMEmbedder`), from the vLLM environment (built on first use); one that cannot be built is a UsageError."""
    from xvlm2vec.evaluation.registry import EmbedderSource
    from xvlm2vec.integrations.vllm_embedder import VLLMEmbedder
    from xvlm2vec.integrations.vllm_env import ensure_vllm_env

    try:
        python = ensure_vllm_env()
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        raise UsageError(
            f"--engine vllm: the vLLM environment is unavailable ({eval_verb.first_line(error)})"
        ) from error
    options = {"python": python, "export_root": args.vllm_exports, "engine": args.vllm_engine_args}
    return [EmbedderSource(source.spec, VLLMEmbedder.from_pretrained, source.sources, options) for source in sources]


def run(args: argparse.Namespace) -> int:
    """Run the eval verb on the engine ``--engine`` names."""
    return eval_verb.run(args, vllm_sources if args.engine == "vllm" else None)
