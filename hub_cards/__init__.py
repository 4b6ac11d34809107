"""Hub cards and publishing for xVLM2Vec models, datasets and the MMMEB metric.

- ``hub_cards.model_card.render_model_card``: model card from a model folder, ``results.json``,
  the training recipe and ``trainer_state.json``.
- ``hub_cards.dataset_card.render_dataset_card``: MMMEB / parallel-corpus card from a built folder
  and its build report.
- ``hub_cards.metric_card``: Space metadata, app and requirements for the ``evaluate`` metric.
- ``hub_cards.staging`` / ``hub_cards.checks``: the exact folder to upload, refused when it would
  not load; ``hub_cards.publish``: the ``xvlm2vec publish`` verb.

Submodules are imported on use, so ``xvlm2vec publish --help`` stays fast.
"""
