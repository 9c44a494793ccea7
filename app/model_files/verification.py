"""Is a model file still what was written? Sizes always, SHA-256 where affordable.

The manifest records each file's size and SHA-256. Hashing a multi-gigabyte file at
every load would cost seconds, so a stamp file remembers, per file, the size and
modification time at which its hash last matched: an unchanged file is trusted, a
changed one (damaged, overwritten, copied without its times) is hashed once more.
``palidesk info --verify`` hashes every file regardless.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from app.atomic_files import write_text_atomic
from app.errors import ModelFolderError
from app.file_digest import file_sha256
from app.model_files.manifest import ModelFile, read_manifest

STAMP_NAME = ".verified.json"


def _fingerprint(path: Path) -> list[int]:
    info = os.stat(path)
    return [info.st_size, info.st_mtime_ns]


def _read_stamps(folder: Path) -> dict[str, object]:
    try:
        stamps = json.loads((folder / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return stamps if isinstance(stamps, dict) else {}


def record_verified(folder: Path, entry: ModelFile) -> None:
    """Remember that ``entry``'s file, as it is now, has the manifest's hash.

    Call right after the hash was computed from the file (convert, quantize, a check).
    A folder that cannot be written only loses the shortcut, so errors are ignored.
    """
    folder = Path(folder)
    try:
        stamps = _read_stamps(folder)
        stamps[entry.name] = [*_fingerprint(folder / entry.name), entry.sha256]
        write_text_atomic(folder / STAMP_NAME, json.dumps(stamps, indent=1) + "\n")
    except OSError:
        pass


def check_size(folder: Path, entry: ModelFile) -> list[int]:
    """Raise ModelFolderError if ``entry``'s file is missing or not the size written;
    return its fingerprint (size, modification time)."""
    path = Path(folder) / entry.name
    try:
        fingerprint = _fingerprint(path)
    except FileNotFoundError:
        raise ModelFolderError(f"{path.name} is missing from {folder}.") from None
    except OSError as exc:
        raise ModelFolderError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    if fingerprint[0] != entry.size:
        raise ModelFolderError(
            f"{path.name} is {fingerprint[0]:,} bytes but was written as {entry.size:,}: it is "
            "damaged or was replaced. Convert (or download) the model again."
        )
    return fingerprint


def check_file(folder: Path, entry: ModelFile, *, hash_always: bool = False) -> None:
    """Raise ModelFolderError if ``entry``'s file is missing, has another size, or
    (when its stamp is stale, or ``hash_always``) another SHA-256 than the manifest's."""
    folder = Path(folder)
    fingerprint = check_size(folder, entry)
    if not hash_always and _read_stamps(folder).get(entry.name) == [*fingerprint, entry.sha256]:
        return
    path = folder / entry.name
    try:
        digest = file_sha256(path)
    except OSError as exc:
        raise ModelFolderError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    if digest != entry.sha256:
        raise ModelFolderError(
            f"{path.name} is damaged: its content does not match the checksum recorded when "
            "it was written. Convert (or download) the model again."
        )
    record_verified(folder, entry)


def verify_files(folder: Path, names: Iterable[str]) -> None:
    """``check_file`` for the named files of ``folder``'s manifest: before a model is
    loaded (an unchanged file costs a stat, a changed one a hash)."""
    by_name = {entry.name: entry for entry in read_manifest(Path(folder)).files}
    for name in names:
        entry = by_name.get(name)
        if entry is None:
            raise ModelFolderError(f"{name} is not listed in {Path(folder) / 'manifest.json'}.")
        check_file(folder, entry)
