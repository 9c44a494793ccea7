"""Measured figures (speed.json) shown next to each quantization in Settings."""

from __future__ import annotations

import shutil
from pathlib import Path

from pytestqt.qtbot import QtBot

from app.models.measured_speed import QuantSpeed, record_speed
from app.settings.settings import Settings
from app.ui.settings_dialog import SettingsDialog


def test_settings_show_measured_speed_and_agreement(qtbot: QtBot, converted,
                                                    tmp_path: Path) -> None:
    folder = tmp_path / "tiny"
    shutil.copytree(converted("pg2-tiny-224"), folder)
    record_speed(folder, "Q8_0", QuantSpeed(
        decode_tokens_per_s=14.2, first_token_s=4.2,
        agreement={"reference": "F16", "share": 0.97, "images": 30, "task": "detect"}))
    record_speed(folder, "Q4_K_M", QuantSpeed(decode_tokens_per_s=20.0, machine="another PC"))
    dialog = SettingsDialog(Settings(model_folder=str(folder)))
    qtbot.addWidget(dialog)
    items = {str(dialog.quant_combo.itemData(i)): dialog.quant_combo.itemText(i)
             for i in range(dialog.quant_combo.count())}
    assert items["Q8_0"].endswith(
        "· 14 tok/s, first token 4.2 s here · agrees 97 % with F16 on your images")
    assert "tok/s" not in items["F16"]  # never measured
    assert "tok/s" not in items["Q4_K_M"]  # measured on another machine: not shown here
