"""The installed models: one folder per variant under the user's models directory."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from app.errors import ModelFolderError, PaliDeskError
from app.models.manifest import MANIFEST_NAME, Manifest, read_manifest

# A folder being prepared or imported carries this suffix until it is complete, so a
# half-made model is never listed as installed.
WORK_SUFFIX = ".partial"


@dataclass(frozen=True)
class InstalledModel:
    name: str
    folder: Path
    manifest: Manifest
    size_bytes: int

    @property
    def text_types(self) -> list[str]:
        return [f.type for f in self.manifest.files
                if f.role == "text" and (self.folder / f.name).exists()]


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class InstalledModels:
    """List, find and remove the model folders under ``models_dir``."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = Path(models_dir)

    def folder_for(self, name: str) -> Path:
        return self.models_dir / name

    def work_folder_for(self, name: str) -> Path:
        return self.models_dir / (name + WORK_SUFFIX)

    def list(self) -> list[InstalledModel]:
        """Complete model folders, by name; damaged ones are skipped (see ``problems``)."""
        models = []
        if not self.models_dir.is_dir():
            return models
        for folder in sorted(self.models_dir.iterdir()):
            if not folder.is_dir() or folder.name.endswith(WORK_SUFFIX):
                continue
            if not (folder / MANIFEST_NAME).exists():
                continue
            try:
                manifest = read_manifest(folder)
            except ModelFolderError:
                continue
            models.append(InstalledModel(folder.name, folder, manifest, folder_size(folder)))
        return models

    def problems(self) -> list[str]:
        """Sentences about folders that look like models but cannot be used."""
        notes = []
        if not self.models_dir.is_dir():
            return notes
        for folder in sorted(self.models_dir.iterdir()):
            if folder.is_dir() and (folder / MANIFEST_NAME).exists():
                try:
                    read_manifest(folder)
                except ModelFolderError as exc:
                    notes.append(str(exc))
        return notes

    def get(self, name: str) -> InstalledModel | None:
        return next((m for m in self.list() if m.name == name), None)

    def remove(self, name: str) -> int:
        """Delete an installed model (and any unfinished work for it); returns bytes freed."""
        freed = 0
        for folder in (self.folder_for(name), self.work_folder_for(name)):
            if folder.exists():
                freed += folder_size(folder)
                try:
                    shutil.rmtree(folder)
                except OSError as exc:
                    raise PaliDeskError(
                        f"PaliDesk could not delete {folder} ({exc.strerror or exc})."
                    ) from exc
        if not freed:
            raise ModelFolderError(f"No installed model is called {name!r}.")
        return freed

    def disk_use(self) -> int:
        """Bytes used by everything under the models directory, unfinished work included."""
        return folder_size(self.models_dir) if self.models_dir.is_dir() else 0
