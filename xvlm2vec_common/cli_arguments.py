"""The argparse ``type=`` checks the verbs share: counts, a local path or a Hub id, language files.

Each raises :class:`~xvlm2vec_common.cli_errors.UsageError` (an ``argparse.ArgumentTypeError``),
so argparse reports it as a usage error and a verb calling it directly reports the same one line.
"""

from __future__ import annotations

import re
from pathlib import Path

from xvlm2vec_common.cli_errors import UsageError

_LOCAL_PREFIXES = ("./", "../", "/", "~", ".\\", "..\\")
#: A Hub repo id of the ``owner/name`` form (what data sets and published models are).
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"invalid int value: {text!r}") from None


def positive_int(text: str) -> int:
    """An argparse ``type=`` for counts and sizes that must be at least 1."""
    value = _integer(text)
    if value < 1:
        raise UsageError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse ``type=`` for limits that may be 0."""
    value = _integer(text)
    if value < 0:
        raise UsageError(f"must be >= 0, got {value}")
    return value


def looks_local(value: str) -> bool:
    """Whether ``value`` can only be a local path (``./x``, ``../x``, ``/x``, ``~``, ``a/b/c``), not a Hub id."""
    return value.startswith(_LOCAL_PREFIXES) or value in (".", "..") or value.count("/") > 1 or "\\" in value


def is_hub_id(value: str | None) -> bool:
    """True for an ``owner/name`` Hub id that is not an existing local path."""
    return bool(value) and HUB_ID.match(value) is not None and not Path(value).exists()


def local_or_hub(value: str, argument: str) -> str:
    """``value`` as an existing local path (``~`` expanded) or a Hub id; a missing local-looking path is a UsageError.

    This is what turns a mistyped folder into "no such file or folder" instead of a Hub repo-id error.
    """
    path = Path(value).expanduser()
    if path.exists():
        return str(path)
    if looks_local(value):
        raise UsageError(f"{argument} {value}: no such file or folder")
    return value


def language_file(text: str) -> Path:
    """``--languages-file``: an existing language file that passes the registry's checks."""
    from modeling_xvlm2vec.languages import load_languages

    path = Path(text)
    if not path.is_file():
        raise UsageError(f"--languages-file {text}: no such file")
    try:
        load_languages(path)
    except ValueError as err:
        raise UsageError(f"--languages-file: {err}") from None
    return path


def language_file_or_new(text: str) -> Path:
    """``--languages-file`` of a verb that writes to it: a valid language file, or a new one in an existing folder."""
    path = Path(text)
    if path.exists():
        return language_file(text)
    if not path.parent.is_dir():
        raise UsageError(f"--languages-file {text}: folder {path.parent} does not exist")
    return path


def distinct(values: list[str], argument: str) -> list[str]:
    """``values`` when none is repeated; a repeated one is a UsageError (it would double rows or scores)."""
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise UsageError(f"{argument}: {', '.join(repeated)} given more than once")
    return values


def language_codes(text: str, argument: str = "--languages") -> list[str]:
    """The language codes of a comma-separated value (``it,pt-BR``); a bad or repeated code is a UsageError."""
    from modeling_xvlm2vec.languages import check_code

    codes = [code.strip() for code in text.split(",") if code.strip()]
    try:
        codes = [check_code(code) for code in codes]
    except ValueError as err:
        raise UsageError(f"{argument}: {err}") from None
    return distinct(codes, argument)


def torch_device(text: str) -> str:
    """An argparse ``type=`` for ``--device``: a torch device this machine has (``cpu``, ``cuda``, ``cuda:1``,
    ``mps``); a GPU that is not there is a UsageError before any model loads."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise UsageError(f"{text!r} is not a torch device (cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            raise UsageError(f"{text}: this machine has {count} CUDA device(s) visible to torch")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"{text}: MPS is not available on this machine")
    return text
