"""A model argument as a local folder or Hub repo, its ``config.json`` read as JSON, and the code it maps to.

transformers runs a folder's own Python files when its ``config.json`` (or processor / tokenizer
config) has an ``auto_map`` and the caller passes ``trust_remote_code=True``. The project never
passes it unless the user gave ``--trust-remote-code``: the config is read here as plain JSON (no
code imported), the model type is checked against what the command supports, and a folder that
maps to its own code is refused without the flag. xVLM2Vec folders load with the installed
project's classes (registered with the Auto classes); the copy of the code inside them is not
executed. Used by every command that loads a model: translators, students, teachers, embedders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xvlm2vec_common.cli_arguments import local_or_hub
from xvlm2vec_common.cli_errors import UsageError

#: Files whose ``auto_map`` makes transformers import code from the model folder.
CODE_MAPPING_FILES = ("config.json", "processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
XVLM2VEC_MODEL_TYPE = "xvlm2vec"
TRUST_HINT = "pass --trust-remote-code to run it (only for code you have read or trust)"


def model_location(model_name_or_path: str, argument: str) -> str:
    """``model_name_or_path`` as an existing local folder or a valid Hub repo id; anything else is a UsageError."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    source = local_or_hub(model_name_or_path, argument)
    if Path(source).is_dir():
        return source
    if Path(source).exists():
        raise UsageError(f"{argument} {model_name_or_path}: a file, not a model folder")
    try:
        validate_repo_id(source)
    except HFValidationError as error:
        raise UsageError(
            f"{argument} {model_name_or_path}: no such local folder, and not a valid Hub repo id ({error})"
        ) from None
    return source


def read_config(model_name_or_path: str, argument: str, revision: str | None = None) -> dict[str, Any]:
    """``config.json`` of a model folder or Hub repo, read as JSON (no code is imported)."""
    source = model_location(model_name_or_path, argument)
    folder = Path(source)
    if folder.is_dir():
        path = folder / "config.json"
        if not path.is_file():
            raise UsageError(f"{argument} {model_name_or_path}: no config.json in that folder (not a saved model)")
    else:
        path = _hub_config(source, argument, revision)
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"{argument} {model_name_or_path}: config.json is unreadable ({error})") from None
    if not isinstance(config, dict):
        raise UsageError(f"{argument} {model_name_or_path}: config.json is not a JSON object")
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


def check_remote_code(model_name_or_path: str, config: dict[str, Any], argument: str, trust_remote_code: bool) -> bool:
    """The ``trust_remote_code`` to load the model with; a UsageError when its configs map to code not trusted."""
    references = code_references(local_or_hub(model_name_or_path, argument), config)
    if references and not trust_remote_code:
        raise UsageError(
            f"{argument} {model_name_or_path}: model type {config.get('model_type')!r} comes with its own code "
            f"({'; '.join(references)}), which would run when it loads; {TRUST_HINT}"
        )
    return trust_remote_code


def trust_for(model_name_or_path: str, config: dict[str, Any], argument: str, trust_remote_code: bool) -> bool:
    """The ``trust_remote_code`` to load ``model_name_or_path`` with; a UsageError when it would need code not trusted.

    An xVLM2Vec folder always loads with the installed classes (``False``). Another folder whose
    configs map to its own code needs ``--trust-remote-code``.
    """
    if config.get("model_type") == XVLM2VEC_MODEL_TYPE:
        return False
    return check_remote_code(model_name_or_path, config, argument, trust_remote_code)


def check_xvlm2vec_source(
    model_name_or_path: str, argument: str, trust_remote_code: bool = False, revision: str | None = None
) -> tuple[str, str, bool]:
    """(source, model type, trust_remote_code) of an xVLM2Vec folder/repo or supported backbone checkpoint.

    Reads ``config.json`` only: nothing is imported from the folder. A missing path, another model
    type, or code that is not trusted is a UsageError.
    """
    from modeling_xvlm2vec.backbones import supported_backbones

    config = read_config(model_name_or_path, argument, revision)
    model_type = config.get("model_type")
    if model_type != XVLM2VEC_MODEL_TYPE and model_type not in supported_backbones():
        raise UsageError(
            f"{argument} {model_name_or_path}: model type {model_type!r} is neither {XVLM2VEC_MODEL_TYPE} nor a "
            f"supported backbone ({', '.join(supported_backbones())})"
        )
    return (
        local_or_hub(model_name_or_path, argument),
        model_type,
        trust_for(model_name_or_path, config, argument, trust_remote_code),
    )


def load_xvlm2vec_model(
    model_name_or_path: str,
    argument: str,
    trust_remote_code: bool = False,
    convention: str | None = None,
    **load_kwargs: Any,
) -> Any:
    """An ``XVLM2VecModel`` from an xVLM2Vec folder/repo, or wrapped around a supported backbone checkpoint.

    Checked first with :func:`check_xvlm2vec_source`; ``load_kwargs`` (``dtype``, ``revision``,
    ``attn_implementation``) go to ``from_pretrained``. ``convention`` (docs/teachers.md) is the input
    convention a backbone checkpoint is wrapped with (default ``vlm2vec``); an xVLM2Vec folder keeps its own,
    and a different ``convention`` for it is a UsageError.
    """
    from transformers import AutoModel

    from modeling_xvlm2vec import XVLM2VecModel, register_auto_classes
    from modeling_xvlm2vec.conventions import DEFAULT_CONVENTION

    register_auto_classes()  # an xVLM2Vec folder loads with the installed classes, not its own copy of the code

    source, model_type, trust = check_xvlm2vec_source(
        model_name_or_path, argument, trust_remote_code, load_kwargs.get("revision")
    )
    if model_type == XVLM2VEC_MODEL_TYPE:
        model = AutoModel.from_pretrained(source, trust_remote_code=False, **load_kwargs)
        if convention is not None and convention != model.config.convention:
            raise UsageError(
                f"{argument} {model_name_or_path}: the model's convention is {model.config.convention!r}, not "
                f"{convention!r} (--convention applies to backbone checkpoints)"
            )
        return model
    try:
        return XVLM2VecModel.from_backbone(
            source, convention=convention or DEFAULT_CONVENTION, trust_remote_code=trust, **load_kwargs
        )
    except ValueError as error:
        if "convention" not in str(error):
            raise
        raise UsageError(f"--convention: {error}") from error
