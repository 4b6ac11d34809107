"""The command line's user-error type and the value checks the verbs share.

A :class:`UsageError` is a mistake in what the user asked for (a bad argument value, a path that
does not exist, an unknown task or language, an empty selection, a model that would run code it
was not allowed to run). The ``xvlm2vec`` console script (and ``train.py``) prints it as one line
``error: ...`` and exits with status 2, before any model is loaded where it can be known then;
anything else is a crash: its traceback is kept and the status is 1 (``xvlm2vec/cli.py``).

It is an ``argparse.ArgumentTypeError`` (what argparse ``type=`` callables raise, so one check
serves the parser and the verbs) and a ``ValueError`` (what library callers catch). It lives at
the lowest layer with verbs so every package can raise it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

_LOCAL_PREFIXES = ("./", "../", "/", "~", ".\\", "..\\")


class UsageError(argparse.ArgumentTypeError, ValueError):
    """A user error: printed as one line ``error: ...``, exit status 2. The message names the argument."""


def one_line(message: object) -> str:
    """``message`` as a single line (newlines folded into spaces)."""
    return " ".join(str(message).split())


def exit_usage_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """What every parser's ``error`` does: print one line ``error: <prog>: message`` and exit 2."""
    parser.exit(2, f"error: {parser.prog}: {one_line(message)} (see {parser.prog} --help)\n")


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
