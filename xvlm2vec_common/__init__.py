"""What every command shares, below every other project package except the model's own code.

* :mod:`.cli_errors`: the user-error type (:class:`~.cli_errors.UsageError`), the one way to
  shorten a message to one line, and how a parser and a verb report it (``error: ...``, status 2).
* :mod:`.cli_arguments`: the shared argparse ``type=`` checks (counts, local path or Hub id,
  language files).
* :mod:`.safe_inputs`: reading untrusted release files (JSONL lines, images from a folder or zip).
* :mod:`.safe_outputs`: atomic output folders and files.
* :mod:`.model_folder`: a model argument checked from its ``config.json`` (read as JSON) before
  anything loads, and whether it may run code that came with it.
* :mod:`.results_document`: the ``results.json`` document (schema, averages, tables, ``model-index``).
"""
