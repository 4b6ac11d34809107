"""xVLM2Vec: multilingual vision-language embeddings by self-knowledge distillation."""

__version__ = "0.1.0"
