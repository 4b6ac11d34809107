"""The one reader of a ``datasets`` ``Image`` cell: ``{"bytes", "path"}`` (bytes first), a PIL image, or None."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, UnidentifiedImageError


def open_image_cell(cell: Any) -> Image.Image | None:
    """Decode ``cell`` into a loaded PIL image (None stays None); ``ValueError`` when it is no image or unreadable."""
    if cell is None or isinstance(cell, Image.Image):
        return cell
    if not isinstance(cell, dict) or (cell.get("bytes") is None and cell.get("path") is None):
        raise ValueError("image cell must be an image, a {'bytes', 'path'} dict or null")
    try:
        source = io.BytesIO(cell["bytes"]) if cell.get("bytes") is not None else cell["path"]
        with Image.open(source) as image:
            image.load()  # pixels read now: the image stays usable after the file closes
            return image
    except (OSError, UnidentifiedImageError) as error:
        raise ValueError(f"unreadable image ({error})") from error
