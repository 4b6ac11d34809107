"""Atomic, contained output folders: write into a temporary sibling, rename into place on success.

Every verb that writes a folder (``build``, ``fixtures``, ``eval``, ``convert``, exports) does::

    with atomic_output_dir(output_dir, marker="build_report.json") as staging:
        ...write everything under staging...

Until the block ends without an exception the existing ``output_dir`` is not touched; then the
staging folder takes its place in one step (Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere two
renames) and the old folder is deleted. So a reader sees the previous output as a whole or the new
one as a whole, never a mix (no new shards under an old card, no undeclared old configs). A failed
or killed run leaves the old folder unchanged and, when killed, a ``.<name>.partial-*`` sibling
that can be deleted.

Nothing outside ``output_dir`` is ever deleted, and a folder the tool did not write is never
deleted from: an existing, non-empty ``output_dir`` is replaced only when it holds ``marker`` (a
file every output of that kind has), or when every entry of it is carried over by ``keep``.
"""

from __future__ import annotations

import contextlib
import ctypes
import fnmatch
import glob
import logging
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path

from xvlm2vec_common.cli_errors import UsageError

logger = logging.getLogger(__name__)
PARTIAL_INFIX = ".partial-"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class OutputDirError(UsageError):
    """An output folder that cannot be written safely: a user error (the CLI prints one line, exit 2)."""


def current_umask() -> int:
    """The process's umask (read from ``/proc/self/status`` where it is listed, else set and restored)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_writable(path: str | Path, argument: str) -> Path:
    """Return ``path`` resolved, or raise :class:`OutputDirError` when a folder cannot be written there.

    Refused: ``path`` or one of its parents is a file, or the nearest existing folder is not writable
    (a read-only file system, a folder of another user).
    """
    path = Path(path).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"{argument} {path} is a file, not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputDirError(f"{argument} {path}: {existing} is a file, so no folder can be made there")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputDirError(f"{argument} {path}: {existing} is not writable (read-only or another user's)")
    return path


def _kept(name: str, keep: Collection[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in keep)


def check_output_dir(
    target: str | Path, marker: str, keep: Collection[str] = (), inputs: Iterable[str | Path | None] = ()
) -> Path:
    """Return ``target`` resolved, or raise :class:`OutputDirError` when replacing it could lose data.

    Refused: ``target`` is a file or cannot be written (:func:`check_writable`); ``target`` is, or contains
    outside its ``keep`` entries, one of ``inputs`` (existing local paths only; Hub ids are ignored);
    ``target`` is a non-empty folder without ``marker`` that would lose an entry not matched by the ``keep``
    patterns.
    """
    target = check_writable(target, "--output-dir")
    for item in inputs:
        if item is None or not Path(item).exists():
            continue
        source = Path(item).resolve()
        if source == target or (
            source.is_relative_to(target) and not _kept(source.relative_to(target).parts[0], keep)
        ):
            raise OutputDirError(
                f"--output-dir {target} holds the input {source}, which replacing it would delete; pick another folder"
            )
    if target.is_dir() and not any(target.glob(marker)):
        lost = sorted(entry.name for entry in target.iterdir() if not _kept(entry.name, keep))
        if lost:
            raise OutputDirError(
                f"--output-dir {target} exists and was not written by this command (no {marker}); refusing to replace "
                f"{', '.join(lost[:5])}{' ...' if len(lost) > 5 else ''}: remove it or pick another folder"
            )
    return target


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step with Linux ``renameat2(RENAME_EXCHANGE)``; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: file system without exchange
        return False
    raise OSError(errno, os.strerror(errno), str(a))


def _commit(staging: Path, target: Path, keep: Collection[str]) -> None:
    """Carry the ``keep`` entries over, put ``staging`` in ``target``'s place, delete the old folder."""
    if not target.exists():
        os.rename(staging, target)
        return
    for entry in target.iterdir():
        if _kept(entry.name, keep) and not (staging / entry.name).exists():
            os.rename(entry, staging / entry.name)
    if _exchange(staging, target):
        old = staging  # the exchange left the old folder under the staging name
    else:
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rename(target, old / target.name)
        os.rename(staging, target)
    shutil.rmtree(old)


@contextlib.contextmanager
def atomic_output_dir(
    target: str | Path,
    marker: str,
    keep: Collection[str] = (),
    inputs: Iterable[str | Path | None] = (),
) -> Iterator[Path]:
    """Yield an empty staging folder next to ``target``; on success it replaces ``target`` as a whole.

    ``marker``: glob of a file every output of this kind holds (``build_report.json``,
    ``results.json``, ``config.json``...); an existing folder without one is only replaced when
    nothing of it would be lost. ``keep``: glob patterns of entries of the existing folder carried
    into the new one unless the new one has an entry of that name (e.g. an embedding cache).
    ``inputs``: paths the command reads; a ``target`` equal to or containing one is refused.
    On an exception the staging folder is deleted and ``target`` is left as it was. The new folder gets
    the mode a plain ``mkdir`` would give (the umask applies).
    """
    target = check_output_dir(target, marker, keep, inputs)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in sorted(target.parent.glob(f".{glob.escape(target.name)}{PARTIAL_INFIX}*")):
        logger.warning(
            "%s is left from an interrupted or concurrent run into %s; delete it when no run is going", stale, target
        )
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}{PARTIAL_INFIX}", dir=target.parent))
    os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp's 0700 would become the output's mode
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _commit(staging, target, keep)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to the file ``path`` through a temporary sibling renamed into place, so a
    reader sees the old file or the new one whole; on an exception the sibling is removed. The file gets the
    permissions a plain write would give (the umask applies)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
