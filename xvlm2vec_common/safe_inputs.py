"""Safe reading of release files: JSONL lines and images from a folder or a zip archive.

Nothing here ever reads or writes outside the data root: relative paths with ``..``, absolute
paths and archive members that would escape their folder (zip-slip) are refused with
:class:`UnsafePathError`. Bad lines and bad images raise :class:`RowError` with a short
``reason`` that builders count in their build report: nothing a row holds (an image id with a NUL
byte or a 300-byte name, a lone surrogate, a decompression bomb, a truncated image) may raise
anything else. :class:`RowError` and the checks every later verb relies on (text length, aspect ratio,
image tags) live in :mod:`xvlm2vec_common.row_checks`.

Images are decoded in full once per path (JPEG at reduced scale, which still reads every byte)
and refused above :data:`MAX_IMAGE_PIXELS` before any pixel is decoded.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image

from xvlm2vec_common.row_checks import RowError, image_shape_problem

MAX_IMAGE_PIXELS = 89_478_485
"""Largest image accepted, in pixels (PIL's default bomb limit, about 9459 x 9459); larger is ``image_too_large``."""
MAX_IMAGE_BYTES = 256 * 2**20
"""Largest image file (or zip member, uncompressed) read, in bytes; larger is ``image_too_large`` and is never read."""
MAX_NAME_BYTES = 255
"""Longest path component, in UTF-8 bytes (the usual file-system limit); longer is ``name_too_long``."""
MAX_PATH_BYTES = 4096


class UnsafePathError(RowError):
    """A path that is absolute, contains ``..`` or otherwise leaves the data root."""

    def __init__(self, path: str) -> None:
        super().__init__("unsafe_path", f"refusing path outside the data root: {path!r}")


def check_relative_path(path: str) -> str:
    """Return ``path`` normalised to POSIX form, or raise :class:`UnsafePathError`.

    Refused: empty paths, absolute paths (``/x``, ``C:\\x``, ``\\\\server``), and any ``..``
    component, before or after normalisation (``unsafe_path``); control characters such as NUL
    (``invalid_image_id``); a component over :data:`MAX_NAME_BYTES` bytes (``name_too_long``).
    """
    if not isinstance(path, str) or not path.strip():
        raise RowError("missing_image", f"empty image path: {path!r}")
    if any(ord(char) < 32 or ord(char) == 127 for char in path):
        raise RowError("invalid_image_id", f"image path {path!r} holds a control character")
    encoded = path.encode("utf-8", "surrogatepass")
    if len(encoded) > MAX_PATH_BYTES or any(
        len(part) > MAX_NAME_BYTES for part in encoded.replace(b"\\", b"/").split(b"/")
    ):
        raise RowError("name_too_long", f"image path {path[:60]!r}... has a name over {MAX_NAME_BYTES} bytes")
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

    Reasons: ``invalid_utf8``, ``invalid_json`` (includes a truncated last line), ``not_an_object``,
    ``invalid_unicode`` (a ``\\ud800``-style escape leaving a lone surrogate, which no file or
    parquet column can hold). Whitespace-only lines hold no row and are skipped.
    """
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield RowError("invalid_utf8", f"{where}: invalid UTF-8 ({err.reason})", line_no)
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                yield RowError("invalid_json", f"{where}: invalid or truncated JSON ({err.msg})", line_no)
                continue
            if not isinstance(record, dict):
                yield RowError("not_an_object", f"{where}: expected a JSON object", line_no)
                continue
            if "\\u" in text and not _encodable(record):
                yield RowError(
                    "invalid_unicode", f"{where}: a string holds a lone surrogate (invalid Unicode)", line_no
                )
                continue
            yield JsonlLine(line_no, record)


def _encodable(record: dict) -> bool:
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_blank(path: Path) -> bool:
    """True when ``path`` holds no line with anything but whitespace (reads up to the first such line)."""
    with open(path, "rb") as handle:
        return not any(line.strip() for line in handle)


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
        try:
            if self._zip is not None:
                member = self._members.get(rel)
                if member is None:
                    raise RowError("missing_image", f"image {relpath!r} not found in archive {self.root}")
                _check_size(relpath, self._zip.getinfo(member).file_size)
                return self._zip.read(member)
            target = (self.root / rel).resolve()
            if not target.is_relative_to(self.root):  # symlinks pointing outside the root
                raise UnsafePathError(relpath)
            if not target.is_file():
                raise RowError("missing_image", f"image {relpath!r} not found under {self.root}")
            _check_size(relpath, target.stat().st_size)
            return target.read_bytes()
        except (OSError, zipfile.BadZipFile, zlib.error, EOFError) as err:
            raise RowError(
                "unreadable_image", f"image {relpath!r} cannot be read: {getattr(err, 'strerror', None) or err}"
            ) from None

    def read_image(self, relpath: str) -> dict:
        """Return ``{"bytes", "path"}`` for a decodable image, else raise ``RowError`` (``corrupt_image``,
        ``image_too_large``...).
        """
        data = self.read_bytes(relpath)
        error = decode_error(data)
        if error is not None:
            raise RowError(error[0], f"image {relpath!r} cannot be used: {error[1]}")
        return {"bytes": data, "path": PurePosixPath(relpath).name}


def _check_size(relpath: str, size: int) -> None:
    if size > MAX_IMAGE_BYTES:
        raise RowError("image_too_large", f"image {relpath!r} holds {size} bytes, over the limit of {MAX_IMAGE_BYTES}")


_CHECKED: dict[bytes, tuple[str, str] | None] = {}  # content digest -> decode_error's answer, per process
_MAX_CHECKED = 1_000_000


def decode_error(data: bytes) -> tuple[str, str] | None:
    """None when ``data`` is an image of at most :data:`MAX_IMAGE_PIXELS` that decodes in full, else (reason, detail).

    Each distinct content is decoded once per process (an image shared by many rows, configs or
    languages costs one decode, about 5 ms for a 640x480 JPEG).
    """
    key = hashlib.blake2b(data, digest_size=16).digest()
    if key not in _CHECKED:
        if len(_CHECKED) >= _MAX_CHECKED:
            _CHECKED.clear()
        _CHECKED[key] = _decode(data)
    return _CHECKED[key]


def _decode(data: bytes) -> tuple[str, str] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > MAX_IMAGE_PIXELS:
                    return "image_too_large", f"{width}x{height} pixels, over the limit of {MAX_IMAGE_PIXELS}"
                problem = image_shape_problem(width, height)
                if problem is not None:
                    return problem
                img.verify()
            with Image.open(io.BytesIO(data)) as img:
                img.draft(img.mode, (max(width // 8, 1), max(height // 8, 1)))
                img.load()
    except Image.DecompressionBombError as err:
        return "image_too_large", str(err)
    except Exception as err:  # noqa: BLE001 - any decoder failure on untrusted bytes is a rejected row
        return "corrupt_image", f"{type(err).__name__}: {err}"
    return None
