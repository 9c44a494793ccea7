"""The settings dialog: installed quantizations of a model folder, and edits on a copy."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.model_files.manifest import Manifest, ModelFile, write_manifest
from app.settings.settings import Settings
from app.ui.settings_dialog import AUTOMATIC_QUANT_LABEL, SettingsDialog, format_size


def _model_folder(path: Path, name: str, files: dict[str, int], missing: tuple[str, ...] = ()
                  ) -> Path:
    """A folder with a manifest listing text files ``type -> size`` plus a vision file;
    types in ``missing`` are listed but not on disk."""
    path.mkdir()
    entries = [ModelFile("text", type_, f"text-{type_.lower()}.gguf", size, "")
               for type_, size in files.items()]
    entries.append(ModelFile("vision", "F16", "vision-f16.gguf", 800_000_000, ""))
    for entry in entries:
        if entry.type not in missing:
            (path / entry.name).write_bytes(b"GGUF")
    manifest = Manifest(
        source={"name": name}, image_size=224, image_tokens=256, pair_id="pair",
        converter_version="1", text={"layers": 26}, vision={"layers": 27}, files=entries,
    )
    write_manifest(path, manifest)
    return path


@pytest.fixture
def models(tmp_path: Path) -> tuple[Path, Path]:
    mix = _model_folder(
        tmp_path / "mix",
        "paligemma2-3b-mix-224",
        {"Q4_K_M": 1_640_000_000, "F16": 5_230_000_000, "Q8_0": 2_800_000_000},
        missing=("Q8_0",),
    )
    small = _model_folder(tmp_path / "small", "tiny-pt", {"Q8_0": 12_500_000})
    return mix, small


def _dialog(qtbot: QtBot, settings: Settings) -> SettingsDialog:
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    return dialog


def _quant_items(dialog: SettingsDialog) -> list[str]:
    combo = dialog.quant_combo
    return [combo.itemText(index) for index in range(combo.count())]


def test_lists_the_installed_quantizations_best_first(
    qtbot: QtBot, models: tuple[Path, Path]
) -> None:
    mix, _ = models
    dialog = _dialog(qtbot, Settings(model_folder=str(mix), quantization="Q4_K_M"))
    # Q8_0 is in the manifest but not on disk, so it is not offered.
    assert _quant_items(dialog) == [AUTOMATIC_QUANT_LABEL, "F16 — 5.2 GB", "Q4_K_M — 1.6 GB"]
    assert dialog.quant_combo.currentData() == "Q4_K_M"
    info = dialog.folder_info.text()
    assert "paligemma2-3b-mix-224" in info and "F16, Q4_K_M" in info
    assert dialog.folder_info.styleSheet() == ""


def test_changing_the_folder_refreshes_the_list(
    qtbot: QtBot, models: tuple[Path, Path]
) -> None:
    mix, small = models
    dialog = _dialog(qtbot, Settings(model_folder=str(mix), quantization="F16"))
    dialog.folder_edit.setText(str(small))
    assert _quant_items(dialog) == [AUTOMATIC_QUANT_LABEL, "Q8_0 — 12.5 MB"]
    assert dialog.quant_combo.currentData() == "auto"  # F16 is not installed there
    dialog.folder_edit.setText(str(mix))
    assert dialog.quant_combo.currentData() == "F16"  # the user's pick comes back


def test_a_folder_that_is_not_a_model_folder_says_why(
    qtbot: QtBot, tmp_path: Path
) -> None:
    dialog = _dialog(qtbot, Settings(model_folder=str(tmp_path)))
    assert "not a PaliDesk model folder" in dialog.folder_info.text()
    assert "color" in dialog.folder_info.styleSheet()
    assert _quant_items(dialog) == [AUTOMATIC_QUANT_LABEL]
    assert dialog.result_settings().quantization == "auto"


def test_browse_fills_the_folder(
    qtbot: QtBot, models: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, small = models
    dialog = _dialog(qtbot, Settings())
    monkeypatch.setattr(dialog, "ask_folder", lambda start: str(small))
    dialog.browse_button.click()
    assert dialog.folder_edit.text() == str(small)
    assert dialog.result_settings().model_folder == str(small)


def test_edits_come_back_as_new_settings(qtbot: QtBot, models: tuple[Path, Path]) -> None:
    mix, _ = models
    original = Settings(model_folder=str(mix))
    before = asdict(original)
    dialog = _dialog(qtbot, original)
    assert dialog.gpu_auto_check.isChecked() and not dialog.gpu_spin.isEnabled()
    dialog.quant_combo.setCurrentIndex(dialog.quant_combo.findData("Q4_K_M"))
    dialog.gpu_auto_check.setChecked(False)
    assert dialog.gpu_spin.isEnabled()
    dialog.gpu_spin.setValue(10)
    dialog.threads_auto_check.setChecked(False)
    dialog.threads_spin.setValue(3)
    dialog.max_tokens_spin.setValue(4096)  # clamped to the limit
    dialog.sampling_combo.setCurrentIndex(1)
    dialog.temperature_spin.setValue(0.8)
    dialog.top_k_spin.setValue(40)
    dialog.top_p_spin.setValue(0.9)
    dialog.seed_spin.setValue(7)
    result = dialog.result_settings()
    assert asdict(original) == before  # untouched
    assert result is not original
    assert result.quantization == "Q4_K_M"
    assert (result.gpu_layers, result.threads, result.max_new_tokens) == (10, 3, 2048)
    assert (result.temperature, result.top_k, result.top_p, result.seed) == (0.8, 40, 0.9, 7)


def test_greedy_is_the_default_and_disables_sampling_fields(qtbot: QtBot) -> None:
    dialog = _dialog(qtbot, Settings())
    assert dialog.sampling_combo.currentIndex() == 0
    assert not dialog.temperature_spin.isEnabled()
    result = dialog.result_settings()
    assert result.temperature == 0.0
    assert result == Settings()  # opening and pressing OK changes nothing


def test_sampling_settings_are_shown(qtbot: QtBot) -> None:
    dialog = _dialog(qtbot, Settings(temperature=1.2, top_k=5, gpu_layers=0, threads=2))
    assert dialog.sampling_combo.currentIndex() == 1
    assert dialog.temperature_spin.isEnabled()
    assert dialog.temperature_spin.value() == pytest.approx(1.2)
    assert not dialog.gpu_auto_check.isChecked() and dialog.gpu_spin.value() == 0
    assert dialog.threads_spin.value() == 2
    dialog.sampling_combo.setCurrentIndex(0)
    assert dialog.result_settings().temperature == 0.0


def test_fit_label_is_a_hidden_slot_for_later(qtbot: QtBot) -> None:
    dialog = _dialog(qtbot, Settings())
    assert dialog.fit_label.isHidden()
    dialog.set_fit_note("Fits this GPU")
    assert not dialog.fit_label.isHidden()
    dialog.set_fit_note(None)
    assert dialog.fit_label.isHidden()


def test_format_size() -> None:
    assert format_size(1_640_000_000) == "1.6 GB"
    assert format_size(12_500_000) == "12.5 MB"
    assert format_size(512) == "512 B"
