"""Old import paths kept for one release: a module's ``__getattr__`` that forwards to the new home with a warning."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any


def forward_moved_names(old: str, *new_homes: ModuleType) -> Callable[[str], Any]:
    """A PEP 562 ``__getattr__`` for module ``old``: a public name of ``new_homes`` is returned with a
    ``DeprecationWarning`` naming its new module; anything else is an ``AttributeError``."""

    def __getattr__(name: str) -> Any:
        for module in new_homes:
            if not name.startswith("_") and hasattr(module, name):
                warnings.warn(
                    f"{old}.{name} moved to {module.__name__}.{name}; the old path goes in the next release",
                    DeprecationWarning,
                    stacklevel=2,
                )
                return getattr(module, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    return __getattr__
