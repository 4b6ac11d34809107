"""What the benchmark scripts share: writing their figures to ``--output``."""

from __future__ import annotations

import json
from pathlib import Path

from xvlm2vec_common.safe_outputs import write_text_atomic


def save_figures(figures: dict, output: Path | None) -> dict:
    """Write ``figures`` as indented JSON to ``output`` (atomically; nothing when ``None``) and return them."""
    if output is not None:
        write_text_atomic(output, json.dumps(figures, indent=2, default=str) + "\n")
    return figures
