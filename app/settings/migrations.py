"""Upgrades of older settings files, one schema version at a time."""

from __future__ import annotations

from collections.abc import Callable

from app.settings.settings import SCHEMA_VERSION

SettingsDict = dict[str, object]


def _version_0_to_1(data: SettingsDict) -> SettingsDict:
    # Version 0 (files without "schema_version") called the quantization "quant" and
    # wrote -1 for "offload as many layers as fit"; version 1 writes None for automatic.
    upgraded = dict(data)
    if "quant" in upgraded:
        quant = upgraded.pop("quant")
        upgraded.setdefault("quantization", quant)
    if upgraded.get("gpu_layers") == -1:
        upgraded["gpu_layers"] = None
    return upgraded


# Version N -> the function that turns a version N dict into a version N + 1 dict.
MIGRATIONS: dict[int, Callable[[SettingsDict], SettingsDict]] = {
    0: _version_0_to_1,
}


def migrate(data: SettingsDict, version: int) -> SettingsDict:
    """Upgrade ``data``, written at schema ``version``, to ``SCHEMA_VERSION``.

    A version newer than ``SCHEMA_VERSION`` is returned unchanged: the caller loads the
    fields it knows. Raises ``KeyError`` if a step is missing.
    """
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version += 1
        data["schema_version"] = version
    return data
