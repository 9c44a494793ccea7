"""The history database's tables, versioned with ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3

# Version N -> the script that upgrades a version N - 1 database to N. Add a step for
# each change; never edit a step that has shipped.
_STEPS: dict[int, str] = {
    1: """
        CREATE TABLE results (
            id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: the window may hold ids
            created TEXT NOT NULL,                 -- ISO 8601, UTC
            image_path TEXT NOT NULL,
            image_sha256 TEXT NOT NULL,
            image_width INTEGER NOT NULL,
            image_height INTEGER NOT NULL,
            task TEXT NOT NULL,
            prompt TEXT NOT NULL,
            model TEXT NOT NULL,
            quantization TEXT NOT NULL,
            output_text TEXT NOT NULL,
            objects TEXT NOT NULL,                 -- JSON list of DetectedObject.to_dict()
            timings TEXT NOT NULL,                 -- JSON object of Timings.to_dict()
            stop_reason TEXT NOT NULL,
            tokens TEXT NOT NULL                   -- JSON list of token ids
        );
        CREATE INDEX results_by_created ON results (created, id);
        CREATE INDEX results_by_done ON results (image_sha256, task, model, quantization);
    """,
    # Results are attributed to the converted pair (not a folder name that every download
    # shared), and keep the options that decide whether a stored result can be reused.
    2: """
        ALTER TABLE results ADD COLUMN pair_id TEXT NOT NULL DEFAULT '';
        ALTER TABLE results ADD COLUMN options_key TEXT NOT NULL DEFAULT 'greedy';
        ALTER TABLE results ADD COLUMN max_new_tokens INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX results_by_image ON results (image_sha256, created);
        CREATE INDEX results_by_path ON results (image_path, created);
    """,
}
SCHEMA_VERSION = max(_STEPS)


class NewerSchema(Exception):
    """The database was written by a newer PaliDesk; ``args[0]`` is its version."""


def upgrade(connection: sqlite3.Connection) -> None:
    """Bring the database up to ``SCHEMA_VERSION``, one step per transaction.

    Raises ``NewerSchema`` rather than touch a database this version does not understand.
    """
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise NewerSchema(version)
    for target in range(version + 1, SCHEMA_VERSION + 1):
        # executescript commits first; BEGIN..COMMIT makes each step all-or-nothing.
        connection.executescript(
            f"BEGIN; {_STEPS[target]}; PRAGMA user_version = {target}; COMMIT;"
        )
