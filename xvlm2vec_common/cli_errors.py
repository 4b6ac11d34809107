"""The command line's user-error type and the one way every verb reports it.

A :class:`UsageError` is a mistake in what the user asked for (a bad argument value, a path that
does not exist, an unknown task or language, an empty selection, a model that would run code it
was not allowed to run). The ``xvlm2vec`` console script (and ``train.py``) prints it as one line
``error: ...`` and exits with status 2, before any model is loaded where it can be known then;
anything else is a crash: its traceback is kept and the status is 1.

It is an ``argparse.ArgumentTypeError`` (what argparse ``type=`` callables raise, so one check
serves the parser and the verbs) and a ``ValueError`` (what library callers catch).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn


class UsageError(argparse.ArgumentTypeError, ValueError):
    """A user error: printed as one line ``error: ...``, exit status 2. The message names the argument."""


def one_line(message: object) -> str:
    """``message`` as a single line (newlines and runs of blanks folded into one space); the one way to shorten."""
    return " ".join(str(message).split())


def exit_usage_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """What every parser's ``error`` does: print one line ``error: <prog>: message`` and exit 2."""
    parser.exit(2, f"error: {parser.prog}: {one_line(message)} (see {parser.prog} --help)\n")


class OneLineErrorParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line ``error: ...`` (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        """Print ``error: <prog>: message`` and exit 2."""
        exit_usage_error(self, message)


def report_usage_errors(function: Callable[..., int | None], *args: Any) -> int:
    """Run ``function(*args)``; a user error becomes one line ``error: ...`` and status 2, other errors propagate."""
    try:
        return int(function(*args) or 0)
    except argparse.ArgumentTypeError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
