"""The architecture as import contracts (pyproject.toml, [tool.importlinter]): only app/ui
imports Qt, even indirectly; the packages keep their layers; no module imports in a circle.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    # A subprocess with the root first on sys.path, so the copy in a test is the `app`
    # that grimp analyses (not the editable install).
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command;"
         " sys.exit(lint_imports_command(['--no-cache', '--no-logo']))"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_the_import_contracts_are_kept() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_qt_import_below_app_ui_breaks_them(tmp_path: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(ROOT / "app", tmp_path / "app",
                    ignore=shutil.ignore_patterns("__pycache__"))
    prompts = tmp_path / "app" / "tasks" / "prompts.py"
    prompts.write_text(prompts.read_text() + "\nimport PySide6  # noqa\n")
    result = _lint_imports(tmp_path)
    assert result.returncode == 1
    assert "app.tasks is not allowed to import PySide6" in result.stdout
