"""Writing export files whole or not at all, with failures told in the user's terms."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from app.errors import ExportError


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file renamed into place.

    A failure leaves the previous file, if any, untouched and no temporary file behind.
    Raises ``ExportError``.
    """
    temp: Path | None = None
    try:
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        temp = Path(name)
        # newline="" writes the text's own line ends (CSV needs its \r\n kept as is).
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except OSError as exc:
        if temp is not None:
            temp.unlink(missing_ok=True)
        raise export_error(exc, path) from exc


def make_folder(folder: Path) -> None:
    """Create ``folder`` and its parents if needed. Raises ``ExportError``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise export_error(exc, folder) from exc


def export_error(exc: OSError, path: Path) -> ExportError:
    """Turn an OSError met while exporting to ``path`` into a sentence for the user."""
    if exc.errno == errno.ENOSPC:
        return ExportError(
            f"The disk is full, so {path} could not be written. Free some space and export "
            "again; the files written before it are complete."
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ExportError(
            f"PaliDesk is not allowed to write {path}. Choose another folder, or check the "
            "folder's permissions."
        )
    return ExportError(f"PaliDesk could not write {path} ({exc.strerror or exc}).")
