"""The SHA-256 of a file's bytes: one function for images (what "already done" keys on),
model files (the manifest's checksums) and the mask decoder (its recorded digest)."""

from __future__ import annotations

import hashlib
from pathlib import Path

_BLOCK = 8 << 20


def file_sha256(path: Path | str) -> str:
    """Hex SHA-256 of the file at ``path``, read in 8 MB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        while block := file.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()
