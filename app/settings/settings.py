"""The user's settings: one typed record, saved as JSON by ``SettingsStore``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

APP_NAME = "PaliDesk"
# Bump with a new entry in migrations.MIGRATIONS whenever a field is renamed or reshaped.
SCHEMA_VERSION = 1


def default_settings_path() -> Path:
    """Where the settings file lives by default (the platform's per-user config folder)."""
    # appauthor=False keeps Windows from nesting a second "PaliDesk" folder.
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "settings.json"


def default_models_dir() -> Path:
    """Where installed models live by default (the platform's per-user data folder)."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "models"


@dataclass
class Settings:
    """Everything PaliDesk remembers between runs. None means "choose automatically"."""

    schema_version: int = SCHEMA_VERSION
    model_folder: str | None = None  # the installed model folder in use
    models_dir: str = field(default_factory=lambda: str(default_models_dir()))
    # New checkpoints go to the Hugging Face cache, shared with transformers (a field
    # added with a default needs no schema bump: older files simply lack it).
    download_to_hf_cache: bool = True
    quantization: str = "auto"
    gpu_layers: int | None = None
    threads: int | None = None
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 is greedy, like the reference implementation
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    language: str = "en"
    last_task: str = "caption"
    caption_style: str = "caption"
    detect_classes: str = ""
    window_geometry: str | None = None  # base64 of Qt's saveGeometry() bytes
    window_state: str | None = None  # base64 of Qt's saveState() bytes
