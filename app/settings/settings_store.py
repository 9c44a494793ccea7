"""Reading and writing the settings file.

Loading never fails: a missing file gives defaults, an unreadable one is kept aside as a
backup, and every value that could not be used is named in one warning for the user.
Saving is atomic, so a crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from app import file_errors
from app.atomic_files import write_text_atomic
from app.backup_files import backup_path
from app.errors import SettingsError
from app.settings.migrations import migrate
from app.settings.settings import SCHEMA_VERSION, Settings
from app.settings.validation import settings_from_dict


@dataclass(frozen=True)
class LoadResult:
    """The settings to use, and a sentence for the user if some could not be loaded."""

    settings: Settings
    warning: str | None = None


class _Unusable(Exception):
    """The file's content cannot be read as settings at all; the message says why."""


class SettingsStore:
    """The settings file at ``path`` (see ``default_settings_path()``)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def load(self) -> LoadResult:
        """Return the saved settings, or defaults plus a warning when they are unusable."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return LoadResult(Settings())
        except OSError as exc:
            return LoadResult(
                Settings(),
                f"PaliDesk could not read the settings file {self.path} "
                f"({exc.strerror or exc}), so it started with default settings.",
            )
        try:
            data, version = _parse(raw)
        except _Unusable as reason:
            return LoadResult(Settings(), self._set_aside(str(reason)))
        settings, problems = settings_from_dict(data)
        notes = []
        if version > SCHEMA_VERSION:
            notes.append(
                f"The settings file {self.path} was written by a newer version of PaliDesk "
                f"(settings version {version}; this one knows up to {SCHEMA_VERSION}). "
                "PaliDesk loaded the settings it understands; saving them will write the "
                "older format."
            )
        if problems:
            notes.append(
                f"Some settings in {self.path} were not valid, so PaliDesk used safe values "
                f"instead: {'; '.join(problems)}."
            )
        return LoadResult(settings, " ".join(notes) or None)

    def save(self, settings: Settings) -> None:
        """Write ``settings`` atomically. Raises ``SettingsError`` when that fails."""
        # schema_version is the first field, so a person opening the file sees it at once.
        data = asdict(settings)
        data["schema_version"] = SCHEMA_VERSION
        text = json.dumps(data, indent=2) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, text)
        except OSError as exc:
            raise SettingsError(file_errors.sentence(
                exc, f"save its settings to {self.path}", self.path,
                "The previous settings are unchanged.")) from exc

    def _set_aside(self, reason: str) -> str:
        backup = backup_path(self.path)
        try:
            os.replace(self.path, backup)
        except OSError as exc:
            return (
                f"The settings file {self.path} could not be read ({reason}), so PaliDesk "
                f"started with default settings. It could not be kept as a backup "
                f"({exc.strerror or exc}), so saving settings will replace it."
            )
        return (
            f"The settings file {self.path} could not be read ({reason}), so PaliDesk "
            f"started with default settings. The unreadable file was kept as {backup}."
        )


def _parse(raw: bytes) -> tuple[dict[str, object], int]:
    """Return the file's fields upgraded to the current schema, and the version it had."""
    try:
        data = json.loads(raw)
    except ValueError:  # also bytes that are not UTF-8 text
        raise _Unusable("it is not valid JSON") from None
    if not isinstance(data, dict):
        raise _Unusable("it does not hold a set of named settings")
    # Files from before versioning have no schema_version: they are version 0.
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise _Unusable(f"its schema_version {version!r} is not a version number")
    try:
        return migrate(data, version), version
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _Unusable(f"it could not be upgraded from settings version {version}") from None
