"""The user's settings: a typed record, stored as versioned JSON with migrations."""

from app.settings.migrations import MIGRATIONS, migrate
from app.settings.settings import (
    SCHEMA_VERSION,
    Settings,
    default_models_dir,
    default_settings_path,
)
from app.settings.settings_store import LoadResult, SettingsStore
from app.settings.validation import settings_from_dict

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "LoadResult",
    "Settings",
    "SettingsStore",
    "default_models_dir",
    "default_settings_path",
    "migrate",
    "settings_from_dict",
]
