"""Where a model argument points, and whether loading it may run code that came with it.

transformers runs a folder's own Python files when its ``config.json`` (or processor / tokenizer
config) has an ``auto_map`` and the caller passes ``trust_remote_code=True``. The project never
passes it unless the user gave ``--trust-remote-code``: the model type is read from
``config.json`` as plain JSON first (no code imported), checked against what the command
supports, and a folder that maps to its own code is refused without the flag. xVLM2Vec folders
load with the installed project's classes (registered with the Auto classes); the copy of the
code inside them is not executed.
"""

from __future__ import annotations

from typing import Any

from dataset_builders.cli_args import UsageError, local_or_hub
from dataset_builders.model_folder import check_remote_code, read_config

XVLM2VEC_MODEL_TYPE = "xvlm2vec"


def trust_for(value: str, config: dict[str, Any], argument: str, trust_remote_code: bool) -> bool:
    """The ``trust_remote_code`` to load ``value`` with; a UsageError when it would need code not trusted.

    An xVLM2Vec folder always loads with the installed classes (``False``). Another folder whose
    configs map to its own code needs ``--trust-remote-code``.
    """
    if config.get("model_type") == XVLM2VEC_MODEL_TYPE:
        return False
    return check_remote_code(value, config, argument, trust_remote_code)


def check_xvlm2vec_source(
    value: str, argument: str, trust_remote_code: bool = False, revision: str | None = None
) -> tuple[str, str, bool]:
    """(source, model type, trust_remote_code) of an xVLM2Vec folder/repo or supported backbone checkpoint.

    Reads ``config.json`` only: nothing is imported from the folder. A missing path, another model
    type, or code that is not trusted is a UsageError.
    """
    from modeling_xvlm2vec.backbones import supported_backbones

    config = read_config(value, argument, revision)
    model_type = config.get("model_type")
    if model_type != XVLM2VEC_MODEL_TYPE and model_type not in supported_backbones():
        raise UsageError(
            f"{argument} {value}: model type {model_type!r} is neither {XVLM2VEC_MODEL_TYPE} nor a supported "
            f"backbone ({', '.join(supported_backbones())})"
        )
    return local_or_hub(value, argument), model_type, trust_for(value, config, argument, trust_remote_code)


def load_xvlm2vec_model(value: str, argument: str, trust_remote_code: bool = False, **load_kwargs: Any) -> Any:
    """An ``XVLM2VecModel`` from an xVLM2Vec folder/repo, or wrapped around a supported backbone checkpoint.

    Checked first with :func:`check_xvlm2vec_source`; ``load_kwargs`` (``dtype``, ``revision``,
    ``attn_implementation``) go to ``from_pretrained``.
    """
    from transformers import AutoModel

    from modeling_xvlm2vec import XVLM2VecModel

    source, model_type, trust = check_xvlm2vec_source(value, argument, trust_remote_code, load_kwargs.get("revision"))
    if model_type == XVLM2VEC_MODEL_TYPE:
        return AutoModel.from_pretrained(source, trust_remote_code=False, **load_kwargs)
    return XVLM2VecModel.from_backbone(source, trust_remote_code=trust, **load_kwargs)
