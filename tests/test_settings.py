"""Settings: defaults, atomic saves, corrupt files kept aside, per-field fallback, migration."""

from __future__ import annotations

import errno
import json
import os
import re
from dataclasses import asdict
from pathlib import Path

import pytest

from app.errors import SettingsError
from app.settings import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Settings,
    SettingsStore,
    default_models_dir,
    default_settings_path,
    migrate,
)

BACKUP_NAME = re.compile(r"^settings\.json\.bad-\d{8}-\d{6}(-\d+)?$")


def _store(tmp_path: Path) -> SettingsStore:
    return SettingsStore(tmp_path / "config" / "settings.json")


def _write(store: SettingsStore, data: object) -> None:
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text(json.dumps(data))


def _backups(store: SettingsStore) -> list[Path]:
    return sorted(p for p in store.path.parent.iterdir() if p.name.startswith("settings.json."))


def test_default_locations_are_per_user_folders() -> None:
    assert default_settings_path().name == "settings.json"
    assert default_settings_path().parent.name == "PaliDesk"
    assert Path(Settings().models_dir) == default_models_dir()
    assert default_models_dir().name == "models"
    assert default_models_dir().parent.name == "PaliDesk"


def test_missing_file_gives_defaults_without_warning(tmp_path: Path) -> None:
    result = _store(tmp_path).load()
    assert result.settings == Settings()
    assert result.warning is None


def test_defaults_are_automatic_and_greedy() -> None:
    settings = Settings()
    assert settings.schema_version == SCHEMA_VERSION
    assert settings.gpu_layers is None and settings.threads is None
    assert settings.temperature == 0.0 and settings.max_new_tokens == 128
    assert settings.quantization == "auto" and settings.model_folder is None


def test_save_then_load_round_trips_every_field(tmp_path: Path) -> None:
    store = _store(tmp_path)
    settings = Settings(
        model_folder="/models/paligemma2-3b-mix-224",
        models_dir=str(tmp_path / "models"),
        quantization="Q4_K_M",
        gpu_layers=20,
        threads=6,
        max_new_tokens=256,
        temperature=0.7,
        top_k=40,
        top_p=0.9,
        seed=1234,
        language="de",
        last_task="detect",
        caption_style="describe",
        detect_classes="cat; dog",
        window_geometry="AdnQywADAAA=",
        window_state="AAAA/w==",
    )
    store.save(settings)
    result = store.load()
    assert result.warning is None
    assert result.settings == settings


def test_saved_file_is_json_with_schema_version_first(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.save(Settings(threads=3))
    data = json.loads(store.path.read_text())
    assert next(iter(data)) == "schema_version"
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["threads"] == 3
    assert set(data) == set(asdict(Settings()))


def test_save_is_atomic_and_leaves_no_temp_file(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.save(Settings(seed=1))
    old_text = store.path.read_text()
    # A reader that opened the file before the save must see the old file whole: the
    # new one is written beside it and renamed over it, never written in place.
    with store.path.open() as reader:
        before = os.stat(store.path).st_ino
        store.save(Settings(seed=7))
        assert reader.read() == old_text
    assert os.stat(store.path).st_ino != before
    assert [p.name for p in store.path.parent.iterdir()] == ["settings.json"]
    assert store.load().settings.seed == 7


def test_save_keeps_the_file_mode(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.save(Settings())
    assert store.path.stat().st_mode & 0o777 == 0o666 & ~_umask()  # a new file: the umask
    store.path.chmod(0o640)
    store.save(Settings(seed=3))
    assert store.path.stat().st_mode & 0o777 == 0o640  # a replaced one keeps its mode


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_window_layout_that_is_not_base64_is_dropped_with_a_note(tmp_path: Path) -> None:
    import base64

    store = _store(tmp_path)
    _write(store, {"schema_version": 1, "window_geometry": "abc", "window_state": "é!",
                   "seed": 5})
    result = store.load()
    assert result.settings.window_geometry is None and result.settings.window_state is None
    assert result.settings.seed == 5  # the rest is kept
    assert result.warning is not None and "window_geometry" in result.warning
    # What the window does with the values must work for whatever load returns.
    for value in (result.settings.window_geometry, result.settings.window_state):
        assert value is None or base64.b64decode(value) is not None
    _write(store, {"schema_version": 1, "window_geometry": "AdnQywADAAA="})
    assert store.load().settings.window_geometry == "AdnQywADAAA="


def test_save_on_a_full_disk_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path)
    store.save(Settings(seed=1))

    def full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(SettingsError, match="disk is full") as info:
        store.save(Settings(seed=2))
    assert str(store.path) in str(info.value)
    monkeypatch.undo()
    assert [p.name for p in store.path.parent.iterdir()] == ["settings.json"]
    assert store.load().settings.seed == 1


def test_save_without_permission_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*_: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", denied)
    with pytest.raises(SettingsError, match="not allowed"):
        _store(tmp_path).save(Settings())


def test_corrupt_json_is_kept_aside_with_a_warning(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.path.parent.mkdir(parents=True)
    store.path.write_text('{"threads": 4,, oops')
    result = store.load()
    assert result.settings == Settings()
    assert not store.path.exists()
    (backup,) = _backups(store)
    assert BACKUP_NAME.match(backup.name)
    assert backup.read_text() == '{"threads": 4,, oops'
    assert result.warning is not None
    assert "not valid JSON" in result.warning
    assert str(backup) in result.warning
    assert "default settings" in result.warning


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"[1, 2, 3]", "does not hold a set of named settings"),
        (b'"just text"', "does not hold a set of named settings"),
        (b'{"schema_version": "one"}', "is not a version number"),
        (b'{"schema_version": -3}', "is not a version number"),
        (b'{"schema_version": true}', "is not a version number"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"", "not valid JSON"),
    ],
)
def test_unusable_files_are_kept_aside(tmp_path: Path, content: bytes, reason: str) -> None:
    store = _store(tmp_path)
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(content)
    result = store.load()
    assert result.settings == Settings()
    assert result.warning is not None and reason in result.warning
    (backup,) = _backups(store)
    assert backup.read_bytes() == content


def test_two_bad_files_in_one_second_keep_both_backups(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.path.parent.mkdir(parents=True)
    for content in ("bad one", "bad two"):
        store.path.write_text(content)
        assert store.load().warning is not None
    assert sorted(p.read_text() for p in _backups(store)) == ["bad one", "bad two"]
    assert all(BACKUP_NAME.match(p.name) for p in _backups(store))


def test_unreadable_path_gives_defaults_and_a_warning_without_moving_it(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.path.mkdir(parents=True)  # a folder where the file should be
    result = store.load()
    assert result.settings == Settings()
    assert result.warning is not None and "could not read" in result.warning
    assert store.path.is_dir()


def test_unknown_keys_are_ignored(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _write(store, {"schema_version": 1, "threads": 2, "favourite_colour": "blue"})
    result = store.load()
    assert result.warning is None
    assert result.settings.threads == 2


def test_a_field_of_the_wrong_type_falls_back_alone(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _write(
        store,
        {
            "schema_version": 1,
            "threads": "four",
            "max_new_tokens": True,
            "detect_classes": ["cat", 3],
            "model_folder": 12,
            "seed": 99,
            "language": "fr",
        },
    )
    result = store.load()
    settings = result.settings
    assert settings.threads is None
    assert settings.max_new_tokens == 128
    assert settings.detect_classes == ""
    assert settings.model_folder is None
    assert settings.seed == 99 and settings.language == "fr"
    assert not _backups(store)  # the file itself was fine
    warning = result.warning
    assert warning is not None
    for name in ("threads", "max_new_tokens", "detect_classes", "model_folder"):
        assert name in warning
    assert "seed" not in warning and "language" not in warning
    assert "a whole number or empty" in warning


def test_whole_numbers_are_accepted_for_decimal_fields(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _write(store, {"schema_version": 1, "temperature": 1, "top_p": 1})
    result = store.load()
    assert result.warning is None
    assert result.settings.temperature == 1.0 and isinstance(result.settings.temperature, float)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("max_new_tokens", 5000, 2048),
        ("max_new_tokens", 0, 1),
        ("threads", 0, None),
        ("threads", -2, None),
        ("gpu_layers", -1, None),
        ("temperature", -0.5, 0.0),
        ("top_p", 1.5, 1.0),
        ("top_p", 0.0, 1.0),
        ("top_p", -1.0, 1.0),
        ("top_k", -3, 0),
        ("language", "xx", "en"),
        ("last_task", "paint", "caption"),
        ("caption_style", "poem", "caption"),
        ("models_dir", "  ", Settings().models_dir),
    ],
)
def test_out_of_range_values_are_clamped_with_a_warning(
    tmp_path: Path, field: str, value: object, expected: object
) -> None:
    store = _store(tmp_path)
    _write(store, {"schema_version": 1, field: value, "seed": 5})
    result = store.load()
    assert getattr(result.settings, field) == expected
    assert result.settings.seed == 5
    assert result.warning is not None and field in result.warning


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_new_tokens", 1),
        ("max_new_tokens", 2048),
        ("threads", 1),
        ("top_p", 1.0),
        ("top_p", 0.01),
        ("temperature", 0.0),
        ("gpu_layers", 0),
    ],
)
def test_values_at_the_edges_are_kept(tmp_path: Path, field: str, value: object) -> None:
    store = _store(tmp_path)
    _write(store, {"schema_version": 1, field: value})
    result = store.load()
    assert result.warning is None
    assert getattr(result.settings, field) == value


def test_non_finite_numbers_are_replaced(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.path.parent.mkdir(parents=True)
    store.path.write_text('{"schema_version": 1, "temperature": NaN, "top_p": Infinity}')
    result = store.load()
    assert result.settings.temperature == 0.0 and result.settings.top_p == 1.0
    assert result.warning is not None
    assert "temperature" in result.warning and "top_p" in result.warning


def test_newer_schema_loads_what_it_can_and_warns(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _write(store, {"schema_version": SCHEMA_VERSION + 5, "threads": 8, "new_thing": {"x": 1}})
    result = store.load()
    assert result.settings.threads == 8
    assert result.settings.schema_version == SCHEMA_VERSION
    assert result.warning is not None and "newer version of PaliDesk" in result.warning
    assert store.path.exists() and not _backups(store)


def test_every_older_version_has_a_migration() -> None:
    assert sorted(MIGRATIONS) == list(range(SCHEMA_VERSION))


def test_version_0_file_is_migrated(tmp_path: Path) -> None:
    store = _store(tmp_path)
    # Version 0: no schema_version, "quant" instead of "quantization", -1 for automatic.
    _write(store, {"quant": "Q4_K_M", "gpu_layers": -1, "threads": 4})
    result = store.load()
    assert result.warning is None
    assert result.settings.quantization == "Q4_K_M"
    assert result.settings.gpu_layers is None
    assert result.settings.threads == 4
    store.save(result.settings)
    data = json.loads(store.path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["quantization"] == "Q4_K_M" and "quant" not in data


def test_migrate_steps_through_versions_without_touching_the_input() -> None:
    old = {"quant": "Q8_0", "gpu_layers": 12}
    upgraded = migrate(old, 0)
    assert upgraded == {"quantization": "Q8_0", "gpu_layers": 12, "schema_version": 1}
    assert old == {"quant": "Q8_0", "gpu_layers": 12}
    assert migrate({"schema_version": 1, "seed": 3}, 1) == {"schema_version": 1, "seed": 3}


def test_migration_keeps_an_explicit_new_name() -> None:
    assert migrate({"quant": "Q8_0", "quantization": "F16"}, 0)["quantization"] == "F16"


def test_a_failing_migration_sets_the_file_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(data: dict[str, object]) -> dict[str, object]:
        raise KeyError("quant")

    monkeypatch.setitem(MIGRATIONS, 0, broken)
    store = _store(tmp_path)
    _write(store, {"quant": "Q8_0"})
    result = store.load()
    assert result.settings == Settings()
    assert result.warning is not None and "upgraded from settings version 0" in result.warning
    assert len(_backups(store)) == 1
