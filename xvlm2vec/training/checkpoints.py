"""Which checkpoint a run resumes from: a named folder, or the newest *complete* one of ``output_dir``.

transformers' ``get_last_checkpoint`` picks the newest ``checkpoint-N`` folder even when a kill
during its save left it half written. The Trainer writes ``trainer_state.json`` last, so a
checkpoint is complete when that file holds the state of step ``N``. Before any model loads, the
files the Trainer will read back are checked too (:func:`check_checkpoint_files`): safetensors
headers that cover their files, and pickles (optimizer, scheduler, scaler, RNG states) that load
with ``torch.load(weights_only=True)``, i.e. that hold tensors and plain data only; a truncated
file, or a pickle that would run code, is refused by name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from xvlm2vec_common.cli_errors import UsageError, one_line

TRAINER_STATE = "trainer_state.json"
#: ``--resume_from_checkpoint`` values that mean "the newest complete checkpoint of --output_dir".
LAST = ("last", "true")
#: The pickled files of a checkpoint that the Trainer loads when it resumes (all with ``weights_only=True``).
PICKLES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth", "pytorch_model*.bin", "adapter_model.bin")
_STEP = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def is_complete(folder: str | Path) -> bool:
    """Whether ``folder`` (``checkpoint-N``) holds a readable trainer state of step ``N``."""
    folder = Path(folder)
    match = _STEP.match(folder.name)
    try:
        state = json.loads((folder / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and (match is None or state.get("global_step") == int(match.group(1)))


def last_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The complete ``checkpoint-N`` folder of ``output_dir`` with the largest ``N`` (None if there is none)."""
    folder = Path(output_dir)
    found = [(int(m.group(1)), p) for p in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if (m := _STEP.match(p.name))]
    for _, path in sorted(found, reverse=True):
        if path.is_dir() and is_complete(path):
            return path
    return None


def check_checkpoint_files(folder: str | Path, argument: str = "--resume_from_checkpoint") -> None:
    """Refuse (UsageError) a checkpoint whose weights or pickled states are cut or unsafe (see module doc).

    Nothing is unpickled beyond what ``weights_only=True`` allows (tensors, containers, numbers, strings and
    the Trainer's own allow-listed numpy types), and the files are memory-mapped, not read into memory.
    """
    from safetensors import SafetensorError, safe_open
    from transformers.trainer_pt_utils import safe_globals

    folder = Path(folder)
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), "pt") as weights:
                weights.keys()
        except (SafetensorError, OSError) as error:
            raise UsageError(f"{argument} {folder}: {path.name} is cut or unreadable ({error})") from None
    for path in sorted(p for pattern in PICKLES for p in folder.glob(pattern)):
        try:
            with safe_globals():
                torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as error:  # UnpicklingError (unsafe), RuntimeError (cut zip), EOFError, ...
            reason = one_line(error)[:200]
            raise UsageError(
                f"{argument} {folder}: {path.name} is cut, unreadable, or holds objects that would run code when "
                f"unpickled ({type(error).__name__}: {reason}); refusing to load it"
            ) from None


def resolve_resume(value: str | None, output_dir: str | Path) -> str | None:
    """The checkpoint folder to resume from for ``--resume_from_checkpoint value`` (None: start afresh).

    ``last`` (or ``true``) is the newest complete checkpoint of ``output_dir``; a folder must be a
    complete checkpoint. Anything else is a ``UsageError``.
    """
    if value is None or value == "":
        return None
    if value.lower() in LAST:
        found = last_complete_checkpoint(output_dir)
        if found is None:
            raise UsageError(f"--resume_from_checkpoint {value}: no complete checkpoint in --output_dir {output_dir}")
        check_checkpoint_files(found)
        return str(found)
    if not Path(value).is_dir():
        raise UsageError(f"--resume_from_checkpoint {value}: no such folder")
    if not is_complete(value):
        raise UsageError(
            f"--resume_from_checkpoint {value}: the checkpoint is incomplete (no readable {TRAINER_STATE}; "
            f"killed during its save?); use 'last' for the newest complete one"
        )
    check_checkpoint_files(value)
    return str(value)
