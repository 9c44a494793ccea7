"""tools/bootstrap.py: which Python the venv gets, and that it starts under old Pythons."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "bootstrap.py"


def _load():
    spec = importlib.util.spec_from_file_location("palidesk_bootstrap", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bootstrap = _load()


def test_script_parses_as_python_3_8():
    # README's first command may run it with an old system python3: it must get far
    # enough to say which Python to install, not die with a SyntaxError.
    ast.parse(SCRIPT.read_text(), feature_version=(3, 8))


def test_supported_versions_match_pyproject():
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert spec == ">=3.11,<3.14"
    assert set(bootstrap.SUPPORTED) == {"3.11", "3.12", "3.13"}


def test_picks_the_newest_supported_python(monkeypatch, tmp_path):
    found = {"3.10": "/usr/bin/python3.10", "3.11": "/x/python3.11", "3.12": "/x/python3.12"}
    monkeypatch.setattr(bootstrap, "find_pythons", lambda: found)
    assert bootstrap.choose_python(None, tmp_path / "venv") == ("/x/python3.12", "3.12")
    assert bootstrap.choose_python("3.11", tmp_path / "venv") == ("/x/python3.11", "3.11")


def test_says_what_to_install_when_none_fits(monkeypatch, tmp_path):
    monkeypatch.setattr(bootstrap, "find_pythons", lambda: {"3.10": "/usr/bin/python3"})
    with pytest.raises(SystemExit) as exc:
        bootstrap.choose_python(None, tmp_path / "venv")
    text = str(exc.value)
    assert "3.11, 3.12 or 3.13" in text and "3.10 (/usr/bin/python3)" in text
    assert "apt install python3.12" in text


def test_unsupported_version_asked_for_is_refused(tmp_path):
    with pytest.raises(SystemExit, match=r"needs Python 3\.11, 3\.12 or 3\.13"):
        bootstrap.choose_python("3.10", tmp_path / "venv")


def test_existing_venv_keeps_its_python(monkeypatch, tmp_path):
    venv = tmp_path / "venv"
    python = bootstrap.venv_python(venv)
    python.parent.mkdir(parents=True)
    python.touch()
    monkeypatch.setattr(bootstrap, "python_version", lambda path: "3.11")
    monkeypatch.setattr(bootstrap, "find_pythons", lambda: pytest.fail("must not search"))
    assert bootstrap.choose_python(None, venv) == (str(python), "3.11")
    with pytest.raises(SystemExit, match=r"uses Python 3.11, not 3.12.*rm -rf"):
        bootstrap.choose_python("3.12", venv)


def test_a_python_that_does_not_start_is_skipped(tmp_path):
    # A pyenv shim of a version that is not enabled exits non-zero: not a candidate.
    broken = tmp_path / "python3.13"
    broken.write_text("#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n")
    broken.chmod(0o755)
    assert bootstrap.python_version(str(broken)) is None
    assert bootstrap.python_version(sys.executable) == "{}.{}".format(*sys.version_info[:2])


def test_refusal_is_a_plain_message_not_a_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--venv", str(tmp_path / "v"), "--python", "3.10"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "needs Python 3.11, 3.12 or 3.13" in done.stderr
    assert not (tmp_path / "v").exists()
