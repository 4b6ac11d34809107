"""Self-knowledge distillation of xVLM2Vec: config, trainer, collator, loss terms and teacher cache."""

from .collator import ParallelCollator
from .config import SKDConfig
from .losses import combine_terms, distillation_terms, translation_accuracy, translation_metrics
from .trainer import SKDTrainer

__all__ = [
    "ParallelCollator",
    "SKDConfig",
    "SKDTrainer",
    "combine_terms",
    "distillation_terms",
    "translation_accuracy",
    "translation_metrics",
]
