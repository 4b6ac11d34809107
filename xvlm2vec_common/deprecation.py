"""Old names kept for one release, with a warning: import paths forwarded to their new home, renamed config fields."""

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


def move_renamed_field(config: Any, old: str, new: str, stacklevel: int = 3) -> None:
    """Move a value given under ``config``'s old field name ``old`` to ``new`` with a ``FutureWarning`` and set
    ``old`` back to None; ``ValueError`` when both are given (both fields default to None). ``stacklevel`` as
    ``warnings.warn``'s, counted from this function (3: the caller of its caller, e.g. a ``__post_init__``'s)."""
    value = getattr(config, old)
    if value is None:
        return
    if getattr(config, new) is not None:
        raise ValueError(f"{old} ({value!r}) is the old name of {new} ({getattr(config, new)!r}): give {new} only")
    warnings.warn(
        f"{old} is renamed {new}; the old name goes in the next release", FutureWarning, stacklevel=stacklevel
    )
    setattr(config, new, value)
    setattr(config, old, None)
