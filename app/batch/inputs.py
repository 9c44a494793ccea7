"""Which images a batch covers: folders (recursive), globs and text files of paths.

Paths are produced one at a time and never collected, so a job over millions of files
holds one folder's listing in memory at most. The order is stable (sorted per folder, the
window's order: ``app.engine.image_files``), which keeps ``--limit`` and resumed runs
predictable.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from app.engine.image_files import IMAGE_SUFFIXES, images_in, is_image_name, name_order
from app.errors import PaliDeskError

__all__ = ["IMAGE_SUFFIXES", "BatchInputError", "check_inputs", "count_image_paths",
           "is_image_name", "iter_image_paths"]


class BatchInputError(PaliDeskError):
    """An INPUT of ``palidesk batch`` is missing or cannot be listed."""


def check_inputs(inputs: Iterable[str]) -> None:
    """Refuse, before any model is loaded, an INPUT that is neither a path nor a pattern."""
    for item in inputs:
        if not glob.has_magic(item) and not os.path.exists(item):
            raise BatchInputError(
                f"{item} does not exist (give folders, image files, glob patterns such as "
                "'photos/**/*.jpg', or a text file with one image path per line)."
            )


def iter_image_paths(inputs: Iterable[str]) -> Iterator[str]:
    """Absolute paths of the images named by ``inputs``, in order, streamed.

    - a folder: every file with an image suffix below it (hidden entries skipped);
    - a file with an image suffix: that image;
    - any other file: a list of image paths, one per line (blank lines and lines
      starting with ``#`` ignored; relative paths are relative to the list's folder);
    - a glob pattern (``**`` recurses): the matching image files, and the images in
      matching folders.

    Absolute paths: Ray workers do not share the caller's working folder, and records
    written from one folder can be resumed from another.
    """
    for item in inputs:
        if glob.has_magic(item) and not os.path.exists(item):
            for match in sorted(glob.iglob(item, recursive=True), key=name_order):
                yield from _expand(match, from_pattern=True)
        else:
            yield from _expand(item, from_pattern=False)


def count_image_paths(inputs: Iterable[str]) -> int:
    """How many paths ``iter_image_paths`` yields (a listing pass, no file is opened
    except lists of paths)."""
    return sum(1 for _ in iter_image_paths(inputs))


def _expand(item: str, from_pattern: bool) -> Iterator[str]:
    path = os.path.abspath(item)
    if os.path.isdir(path):
        yield from _walk(path)
    elif is_image_name(path):
        yield path
    elif from_pattern:
        return  # a pattern such as "data/*" also matches notes.txt: not ours to read
    elif os.path.isfile(path):
        yield from _read_list(path)
    else:
        # Not a folder, not an image name, not a list: let the labeler say why.
        yield path


def _walk(folder: str) -> Iterator[str]:
    def fail(error: OSError) -> None:
        raise BatchInputError(f"Cannot list {error.filename}: {error.strerror}.")

    yield from images_in(folder, on_error=fail)


def _read_list(list_file: str) -> Iterator[str]:
    base = os.path.dirname(list_file)
    try:
        with open(list_file, encoding="utf-8") as lines:
            for line in lines:
                entry = line.strip()
                if entry and not entry.startswith("#"):
                    yield os.path.abspath(os.path.join(base, os.path.expanduser(entry)))
    except UnicodeDecodeError as exc:
        raise BatchInputError(
            f"{Path(list_file).name} is neither an image (by its suffix) nor a text file "
            "of image paths."
        ) from exc
    except OSError as exc:
        raise BatchInputError(f"Cannot read {list_file}: {exc.strerror}.") from exc
