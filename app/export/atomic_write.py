"""Writing export files whole or not at all, with failures told in the user's terms."""

from __future__ import annotations

from pathlib import Path

from app import atomic_files, file_errors
from app.errors import ExportError


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, its own line ends) to ``path`` whole or not at all.

    A failure leaves the previous file, if any, untouched and no temporary file behind.
    Raises ``ExportError``.
    """
    try:
        atomic_files.write_text_atomic(path, text, newline="")
    except OSError as exc:
        raise export_error(exc, path) from exc


def make_folder(folder: Path) -> None:
    """Create ``folder`` and its parents if needed. Raises ``ExportError``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise export_error(exc, folder) from exc


def export_error(exc: OSError, path: Path) -> ExportError:
    """Turn an OSError met while exporting to ``path`` into a sentence for the user."""
    return ExportError(file_errors.sentence(
        exc, f"write {path}", path, "The files written before it are complete."))
