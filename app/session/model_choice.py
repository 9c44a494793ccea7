"""Which model the settings remember, and where choosing a model folder starts.

A model folder or quantization is remembered only once it has loaded: a choice that
failed must not be what every later start tries (and fails) again.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from app.errors import PaliDeskError
from app.settings import Settings


@dataclasses.dataclass(frozen=True)
class ModelRequest:
    """The model folder and quantization setting ("auto" or a type) a load tries."""

    folder: Path
    quantization: str


def kept_until_loaded(old: Settings, new: Settings) -> Settings:
    """``new`` as it is saved at once: its model folder and quantization stay ``old``'s
    until the model they name has loaded (``remember_loaded``)."""
    return dataclasses.replace(new, model_folder=old.model_folder,
                               quantization=old.quantization)


def remember_loaded(settings: Settings, request: ModelRequest) -> Settings | None:
    """The settings to save once ``request`` loaded; None when nothing changes."""
    folder = str(request.folder)
    if settings.model_folder == folder and settings.quantization == request.quantization:
        return None
    return dataclasses.replace(settings, model_folder=folder,
                               quantization=request.quantization)


def start_folder(settings: Settings) -> Path:
    """Where "Choose Model Folder" opens: the model folder, else the models folder, else
    the nearest folder above them that exists (a file dialog opened in a missing folder
    greys out its Choose button), else the home folder."""
    for candidate in (settings.model_folder, settings.models_dir):
        if not candidate:
            continue
        for folder in (Path(candidate), *Path(candidate).parents):
            if folder.is_dir() and folder != Path(folder.anchor):
                return folder
    return Path.home()


def model_display_name(folder: Path) -> str:
    """The name the status bar gives a model folder: its source checkpoint's name (what
    it shows once loaded), else the folder's name."""
    try:
        from app.model_files.model_folder import ModelFolder
        from app.session.load_plan import display_name

        return display_name(ModelFolder(folder))
    except (PaliDeskError, OSError, ValueError):
        return folder.name
