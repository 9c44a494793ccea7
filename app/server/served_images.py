"""Images that arrive in requests: decoded from base64 or a ``data:`` URI, checked
before anything is queued, and kept as files the history can point at.

Remote ``http(s)`` URLs are refused: fetching whatever a request names would let any web
page reach the user's network through the server (request forgery).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import os
import re
import tempfile
import threading
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from app.engine.image_input import MAX_PIXELS
from app.server.request_errors import RequestRefused

_DATA_URI = re.compile(r"^data:(?P<type>[\w.+/-]*)(?:;[\w=.+-]+)*;base64,", re.IGNORECASE)
# The formats the window opens (app.engine.image_files), by Pillow's names; MPO is a phone's
# multi-picture JPEG. Only these decoders see a request's bytes: Pillow would otherwise
# try every format it knows, EPS among them, which it renders by running Ghostscript.
_SUFFIXES = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif",
             "BMP": ".bmp", "TIFF": ".tif"}
_FORMATS = "JPEG, PNG, WebP, GIF, BMP or TIFF"


def image_bytes(value: str, field: str) -> bytes:
    """The bytes of an image given as a ``data:`` URI or raw base64."""
    text = value.strip()
    if text.lower().startswith(("http://", "https://")):
        raise RequestRefused(400, f"{field}: PaliDesk does not fetch images from the network; "
                                  "send the image itself as a data: URI or base64.", field)
    if text.lower().startswith("data:"):
        match = _DATA_URI.match(text)
        if match is None:
            raise RequestRefused(400, f"{field}: only base64 data: URIs are accepted "
                                      "(data:image/png;base64,...).", field)
        text = text[match.end():]
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        # Said only once it is not base64: "/" is a base64 letter, and every JPEG's
        # base64 starts with "/9j/". Nothing is ever read from a path either way.
        if "://" in text[:16] or text.startswith(("/", "file:")):
            raise RequestRefused(400, f"{field}: send the image itself (a data: URI or "
                                      "base64), not a path or URL.", field) from None
        raise RequestRefused(400, f"{field}: this is not valid base64.", field) from None
    if not data:
        raise RequestRefused(400, f"{field}: the image is empty.", field)
    return data


def check_image(data: bytes, field: str) -> str:
    """Refuse what is not a readable image or is larger than the window opens
    (``MAX_PIXELS``: decompression bombs); returns the file suffix for its format."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # MPO has no opener of its own: the JPEG one returns it.
            image = Image.open(io.BytesIO(data), formats=[f for f in _SUFFIXES if f != "MPO"])
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise RequestRefused(
                    413, f"{field}: the image is {width} x {height} pixels; PaliDesk opens "
                         f"images up to {MAX_PIXELS // 1_000_000} megapixels.", field)
            image.load()  # a truncated file is refused here, not on the engine's thread
            suffix = _SUFFIXES[image.format or ""]
    except RequestRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise RequestRefused(413, f"{field}: the image is larger than PaliDesk opens "
                                  f"({MAX_PIXELS // 1_000_000} megapixels).", field) from None
    except UnidentifiedImageError:
        raise RequestRefused(400, f"{field}: this is not an image PaliDesk can read "
                                  f"(it reads {_FORMATS}).", field) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise RequestRefused(400, f"{field}: the image is damaged or truncated ({exc}).",
                             field) from None
    return suffix


# Image checks decode the whole image: off the event loop, so /health and the other
# requests are answered meanwhile (a 48-megapixel JPEG took 0.13 s on 2 busy cores), two at
# a time at most, so a burst of large images cannot take every core from the engine.
_DECODES = threading.BoundedSemaphore(2)


async def checked_image(data: bytes, field: str) -> str:
    """``check_image`` in a worker thread (for the routes, which run on the event loop)."""
    def check() -> str:
        with _DECODES:
            return check_image(data, field)

    return await asyncio.to_thread(check)


class ServedImages:
    """Where request images are written: ``folder`` keeps them (named by their SHA-256,
    so the history's records of served results point at a real file); without a folder
    they go to a temporary file that ``release`` deletes after the job."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    def save(self, data: bytes, suffix: str) -> tuple[Path, str]:
        digest = hashlib.sha256(data).hexdigest()
        if self.folder is None:
            handle, name = tempfile.mkstemp(prefix="palidesk-served-", suffix=suffix)
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            return Path(name), digest
        path = self.folder / f"{digest}{suffix}"
        if not path.exists():
            partial = path.with_name(path.name + ".part")
            partial.write_bytes(data)
            os.replace(partial, path)
        return path, digest

    def release(self, path: Path) -> None:
        if self.folder is None:
            path.unlink(missing_ok=True)


def default_served_folder() -> Path:
    """Beside the history: the images served results were made from."""
    from app.history.history_store import default_history_path

    return default_history_path().parent / "served-images"
