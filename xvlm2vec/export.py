"""``xvlm2vec export {vllm,sentence-transformers} FOLDER --output-dir DIR``: an xVLM2Vec folder for another tool.

- ``vllm``: the backbone's native layout with the pooling declared (:mod:`xvlm2vec.export_vllm`).
- ``sentence-transformers``: the folder re-saved by the current code, so it carries what
  ``SentenceTransformer(folder, trust_remote_code=True)`` needs (``modules.json``, the named prompts,
  ``sentence_xvlm2vec.py``). Folders saved by this version already do; this is for older ones. The
  model card is not copied (render it again with ``xvlm2vec publish``).

Both load the model with the project's own classes: no code from the input folder runs. The output
folder is written atomically.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from xvlm2vec.export_vllm import export_vllm, load_model
from xvlm2vec_common.safe_outputs import atomic_output_dir

TARGETS = ("vllm", "sentence-transformers")


def export_sentence_transformers(folder: str | Path, output_dir: str | Path) -> Path:
    """Re-save the xVLM2Vec folder into ``output_dir`` with the sentence-transformers files; returns it."""
    folder = Path(folder)
    model = load_model(folder)
    with atomic_output_dir(output_dir, "modules.json", inputs=(folder,)) as staging:
        model.save_pretrained(staging)
    return Path(output_dir)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``xvlm2vec export``."""
    parser.add_argument(
        "target",
        choices=TARGETS,
        help="vllm: the backbone's native layout; sentence-transformers: re-save with its files",
    )
    parser.add_argument("folder", type=Path, help="saved xVLM2Vec model folder")
    parser.add_argument("--output-dir", required=True, type=Path, help="folder to write the export to")


def run(args: argparse.Namespace) -> int:
    """Export and print what was written as JSON (for vllm: the report with the ``vllm serve`` command)."""
    if args.target == "vllm":
        print(json.dumps(asdict(export_vllm(args.folder, args.output_dir)), indent=2))
    else:
        output = export_sentence_transformers(args.folder, args.output_dir)
        print(
            json.dumps(
                {
                    "output_dir": str(output),
                    "load_with": f"SentenceTransformer({str(output)!r}, trust_remote_code=True)",
                }
            )
        )
    return 0


__all__ = ["TARGETS", "export_sentence_transformers"]
