"""Which files become queue images: suffix filtering, folder walks, drops and pastes.

Also the one Pillow-to-QImage conversion that the queue and the view share.

Kept apart from the queue widget so the rules (what is an image, what gets skipped and
how we tell the user) can be tested without building any widgets.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import platformdirs
from PIL import Image
from PySide6.QtCore import QMimeData
from PySide6.QtGui import QImage

from app.engine.image_files import IMAGE_SUFFIXES, is_image_name, walk_folder
from app.errors import ImageError

# The suffixes and the folder walk are the Qt-free ones `palidesk batch` uses too.
SUPPORTED_SUFFIXES: frozenset[str] = IMAGE_SUFFIXES

# A folder with more skipped files than this gets one summary line, not one line each:
# a photo folder full of .xmp sidecars must not bury the message.
_NOTES_PER_FOLDER = 3


def is_supported(path: Path) -> bool:
    """True if ``path`` has a suffix PaliDesk reads (case-insensitive)."""
    return is_image_name(path)


def expand_paths(paths: Iterable[Path]) -> tuple[list[Path], list[str]]:
    """Turn dropped or chosen paths into image files plus notes on what was skipped.

    Files are kept if their suffix is supported; folders are walked recursively in sorted
    order (hidden files and folders are skipped silently). Returns (image paths in order,
    without duplicates; plain-English notes about everything skipped).
    """
    images: list[Path] = []
    notes: list[str] = []
    seen: set[Path] = set()

    def keep(path: Path) -> None:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            images.append(path)

    for path in paths:
        path = Path(path)
        if path.is_dir():
            found, skipped = _walk_folder(path)
            for image in found:
                keep(image)
            notes.extend(_folder_notes(path, found, skipped))
        elif not path.exists():
            notes.append(_missing_note(path))
        elif is_supported(path):
            keep(path)
        else:
            notes.append(f"{path.name} is not an image file PaliDesk reads.")
    return images, notes


def _missing_note(path: Path) -> str:
    """Why ``path`` cannot be reached: gone, a dangling link, or a link loop."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{path.name} is a symbolic link that leads back to itself (a loop)."
    if path.is_symlink():
        return f"{path.name} is a link to a file that does not exist."
    return f"{path.name} could not be found."


def _walk_folder(folder: Path) -> tuple[list[Path], list[Path]]:
    """Return (supported files, unsupported files) under ``folder``, in sorted order."""
    found: list[Path] = []
    skipped: list[Path] = []
    for path, image in walk_folder(folder):
        (found if image else skipped).append(Path(path))
    return found, skipped


def _folder_notes(folder: Path, found: list[Path], skipped: list[Path]) -> list[str]:
    name = folder.name or str(folder)
    if not found and not skipped:
        return [f"The folder {name} is empty."]
    if len(skipped) > _NOTES_PER_FOLDER:
        examples = ", ".join(path.name for path in skipped[:_NOTES_PER_FOLDER])
        notes = [
            f"{len(skipped)} files in {name} are not image files PaliDesk reads "
            f"({examples}, …)."
        ]
    else:
        notes = [f"{path.name} is not an image file PaliDesk reads." for path in skipped]
    if not found:
        notes.append(f"The folder {name} holds no images PaliDesk reads.")
    return notes


def paths_from_mime(mime: QMimeData) -> list[Path]:
    """Local file paths carried by a drop or paste; web and other URLs are ignored."""
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


def qimage_from_pil(image: Image.Image) -> QImage:
    """Copy an RGB or RGBA Pillow image into a QImage that owns its pixels.

    Safe in worker threads (QImage, unlike QPixmap, is not tied to the GUI thread).
    """
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")
    channels = len(image.mode)
    fmt = QImage.Format.Format_RGB888 if channels == 3 else QImage.Format.Format_RGBA8888
    data = image.tobytes()
    # Explicit bytes-per-line: Qt otherwise assumes rows padded to 4 bytes. copy() detaches
    # the QImage from ``data``, which Python frees when this function returns.
    return QImage(data, image.width, image.height, image.width * channels, fmt).copy()


def default_cache_dir() -> Path:
    """The per-user cache folder, e.g. ~/.cache/PaliDesk on Linux."""
    return Path(platformdirs.user_cache_dir("PaliDesk"))


def save_pasted_image(image: QImage, cache_dir: Path | None = None) -> Path:
    """Write a pasted image as a PNG under ``cache_dir``/pasted and return its path.

    Pasted images go to the cache, never next to the user's own files. Raises ImageError
    if the image is empty or cannot be written.
    """
    if image.isNull():
        raise ImageError("The clipboard holds no image to paste.")
    folder = (cache_dir if cache_dir is not None else default_cache_dir()) / "pasted"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageError(f"The pasted image cannot be saved in {folder} ({exc}).") from exc
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = folder / f"pasted-{stamp}.png"
    counter = 2
    while path.exists():  # two pastes within one second
        path = folder / f"pasted-{stamp}-{counter}.png"
        counter += 1
    if not image.save(str(path), "PNG"):
        raise ImageError(f"The pasted image cannot be saved in {folder}. Is the disk full?")
    return path
