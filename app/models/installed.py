"""The installed models: one folder per variant under the user's models directory."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from app.errors import ModelFolderError, PaliDeskError
from app.model_files.manifest import MANIFEST_NAME, Manifest, read_manifest

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


@dataclass(frozen=True)
class Leftover:
    """Unfinished work for ``name``: a ``<name>.partial`` folder left by a failed or
    cancelled preparation (preparing ``name`` again continues from it)."""

    name: str
    folder: Path
    size_bytes: int


def folder_size(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:  # deleted meanwhile, or unreadable: it is not ours to count
            continue
    return total


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

    def leftovers(self) -> list[Leftover]:
        """Unfinished preparations, by name, with the disk space each one holds."""
        if not self.models_dir.is_dir():
            return []
        return [Leftover(folder.name.removesuffix(WORK_SUFFIX), folder, folder_size(folder))
                for folder in sorted(self.models_dir.iterdir())
                if folder.is_dir() and folder.name.endswith(WORK_SUFFIX)]

    def clean_up(self) -> int:
        """Delete every unfinished preparation; returns the bytes freed."""
        return sum(self._delete(leftover.folder) for leftover in self.leftovers())

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
        """Delete an installed model and any unfinished work for it (``name`` may also
        name a leftover, with or without its ``.partial`` suffix); returns bytes freed."""
        name = name.removesuffix(WORK_SUFFIX)
        folders = [f for f in (self.folder_for(name), self.work_folder_for(name))
                   if f.is_dir()]
        plain = name.strip() not in ("", ".", "..") and not set(name) & {"/", "\\"}
        if not plain or not folders:
            raise ModelFolderError(
                f"No installed model or unfinished download is called {name!r}. "
                "`palidesk models list` shows both."
            )
        return sum(self._delete(folder) for folder in folders)

    def _delete(self, folder: Path) -> int:
        freed = folder_size(folder)
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            raise PaliDeskError(
                f"PaliDesk could not delete {folder} ({exc.strerror or exc})."
            ) from exc
        return freed

    def disk_use(self) -> int:
        """Bytes used by everything under the models directory, unfinished work included."""
        return folder_size(self.models_dir) if self.models_dir.is_dir() else 0

