"""A model argument as a local folder or Hub repo, its ``config.json`` read as JSON, and the code it maps to.

transformers runs a folder's own Python files when its ``config.json`` (or processor / tokenizer
config) has an ``auto_map`` and the caller passes ``trust_remote_code=True``. The project never
passes it unless the user gave ``--trust-remote-code``: the config is read here as plain JSON (no
code imported) and a folder that maps to its own code is refused without the flag. Used by every
command that loads a model: the translators here, the embedding models in ``xvlm2vec.model_source``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dataset_builders.cli_args import UsageError, local_or_hub

#: Files whose ``auto_map`` makes transformers import code from the model folder.
CODE_MAPPING_FILES = ("config.json", "processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
TRUST_HINT = "pass --trust-remote-code to run it (only for code you have read or trust)"


def model_location(value: str, argument: str) -> str:
    """``value`` as an existing local folder or a valid Hub repo id; anything else is a UsageError."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    source = local_or_hub(value, argument)
    if Path(source).is_dir():
        return source
    if Path(source).exists():
        raise UsageError(f"{argument} {value}: a file, not a model folder")
    try:
        validate_repo_id(source)
    except HFValidationError as error:
        raise UsageError(f"{argument} {value}: no such local folder, and not a valid Hub repo id ({error})") from None
    return source


def read_config(value: str, argument: str, revision: str | None = None) -> dict[str, Any]:
    """``config.json`` of a model folder or Hub repo, read as JSON (no code is imported)."""
    source = model_location(value, argument)
    folder = Path(source)
    if folder.is_dir():
        path = folder / "config.json"
        if not path.is_file():
            raise UsageError(f"{argument} {value}: no config.json in that folder (not a saved model)")
    else:
        path = _hub_config(source, argument, revision)
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"{argument} {value}: config.json is unreadable ({error})") from None
    if not isinstance(config, dict):
        raise UsageError(f"{argument} {value}: config.json is not a JSON object")
    return config


def _hub_config(repo_id: str, argument: str, revision: str | None) -> str:
    """Download (or find in the cache) ``config.json`` of Hub repo ``repo_id``."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return hf_hub_download(repo_id, "config.json", revision=revision)
    except (RepositoryNotFoundError, EntryNotFoundError, LocalEntryNotFoundError) as error:
        raise UsageError(
            f"{argument} {repo_id}: no such local folder, and no Hub model with a config.json there "
            f"({type(error).__name__}; offline or a typo?)"
        ) from None


def code_references(source: str, config: dict[str, Any]) -> list[str]:
    """The ``auto_map`` entries of ``config`` and of the folder's processor / tokenizer configs."""
    references = []
    configs = [("config.json", config)]
    folder = Path(source)
    for name in CODE_MAPPING_FILES[1:]:
        if folder.is_dir() and (folder / name).is_file():
            try:
                configs.append((name, json.loads((folder / name).read_text(encoding="utf-8"))))
            except ValueError:
                continue
    for name, values in configs:
        mapping = values.get("auto_map") if isinstance(values, dict) else None
        nested = (
            values.get("image_processor", {}).get("auto_map")
            if isinstance(values.get("image_processor"), dict)
            else None
        )
        for auto_map in (mapping, nested):
            if isinstance(auto_map, dict):
                for auto_class, target in auto_map.items():
                    references.append(f"{name}: {auto_class} -> {target}")
    return references


def check_remote_code(value: str, config: dict[str, Any], argument: str, trust_remote_code: bool) -> bool:
    """The ``trust_remote_code`` to load ``value`` with; a UsageError when its configs map to code not trusted."""
    references = code_references(local_or_hub(value, argument), config)
    if references and not trust_remote_code:
        raise UsageError(
            f"{argument} {value}: model type {config.get('model_type')!r} comes with its own code "
            f"({'; '.join(references)}), which would run when it loads; {TRUST_HINT}"
        )
    return trust_remote_code
