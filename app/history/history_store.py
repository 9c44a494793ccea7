"""Every result PaliDesk produced, kept in a SQLite file: the one home of a result. The
window's results list, the History dialog and every export read it, and "Run all" looks
up in it what is already done (``app.session.result_store`` decides what counts).

One connection serves all threads (the UI thread reads while the worker adds), so every
call takes the store's lock.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import platformdirs

from app.backup_files import backup_path
from app.errors import HistoryError
from app.history.history_record import HistoryRecord, object_from_dict
from app.history.history_schema import NewerSchema, upgrade

_COLUMNS = (
    "created, image_path, image_sha256, image_width, image_height, task, prompt, model, "
    "quantization, output_text, objects, timings, stop_reason, tokens, pair_id, options_key, "
    "max_new_tokens"
)
_N_COLUMNS = _COLUMNS.count(",") + 1
_CORRUPT = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def default_history_path() -> Path:
    """Where the history lives by default (the platform's per-user data folder)."""
    return Path(platformdirs.user_data_dir("PaliDesk", appauthor=False)) / "history.sqlite3"


class _Corrupt(Exception):
    """The database file is damaged; the message says how."""


class HistoryStore:
    """The history database at ``path`` (see ``default_history_path()``).

    A damaged file is moved aside as ``<name>.bad-<timestamp>`` and a new, empty history
    is started; ``warning`` then holds a sentence for the user (otherwise None).
    Raises ``HistoryError`` when the file cannot be opened at all.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.warning: str | None = None
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HistoryError(
                f"PaliDesk cannot create the folder for its history, {self.path.parent} "
                f"({exc.strerror or exc}); results will not be remembered."
            ) from exc
        try:
            self._connection: sqlite3.Connection | None = self._open()
        except _Corrupt:
            backup = self._set_aside()
            self._connection = self._open()
            self.warning = (
                f"The history file {self.path} was damaged, so PaliDesk started a new, "
                f"empty history. The damaged file was kept as {backup}."
            )

    def add(self, record: HistoryRecord) -> int:
        """Store ``record`` (its ``id`` is ignored) and return the id it was given."""
        with self._guard("save a result to") as connection, connection:
            cursor = connection.execute(
                f"INSERT INTO results ({_COLUMNS}) VALUES ({', '.join('?' * _N_COLUMNS)})",
                _row_values(record),
            )
            return int(cursor.lastrowid or 0)

    def get(self, record_id: int) -> HistoryRecord | None:
        """The record with ``record_id``, or None if there is none."""
        with self._guard("read") as connection:
            row = connection.execute(
                f"SELECT id, {_COLUMNS} FROM results WHERE id = ?", (record_id,)
            ).fetchone()
        return None if row is None else _record(row)

    def recent(
        self, limit: int = 200, task: str | None = None, search: str | None = None
    ) -> list[HistoryRecord]:
        """Up to ``limit`` records, newest first, of ``task`` if given, whose image path,
        prompt or output contains ``search`` (case-insensitive for ASCII) if given."""
        clauses: list[str] = []
        params: list[object] = []
        if task is not None:
            clauses.append("task = ?")
            params.append(task)
        if search:
            pattern = "%" + _escape_like(search) + "%"
            clauses.append(
                # CAST: a name kept as bytes (_path_value) is a BLOB, which LIKE never matches.
                "(CAST(image_path AS TEXT) LIKE ? ESCAPE '\\' OR prompt LIKE ? ESCAPE '\\' "
                "OR output_text LIKE ? ESCAPE '\\')"
            )
            params += [pattern, pattern, pattern]
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._guard("read") as connection:
            rows = connection.execute(
                f"SELECT id, {_COLUMNS} FROM results {where} "
                "ORDER BY created DESC, id DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [_record(row) for row in rows]

    def find(
        self, image_sha256: str, prompt: str, pair_id: str, quantization: str,
        options_key: str,
    ) -> list[HistoryRecord]:
        """Finished (not cancelled) results for this image digest, prompt, model pair,
        quantization and options, newest first. Images without a digest match nothing."""
        if not image_sha256 or not pair_id:
            return []
        with self._guard("read") as connection:
            rows = connection.execute(
                f"SELECT id, {_COLUMNS} FROM results WHERE image_sha256 = ? AND prompt = ? "
                "AND pair_id = ? AND quantization = ? AND options_key = ? "
                "AND stop_reason != 'cancelled' ORDER BY created DESC, id DESC",
                (image_sha256, prompt, pair_id, quantization, options_key),
            ).fetchall()
        return [_record(row) for row in rows]

    def for_image(self, image_sha256: str, image_path: str) -> list[HistoryRecord]:
        """Every result for an image (same bytes, or the same path when the digest is not
        known), newest first."""
        with self._guard("read") as connection:
            rows = connection.execute(
                f"SELECT id, {_COLUMNS} FROM results WHERE "
                "(image_sha256 != '' AND image_sha256 = ?) OR image_path = ? "
                "ORDER BY created DESC, id DESC",
                (image_sha256, _path_value(image_path)),
            ).fetchall()
        return [_record(row) for row in rows]

    def delete(self, record_id: int) -> bool:
        """Remove one record; return whether it existed."""
        with self._guard("delete a result from") as connection, connection:
            cursor = connection.execute("DELETE FROM results WHERE id = ?", (record_id,))
            return cursor.rowcount > 0

    def clear(self) -> None:
        """Remove every record."""
        with self._guard("clear") as connection, connection:
            connection.execute("DELETE FROM results")

    def close(self) -> None:
        """Close the database; calling it again does nothing."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _guard(self, action: str) -> Iterator[sqlite3.Connection]:
        """Hold the lock and turn SQLite failures into sentences for the user."""
        with self._lock:
            if self._connection is None:
                raise RuntimeError("the history store is closed")
            try:
                yield self._connection
            except sqlite3.Error as exc:
                raise _history_error(exc, action, self.path) from exc

    def _open(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
        except sqlite3.Error as exc:
            raise _history_error(exc, "open", self.path) from exc
        connection.row_factory = sqlite3.Row
        try:
            check = connection.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise _Corrupt(check)
            upgrade(connection)  # first: a newer database must be left exactly as it is
            # WAL lets the window read while the worker writes.
            connection.execute("PRAGMA journal_mode = WAL")
        except sqlite3.DatabaseError as exc:
            connection.close()
            if getattr(exc, "sqlite_errorcode", None) in _CORRUPT:
                raise _Corrupt(str(exc)) from exc
            raise _history_error(exc, "open", self.path) from exc
        except NewerSchema as exc:
            connection.close()
            raise HistoryError(
                f"The history file {self.path} was written by a newer version of PaliDesk "
                f"(history version {exc.args[0]}). Update PaliDesk to see it; this version "
                "will not change it."
            ) from exc
        except BaseException:
            connection.close()
            raise
        return connection

    def _set_aside(self) -> Path:
        backup = backup_path(self.path)
        try:
            os.replace(self.path, backup)
            # The write-ahead log belongs to the damaged file: keep it beside the backup,
            # so the new database does not replay it.
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.exists():
                os.replace(wal, backup.with_name(backup.name + "-wal"))
            self.path.with_name(self.path.name + "-shm").unlink(missing_ok=True)
        except OSError as exc:
            raise HistoryError(
                f"The history file {self.path} is damaged and PaliDesk cannot move it aside "
                f"({exc.strerror or exc}). Move or delete it, then start PaliDesk again."
            ) from exc
        return backup


def _row_values(record: HistoryRecord) -> tuple[object, ...]:
    return (
        record.created,
        _path_value(record.image_path),
        record.image_sha256,
        record.image_width,
        record.image_height,
        record.task,
        record.prompt,
        record.model,
        record.quantization,
        record.text,
        json.dumps([obj.to_dict() for obj in record.objects]),
        json.dumps(record.timings),
        record.stop_reason,
        json.dumps(record.tokens),
        record.pair_id,
        record.options_key,
        record.max_new_tokens,
    )


def _record(row: sqlite3.Row) -> HistoryRecord:
    return HistoryRecord(
        id=row["id"],
        created=row["created"],
        image_path=_path_text(row["image_path"]),
        image_sha256=row["image_sha256"],
        image_width=row["image_width"],
        image_height=row["image_height"],
        task=row["task"],
        prompt=row["prompt"],
        model=row["model"],
        quantization=row["quantization"],
        text=row["output_text"],
        objects=[object_from_dict(item) for item in json.loads(row["objects"])],
        timings=json.loads(row["timings"]),
        stop_reason=row["stop_reason"],
        tokens=[int(token) for token in json.loads(row["tokens"])],
        pair_id=row["pair_id"],
        options_key=row["options_key"],
        max_new_tokens=row["max_new_tokens"],
    )


def _path_value(path: str) -> str | bytes:
    """What the database keeps of an image path: its text, or for a name that is not
    valid UTF-8 (lone surrogates from ``os.fsdecode``, which SQLite's text refuses) the
    file name's own bytes, kept as a BLOB that reads back as the same string."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def _path_text(value: str | bytes) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _history_error(exc: sqlite3.Error, action: str, path: Path) -> HistoryError:
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL:
        return HistoryError(
            f"The disk is full, so PaliDesk could not {action} the history ({path}). "
            "Free some space and try again."
        )
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN):
        return HistoryError(
            f"PaliDesk is not allowed to {action} the history file {path}. Check the "
            "file's and its folder's permissions."
        )
    if code in _CORRUPT:
        return HistoryError(
            f"The history file {path} is damaged. Restart PaliDesk to set it aside and "
            "start a new history."
        )
    return HistoryError(f"PaliDesk could not {action} the history ({path}): {exc}.")
