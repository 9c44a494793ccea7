"""Files PaliDesk ships beside its code: the icon, the built-in test image and model.

They live in the repository's ``resources/`` folder when PaliDesk runs from source, and
in ``resources/`` under the bundle's data folder (``sys._MEIPASS``) when it runs frozen
(PyInstaller); ``resource_path`` hides the difference.
"""

from __future__ import annotations

import sys
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def resources_dir() -> Path:
    """The folder that holds PaliDesk's resources, frozen or not."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    root = Path(frozen_root) if frozen_root else _SOURCE_ROOT
    return root / "resources"


def resource_path(*parts: str) -> Path:
    """The path of a resource, e.g. ``resource_path("icons", "palidesk-256.png")``."""
    return resources_dir().joinpath(*parts)
