"""Safe reading of release files: JSONL lines and images from a folder or a zip archive.

Nothing here ever reads or writes outside the data root: relative paths with ``..``, absolute
paths and archive members that would escape their folder (zip-slip) are refused with
:class:`UnsafePathError`. Bad lines and bad images raise :class:`RowError` with a short
``reason`` that builders count in their build report.
"""

from __future__ import annotations

import io
import json
import posixpath
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError


class RowError(ValueError):
    """A row that cannot be used; ``reason`` is the counted rejection reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class UnsafePathError(RowError):
    """A path that is absolute, contains ``..`` or otherwise leaves the data root."""

    def __init__(self, path: str) -> None:
        super().__init__("unsafe_path", f"refusing path outside the data root: {path!r}")


def check_relative_path(path: str) -> str:
    """Return ``path`` normalised to POSIX form, or raise :class:`UnsafePathError`.

    Refused: empty paths, absolute paths (``/x``, ``C:\\x``, ``\\\\server``), and any ``..``
    component, before or after normalisation.
    """
    if not isinstance(path, str) or not path.strip():
        raise RowError("missing_image", f"empty image path: {path!r}")
    posix = path.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise UnsafePathError(path)
    parts = PurePosixPath(posix).parts
    if any(part == ".." for part in parts):
        raise UnsafePathError(path)
    normalised = posixpath.normpath(posix)
    if normalised.startswith("..") or normalised == ".":
        raise UnsafePathError(path)
    return normalised


@dataclass(frozen=True)
class JsonlLine:
    """One parsed JSONL line with its 1-based line number (``record`` is a dict)."""

    line_no: int
    record: dict


def iter_jsonl(path: Path) -> Iterator[JsonlLine | RowError]:
    """Yield each line of ``path`` parsed, or a :class:`RowError` naming the file and line.

    Reasons: ``invalid_utf8``, ``invalid_json`` (includes a truncated last line), ``not_an_object``.
    Whitespace-only lines hold no row and are skipped.
    """
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield RowError("invalid_utf8", f"{where}: invalid UTF-8 ({err.reason})")
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                yield RowError("invalid_json", f"{where}: invalid or truncated JSON ({err.msg})")
                continue
            if not isinstance(record, dict):
                yield RowError("not_an_object", f"{where}: expected a JSON object")
                continue
            yield JsonlLine(line_no, record)


class ImageStore:
    """Read image bytes by relative path from a folder or a zip archive, never outside it.

    Members of a zip whose names are absolute or contain ``..`` are listed in
    ``unsafe_members`` and are never read.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self._zip: zipfile.ZipFile | None = None
        self._members: dict[str, str] = {}
        self.unsafe_members: list[str] = []
        if self.root.is_file():
            if not zipfile.is_zipfile(self.root):
                raise ValueError(f"image source {self.root} is neither a folder nor a zip archive")
            self._zip = zipfile.ZipFile(self.root)
            for name in self._zip.namelist():
                if name.endswith("/"):
                    continue
                try:
                    self._members[check_relative_path(name)] = name
                except RowError:
                    self.unsafe_members.append(name)
        elif not self.root.is_dir():
            raise FileNotFoundError(f"image source {self.root} does not exist")

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_zip"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.root.is_file():
            self._zip = zipfile.ZipFile(self.root)

    def read_bytes(self, relpath: str) -> bytes:
        """Return the bytes at ``relpath``; raise :class:`RowError` (``missing_image``/``unsafe_path``)."""
        rel = check_relative_path(relpath)
        if self._zip is not None:
            member = self._members.get(rel)
            if member is None:
                raise RowError("missing_image", f"image {relpath!r} not found in archive {self.root}")
            return self._zip.read(member)
        target = (self.root / rel).resolve()
        if not target.is_relative_to(self.root):  # symlinks pointing outside the root
            raise UnsafePathError(relpath)
        if not target.is_file():
            raise RowError("missing_image", f"image {relpath!r} not found under {self.root}")
        return target.read_bytes()

    def read_image(self, relpath: str) -> dict:
        """Return ``{"bytes", "path"}`` for a decodable image, else raise ``RowError('corrupt_image')``."""
        data = self.read_bytes(relpath)
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise RowError("corrupt_image", f"image {relpath!r} cannot be decoded: {err}") from None
        return {"bytes": data, "path": PurePosixPath(relpath).name}
