"""MMMEB evaluation: embedders (XVLM2Vec and dual-encoder baselines), the cached, batched,
distributed runner, and the results outputs (JSON, markdown, PNG, model-index)."""
