"""File names for per-image exports that never silently overwrite each other."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Iterable
from pathlib import PurePath


def unique_stems(image_paths: Iterable[str], reserved: Collection[str] = ()) -> dict[str, str]:
    """Map each image path to the stem its label file gets in one shared folder.

    A stem shared by different images (``a/cat.jpg`` and ``b/cat.png``), or equal to a
    ``reserved`` one (``classes``), gets a short hash of the image's path appended, so
    the names are distinct and the same on every export.
    """
    paths = list(dict.fromkeys(image_paths))
    # Case-folded: Windows and macOS treat Cat.txt and cat.txt as one file.
    counts = Counter(PurePath(path).stem.casefold() for path in paths)
    taken = {name.casefold() for name in reserved}
    stems: dict[str, str] = {}
    for path in paths:
        stem = PurePath(path).stem
        if counts[stem.casefold()] > 1 or stem.casefold() in taken:
            stem = f"{stem}-{hashlib.sha256(path.encode()).hexdigest()[:8]}"
        stems[path] = stem
    return stems
