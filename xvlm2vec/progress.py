"""Progress bars on a terminal only: one switch for tqdm, ``datasets``, ``huggingface_hub`` and the Trainer.

``xvlm2vec`` commands call :func:`configure_progress` once: bars show when stderr is a terminal
(tqdm's ``disable=None`` rule) or with ``--progress``; otherwise every library's bars are switched
off and long work reports one log line per stage. The switches are also set in the environment
(``TQDM_DISABLE``, ``HF_DATASETS_DISABLE_PROGRESS_BARS``, ``HF_HUB_DISABLE_PROGRESS_BARS``) so that
child processes (``accelerate launch``, the demo's reload) follow the same rule.
"""

from __future__ import annotations

import os
import sys

_ENV_SWITCHES = ("TQDM_DISABLE", "HF_DATASETS_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS")
_enabled: bool | None = None


def progress_enabled() -> bool:
    """Whether bars show: as configured, else as the environment says, else when stderr is a terminal."""
    if _enabled is not None:
        return _enabled
    if os.environ.get("TQDM_DISABLE") == "1":
        return False
    return sys.stderr.isatty()


def bar_disabled(main_process: bool = True) -> bool:
    """The ``disable=`` value for the project's own tqdm bars (always off on non-main processes)."""
    return not (main_process and progress_enabled())


def configure_progress(force: bool = False) -> bool:
    """Turn every library's progress bars on (terminal, or ``force``) or off; return whether they are on."""
    global _enabled
    _enabled = bool(force or sys.stderr.isatty())
    for name in _ENV_SWITCHES:
        if _enabled:
            os.environ.pop(name, None)
        else:
            os.environ[name] = "1"
    # libraries already imported read their switch at import time: set it on them too
    if "datasets" in sys.modules:
        import datasets

        datasets.enable_progress_bars() if _enabled else datasets.disable_progress_bars()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

        enable_progress_bars() if _enabled else disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.enable_progress_bar() if _enabled else hf_logging.disable_progress_bar()
    return _enabled
