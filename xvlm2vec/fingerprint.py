"""Content fingerprints of what decides an embedding: weights, configuration, processor, code.

Caches are keyed by these digests, so editing any of them (a weight, ``config.json``, the image
mean in ``processor_config.json``, the tokenizer, the model's source files, the transformers
version) gives a new key instead of a stale hit.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def weights_fingerprint(
    modules: dict[str, torch.nn.Module] | torch.nn.Module,
    extra: Any = None,
    rename: Callable[[str], str | None] | None = None,
) -> str:
    """SHA-256 over every parameter and buffer (name, dtype, shape, bytes) of ``modules`` plus ``extra``.

    ``modules`` is one module or a dict of them (names prefixed by the key). ``extra``
    (JSON-serialisable, e.g. configurations, :func:`processor_state`, :func:`code_state`) covers what
    changes outputs without changing weights. ``rename`` maps a tensor's name to the name it is hashed
    under, or to None to leave it out (the teacher hashes its base weights under peft's wrapping, so a
    PeftModel and the plain model it wraps agree). Weights on the meta device are a ``ValueError``.
    """
    if isinstance(modules, torch.nn.Module):
        modules = {"": modules}
    digest = hashlib.sha256()
    digest.update(json.dumps(extra, sort_keys=True, default=str).encode())
    for prefix, module in sorted(modules.items()):
        named = {}
        for name, tensor in module.state_dict().items():
            key = rename(name) if rename is not None else name
            if key is not None:
                named[f"{prefix}.{key}" if prefix else key] = tensor
        for name, tensor in sorted(named.items()):
            if tensor.device.type == "meta":
                raise ValueError(f"cannot fingerprint {name}: it is on the meta device (weights not loaded)")
            flat = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def processor_state(processor: Any) -> dict[str, Any]:
    """What a processor or tokenizer does to an input: its class, settings and tokenizer model.

    Settings are the processor's serialised configuration (image mean/std, sizes, crops, ...);
    the tokenizer counts by its construction arguments and, for fast tokenizers, the full
    ``tokenizers`` model (vocabulary, merges, normaliser, added tokens).
    """
    if processor is None:
        return {}
    to_json = getattr(processor, "to_json_string", None)
    tokenizer = getattr(processor, "tokenizer", processor)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return {
        "class": f"{type(processor).__module__}.{type(processor).__qualname__}",
        "settings": to_json() if callable(to_json) else repr(processor),
        "tokenizer": json.dumps(getattr(tokenizer, "init_kwargs", {}), sort_keys=True, default=str),
        "tokenizer_model": backend.to_str() if backend is not None else None,
        "padding_side": getattr(tokenizer, "padding_side", None),
    }


def code_state(*objects: Any, distributions: tuple[str, ...] = ("transformers", "torch")) -> dict[str, str]:
    """SHA-256 of the source files that define ``objects``' classes, and the versions of ``distributions``.

    For a class from a package, every ``.py`` file of that package folder counts (a model's
    backbone adapters live beside it); a class of an installed library counts by the library's
    version instead (a package of site-packages is named in ``distributions``).
    """
    state: dict[str, str] = {}
    for name in distributions:
        try:
            state[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            state[name] = "absent"
    for obj in objects:
        module = sys.modules.get(type(obj).__module__)
        root = type(obj).__module__.split(".")[0]
        if module is None or getattr(module, "__file__", None) is None or root in distributions:
            continue
        for path in sorted(Path(module.__file__).parent.glob("*.py")):
            state[f"{root}/{path.name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state
