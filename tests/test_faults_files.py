"""Fault injection against the files PaliDesk writes: interrupted writes, file modes,
and settings values that would stop the window from opening (issue 10)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
from test_export import _record

from app import atomic_files
from app.export import export_jsonl
from app.model_files.manifest import read_manifest, write_manifest
from app.settings import SettingsStore


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _umask_default() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def test_an_export_over_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "results.jsonl"
    export_jsonl([_record()], target)
    assert _mode(target) == _umask_default()  # a new file: as any program would create it
    target.chmod(0o644)
    export_jsonl([_record()], target)
    assert _mode(target) == 0o644  # not 0600 from the temporary file
    target.chmod(0o664)
    export_jsonl([_record()], target)
    assert _mode(target) == 0o664


def test_a_manifest_rewrite_keeps_its_mode(tmp_path: Path, converted) -> None:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(converted("pg2-tiny-224"), folder)
    (folder / "manifest.json").chmod(0o640)
    write_manifest(folder, read_manifest(folder))
    assert _mode(folder / "manifest.json") == 0o640


def test_a_write_that_fails_part_way_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "file.txt"
    target.write_text("old, complete")

    def disk_full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        atomic_files.write_text_atomic(target, "new " * 1000)
    assert target.read_text() == "old, complete"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_a_killed_model_write_is_overwritten_by_the_next_one(tmp_path: Path) -> None:
    # Multi-gigabyte files reuse one temporary name, so a run killed with -9 does not
    # leave a new copy each time.
    target = tmp_path / "text-f16.gguf"
    leftover = tmp_path / "text-f16.gguf.partial"
    leftover.write_bytes(b"half a file from a killed run")
    with atomic_files.atomic_path(target, reuse_leftover=True) as temp:
        assert temp == leftover
        temp.write_bytes(b"complete")
    assert target.read_bytes() == b"complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text-f16.gguf"]


def test_two_writers_of_one_small_file_never_share_a_temporary(tmp_path: Path) -> None:
    target = tmp_path / "settings.json"
    with atomic_files.atomic_path(target) as first, atomic_files.atomic_path(target) as second:
        assert first != second
        first.write_text("one")
        second.write_text("two")
    assert target.read_text() == "one"  # the outer one finished last


def test_bad_window_layout_in_settings_does_not_stop_the_window(qtbot, tmp_path: Path) -> None:
    # {"schema_version":1,"window_geometry":"abc"} once aborted the window at every start.
    from app.history import HistoryStore
    from app.ui.main_window import MainWindow

    store = SettingsStore(tmp_path / "config" / "settings.json")
    store.path.parent.mkdir(parents=True)
    store.path.write_text('{"schema_version": 1, "window_geometry": "abc", '
                          '"window_state": "abc"}')
    history = HistoryStore(tmp_path / "data" / "history.sqlite3")
    window = MainWindow(store, history, tmp_path / "cache")
    qtbot.addWidget(window)
    window.show()
    assert window.isVisible()
    window.close()
    history.close()
