"""The user-error type of the command line.

A :class:`UsageError` is a mistake in what the user asked for (a bad argument value, a path that
does not exist, an unknown task or language, an empty selection, a model that would run code it
was not allowed to run). Every verb of ``xvlm2vec`` (and ``train.py``) prints it as one line
``error: ...`` and exits with status 2, before any model is loaded where it can be known then.
Anything else is a crash: its traceback is kept and the status is 1.

It is an ``argparse.ArgumentTypeError`` (what argparse ``type=`` callables raise, so one check
serves both the parser and the verbs; modules below ``xvlm2vec`` raise that stdlib type) and a
``ValueError`` (what library callers catch).
"""

from __future__ import annotations

import argparse


class UsageError(argparse.ArgumentTypeError, ValueError):
    """A user error: printed as one line ``error: ...``, exit status 2. The message names the argument."""


def positive_int(text: str) -> int:
    """An argparse ``type=`` for counts and sizes that must be at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
