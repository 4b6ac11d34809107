"""xVLM2Vec: multilingual vision-language embeddings by self-knowledge distillation."""

from importlib.metadata import PackageNotFoundError, version

from xvlm2vec.resources import accelerate_config_path, metric_path, recipe_path

try:
    __version__ = version("xvlm2vec")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__", "accelerate_config_path", "metric_path", "recipe_path"]
