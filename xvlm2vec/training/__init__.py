"""Self-knowledge distillation of xVLM2Vec: config, trainer, collator, loss terms and teacher cache.

The names below are imported on first use, so that `xvlm2vec.training.step` (and the loss, teacher and
collator modules) can be imported where `datasets` or `trl` are not installed (a bare GPU machine).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ParallelCollator": "collator",
    "SKDConfig": "config",
    "SKDTrainer": "trainer",
    "combine_terms": "losses",
    "distillation_terms": "losses",
    "translation_accuracy": "losses",
    "translation_metrics": "losses",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the public name's module on first access (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
