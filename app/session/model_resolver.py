"""``--model NAME|DIR`` for every face: a model folder, or the name of an installed model.

Used by ``run``, ``batch``, ``eval``, the speed test and the server; the window picks
folders itself but reads the same models folder (``models_dir_from_settings``).
"""

from __future__ import annotations

from pathlib import Path

from app.errors import ModelFolderError


def models_dir_from_settings(override: Path | str | None = None) -> Path:
    """``override`` (a command's ``--models-dir``) if given, else Settings' models folder."""
    if override is not None:
        return Path(override)
    from app.settings import SettingsStore, default_settings_path

    return Path(SettingsStore(default_settings_path()).load().settings.models_dir)


def resolve_model(value: str | Path, models_dir: Path | str | None = None) -> Path:
    """The model folder ``value`` names: a path that exists (or has several parts) as
    given — the model folder check says what is wrong with it — else the name of a model
    installed under ``models_dir`` (default: Settings' models folder), as
    ``palidesk models list`` shows it. Raises ModelFolderError in plain words."""
    from app.model_files.manifest import MANIFEST_NAME
    from app.models.installed import InstalledModels

    path = Path(value).expanduser()
    if path.exists() or len(path.parts) != 1:
        return path  # a path: the settings file need not even be read
    installed = InstalledModels(models_dir_from_settings(models_dir))
    folder = installed.folder_for(path.name)
    if (folder / MANIFEST_NAME).exists():
        return folder
    names = [m.name for m in installed.list()]
    known = f" Installed models: {', '.join(names)}." if names else (
        " No model is installed yet: `palidesk models pull paligemma2-3b-mix-224`.")
    raise ModelFolderError(
        f"{str(value)!r} is neither a model folder nor the name of an installed "
        f"model.{known}")
