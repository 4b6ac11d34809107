"""Self-knowledge distillation of xVLM2Vec: config, trainer, collator, loss and objectives, teacher cache.

Where things are: `script.py` the entry point (`main`), `trainer.py` the trainer (builds student, adapters
and teacher through `models.py`, merges on save), `loss.py` one batch's loss (teacher and student
embeddings, then an objective of `objectives.py`), `collator.py` batches and bad rows, `teacher.py` the
teacher at run time, `teacher_cache.py` cached teacher embeddings, `metrics.py` evaluation metrics.

The names below are imported on first use, so that `xvlm2vec.training.loss` (and the objectives, teacher and
collator modules) can be imported where `datasets` or `trl` are not installed (a bare GPU machine).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ParallelCollator": "collator",
    "SKDConfig": "config",
    "SKDTrainer": "trainer",
    "DistillationLoss": "loss",
    "combine_terms": "objectives",
    "distillation_terms": "objectives",
    "translation_accuracy": "metrics",
    "translation_metrics": "metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the public name's module on first access (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
