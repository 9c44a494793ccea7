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
from typing import IO, TYPE_CHECKING, Any, Protocol

from app import file_errors
from app.batch.record_keys import ResultsFileError, keys_of
from app.json_line import json_line
from app.session.done_rule import GREEDY, record_answers

if TYPE_CHECKING:
    from app.batch.job import BatchJob

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

    With ``job``, a record counts as done only when it answers the job's max-tokens limit
    (``done_rule.record_answers``): an answer cut at a lower limit is run again and the
    new line appended; the old line stays, as every line does. Records made with other
    options have other work keys, so they never count; ``other_options_records`` counts
    the records of the job's prompt and model that do not count, for the resume message.
    """

    def __init__(self, path: Path | str, resume: bool, job: BatchJob | None = None) -> None:
        self.path = Path(path)
        self.job = job
        self.resumed_records = 0  # lines found on disk at the start
        self.other_options_records = 0  # of those, the job's work made with other options
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
            record = self._parse(line, number)
            self.resumed_records += 1
            if not self._answers(record):
                self.other_options_records += 1
            self._index(record, offset)
            offset += len(line)
        self._file.seek(0, os.SEEK_END)

    def _parse(self, line: bytes, number: int) -> dict[str, Any]:
        try:
            record = json.loads(line)
            keys_of(record)
            record_answers(record, 1)  # its limit and length are readable too
        except (ValueError, KeyError, TypeError, RecursionError, OverflowError) as exc:
            raise ResultsFileError(
                f"Line {number} of {self.path} is not a palidesk batch record, so this file "
                "cannot be resumed. Choose another --out file."
            ) from exc
        return record

    def _answers(self, record: dict[str, Any]) -> bool:
        """False for a record of the job's prompt and model made with other options or
        cut at another limit (what the resume message counts)."""
        job = self.job
        if job is None or (record.get("prompt"), record.get("model_id"),
                           record.get("quantization")) != (job.prompt, job.model.pair_id,
                                                           job.model.quant):
            return True
        return ((record.get("options_key") or GREEDY) == job.options_key
                and record_answers(record, job.options.max_new_tokens))

    def _index(self, record: dict[str, Any], offset: int) -> None:
        if self.job is not None and not record_answers(record, self.job.options.max_new_tokens):
            return  # cut at another limit: its image runs again
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
