"""The results file of a batch: JSON Lines, appended one fsync'd line per image.

A killed run loses at most the image in progress: every finished image is on disk
before the next starts. On ``--resume`` the file is read back once to learn which work
is done; a last line cut off by the kill is detected (no newline) and truncated away.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from app import file_errors
from app.batch.record_keys import ResultsFileError, keys_of
from app.json_line import json_line

try:  # POSIX only; on Windows two runs on one file are simply not prevented
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class KnownResults(Protocol):
    """What a labeler asks before running the model on an image."""

    def has_entry(self, entry: bytes) -> bool: ...

    def has_content(self, content: bytes) -> bool: ...


@dataclass(frozen=True)
class ResumeSnapshot:
    """The keys present when the job started: small and picklable, for Ray workers."""

    entries: frozenset[bytes]
    contents: frozenset[bytes]

    def has_entry(self, entry: bytes) -> bool:
        return entry in self.entries

    def has_content(self, content: bytes) -> bool:
        return content in self.contents


class ResultsLog:
    """Append-only JSONL results with an index of what they hold.

    ``resume=False`` refuses an existing non-empty file rather than mixing two jobs'
    lines by accident. Use as a context manager (closes and unlocks the file).
    """

    def __init__(self, path: Path | str, resume: bool) -> None:
        self.path = Path(path)
        self.resumed_records = 0  # lines found on disk at the start
        self.dropped_torn_line = False
        self._entries: set[bytes] = set()
        self._contents: dict[bytes, int] = {}  # content key -> offset of its first line
        if self.path.is_dir():
            raise ResultsFileError(f"{self.path} is a folder; --out takes a .jsonl file name.")
        if self.path.exists() and not self.path.is_file():
            # /dev/full, /dev/zero, a FIFO: reading it back for --resume would never end.
            raise ResultsFileError(f"{self.path} is not a regular file (a device or a pipe); "
                                   "--out takes a .jsonl file name.")
        if not resume and self.path.exists() and self.path.stat().st_size > 0:
            raise ResultsFileError(
                f"{self.path} already holds results. Add --resume to continue that job "
                "(finished images are skipped), or choose another --out file."
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[bytes] = open(self.path, "a+b")  # noqa: SIM115 - kept open
        except OSError as exc:
            raise ResultsFileError(f"Cannot open {self.path} for writing: {exc.strerror}.") from exc
        try:
            self._lock()
            self._load()
        except BaseException:
            self._file.close()
            raise

    # --- reading back ------------------------------------------------------------------

    def _lock(self) -> None:
        if fcntl is None:
            return
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise ResultsFileError(
                f"Another palidesk batch is writing {self.path}; wait for it or stop it first."
            ) from exc

    def _load(self) -> None:
        self._file.seek(0)
        offset = 0
        for number, line in enumerate(self._file, start=1):
            if not line.endswith(b"\n"):
                # The last write was cut off by a kill: that image was not finished.
                self._file.truncate(offset)
                os.fsync(self._file.fileno())
                self.dropped_torn_line = True
                break
            self._index(self._parse(line, number), offset)
            self.resumed_records += 1
            offset += len(line)
        self._file.seek(0, os.SEEK_END)

    def _parse(self, line: bytes, number: int) -> dict[str, Any]:
        try:
            record = json.loads(line)
            keys_of(record)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise ResultsFileError(
                f"Line {number} of {self.path} is not a palidesk batch record, so this file "
                "cannot be resumed. Choose another --out file."
            ) from exc
        return record

    def _index(self, record: dict[str, Any], offset: int) -> None:
        content, entry = keys_of(record)
        self._entries.add(entry)
        self._contents.setdefault(content, offset)

    # --- what is known -----------------------------------------------------------------

    def has_entry(self, entry: bytes) -> bool:
        return entry in self._entries

    def has_content(self, content: bytes) -> bool:
        return content in self._contents

    def snapshot(self) -> ResumeSnapshot:
        return ResumeSnapshot(frozenset(self._entries), frozenset(self._contents))

    def first_record(self, content: bytes) -> dict[str, Any]:
        """The first record written for ``content`` (read back from the file)."""
        # A separate handle: duplicates are rare, and os.pread does not exist on Windows.
        with open(self.path, "rb") as again:
            again.seek(self._contents[content])
            line = again.readline()
        return json.loads(line)

    # --- writing -----------------------------------------------------------------------

    def append(self, record: dict[str, Any]) -> None:
        """Write ``record`` as one line and make it durable before returning."""
        data = (json_line(record) + "\n").encode("utf-8")
        offset = self._file.seek(0, os.SEEK_END)
        try:
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:  # "the disk is full", not the C library's words
            raise ResultsFileError(f"Cannot write to {self.path}: "
                                   f"{file_errors.reason(exc, self.path)}.") from exc
        self._index(record, offset)

    def close(self) -> None:
        self._file.close()  # closing releases the lock

    def __enter__(self) -> ResultsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
