"""Which files are images PaliDesk reads, and the one folder walk and order over them.

The window's queue (``app.ui.image_files``), ``palidesk batch`` (``app.batch.inputs``) and
``eval``'s truth folders use these, so a folder gives the same images in the same order
everywhere. Kept here, beside the engine's image reader, because the evaluation code
below the core (``app.session``) lists images too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
)


def is_image_name(path: str | Path) -> bool:
    """True if ``path`` has a suffix PaliDesk reads (case-insensitive)."""
    return os.path.splitext(str(path))[1].lower() in IMAGE_SUFFIXES


def name_order(name: str) -> tuple[str, str]:
    """The sort key of names and paths: case-insensitive first, so "b.png" does not come
    after "Z.png"; ties (names differing in case only) stay in a stable order."""
    return (name.casefold(), name)


def walk_folder(folder: str | Path,
                on_error: Callable[[OSError], None] | None = None) -> Iterator[tuple[str, bool]]:
    """Every file below ``folder`` as (path, is an image), folders and files in
    ``name_order``; hidden files and folders (a leading dot) are left out. Links to
    folders are not followed, so a link back up the tree cannot loop forever. Streamed:
    one folder's listing is held at a time. ``on_error`` gets a folder that cannot be
    listed (default: it is skipped)."""
    for root, dirs, files in os.walk(folder, onerror=on_error, followlinks=False):
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=name_order)
        for name in sorted(files, key=name_order):
            if not name.startswith("."):
                yield os.path.join(root, name), is_image_name(name)


def images_in(folder: str | Path,
              on_error: Callable[[OSError], None] | None = None) -> Iterator[str]:
    """The image files below ``folder``, in ``walk_folder``'s order."""
    return (path for path, image in walk_folder(folder, on_error) if image)
