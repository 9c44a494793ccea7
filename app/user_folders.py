"""PaliDesk's per-user folders (settings, history and models, cache), checked at start.

They follow the platform's conventions (on Linux ``XDG_CONFIG_HOME``, ``XDG_DATA_HOME``,
``XDG_CACHE_HOME``). When one cannot be created — the variable names a file, a read-only
disk — the user is told which folder, why, and which variable to fix, instead of a
traceback from the first module that tried to write there.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from app import file_errors
from app.errors import PaliDeskError

APP_NAME = "PaliDesk"


class UserFolderError(PaliDeskError):
    """A per-user folder PaliDesk needs cannot be created or used."""


def user_folders() -> list[tuple[str, Path, str]]:
    """(what it holds, folder, environment variable that moves it on Linux)."""
    return [
        ("settings", Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
         "XDG_CONFIG_HOME"),
        ("history and models", Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
         "XDG_DATA_HOME"),
        ("cache", Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)),
         "XDG_CACHE_HOME"),
    ]


def ensure_user_folders() -> None:
    """Create the per-user folders; raise UserFolderError saying what to fix."""
    for what, folder, variable in user_folders():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserFolderError(folder_problem(what, folder, variable, exc)) from exc


def folder_problem(what: str, folder: Path, variable: str, exc: OSError) -> str:
    """The sentence for a per-user folder that could not be created."""
    text = (f"PaliDesk keeps its {what} in {folder}, but it cannot create that folder: "
            f"{file_errors.reason(exc, folder)}.")
    value = os.environ.get(variable)
    if value:
        text += (f" {variable} is set to {value}: point it to a folder you can write to, "
                 "or unset it, and start PaliDesk again.")
    return text


def explain(exc: OSError) -> str:
    """A sentence for an OSError that reached the top of a command unhandled: naming
    the per-user folder and its variable when the file lies in one of them."""
    path = Path(exc.filename) if exc.filename else None
    if path is not None:
        for what, folder, variable in user_folders():
            if path == folder or folder in path.parents:
                return folder_problem(what, folder, variable, exc)
        return file_errors.sentence(exc, f"use {path}", path)
    return f"PaliDesk met a system error: {exc.strerror or exc}."
