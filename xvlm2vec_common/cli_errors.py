"""The command line's user-error type and the one way every verb reports it.

A :class:`UsageError` is a mistake in what the user asked for (a bad argument value, a path that
does not exist, an unknown task or language, an empty selection, a model that would run code it
was not allowed to run). The ``xvlm2vec`` console script (and ``train.py``) prints it as one line
``error: ...`` and exits with status 2, before any model is loaded where it can be known then;
a file-system error from the user's environment (disk full, read-only, no permission) is printed the
same way; anything else is a crash: its traceback is kept and the status is 1.

It is an ``argparse.ArgumentTypeError`` (what argparse ``type=`` callables raise, so one check
serves the parser and the verbs) and a ``ValueError`` (what library callers catch).
"""

from __future__ import annotations

import argparse
import errno
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


#: File-system errors that come from where the user asked to read or write, not from a bug: disk full or
#: over quota, a read-only file system, no permission, a file where a folder is needed (or the reverse).
ENVIRONMENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR}
)


def environment_cause(error: BaseException | None) -> OSError | None:
    """The :data:`ENVIRONMENT_ERRNOS` error behind ``error`` (itself, or its cause or context, as libraries such as
    ``datasets`` wrap a full disk in their own error), else None."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in ENVIRONMENT_ERRNOS:
            return error
        error = error.__cause__ or error.__context__
    return None


def environment_error(error: OSError) -> str:
    """One line naming what failed and where, for an error of :data:`ENVIRONMENT_ERRNOS`."""
    where = " or ".join(str(name) for name in (error.filename, error.filename2) if name is not None)
    reason = error.strerror or str(error)
    return f"{reason}: {where}" if where else reason


def report_usage_errors(function: Callable[..., int | None], *args: Any) -> int:
    """Run ``function(*args)``; a user error becomes one line ``error: ...`` and status 2, other errors propagate.

    A file-system error of :data:`ENVIRONMENT_ERRNOS` (disk full, read-only) is reported the same way: outputs
    are written atomically, so the failed run replaced nothing.
    """
    try:
        return int(function(*args) or 0)
    except argparse.ArgumentTypeError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:
        cause = environment_cause(error)
        if cause is None:
            raise
        print(f"error: {one_line(environment_error(cause))}", file=sys.stderr)
        return 2
