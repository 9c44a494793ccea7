"""``--model NAME|DIR``: a model folder, or the name of an installed model."""

from __future__ import annotations

from pathlib import Path

from app.errors import ModelFolderError


def resolve_model_argument(value: str | Path, models_dir: Path | None = None) -> Path:
    """The model folder ``value`` names: a folder path as is, else an installed model's
    name (from ``palidesk models list``). Raises ModelFolderError in plain words."""
    path = Path(value).expanduser()
    if path.is_dir():
        return path
    from app.models.installed import InstalledModels

    if models_dir is None:
        from app.settings import SettingsStore, default_settings_path

        models_dir = Path(SettingsStore(default_settings_path()).load().settings.models_dir)
    installed = InstalledModels(models_dir)
    found = installed.get(str(value)) if len(path.parts) == 1 else None
    if found is not None:
        return found.folder
    names = ", ".join(m.name for m in installed.list()) or "none yet"
    raise ModelFolderError(
        f"{value} is neither a model folder nor an installed model (installed: {names}). "
        "Get one with `palidesk models pull NAME`."
    )
