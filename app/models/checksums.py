"""Check a downloaded file against the checksum the hub lists for it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from app.models.hub_files import RemoteFile

READ_BLOCK = 8 << 20


class ContentDigest:
    """The hub's checksum of a file, computed as its bytes arrive.

    Large (LFS) files are named by the sha256 of their content; small files kept in git
    by their git blob id, sha1 of ``blob <size>\\0`` + content. A file with neither
    (an odd listing) is only checked by size.
    """

    def __init__(self, remote: RemoteFile) -> None:
        self.expected: str | None
        if remote.sha256:
            self._hash = hashlib.sha256()
            self.expected = remote.sha256.lower()
        elif remote.git_sha1:
            self._hash = hashlib.sha1(f"blob {remote.size}\0".encode(), usedforsecurity=False)
            self.expected = remote.git_sha1.lower()
        else:
            self._hash = hashlib.sha256()
            self.expected = None

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def update_from_file(self, path: Path) -> None:
        """Feed the bytes already in ``path`` (a partial download being resumed)."""
        with path.open("rb") as source:
            while block := source.read(READ_BLOCK):
                self._hash.update(block)

    def matches(self) -> bool:
        return self.expected is None or self._hash.hexdigest() == self.expected


def file_matches(path: Path, remote: RemoteFile) -> bool:
    """True when ``path`` holds exactly ``remote``'s content (size, then checksum)."""
    try:
        if path.stat().st_size != remote.size:
            return False
        digest = ContentDigest(remote)
        digest.update_from_file(path)
    except OSError:
        return False
    return digest.matches()
