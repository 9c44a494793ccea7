"""The Models dialog's advice: one checkpoint and quantization, colours, speed, Close."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QDialogButtonBox

from app.hardware import HardwareReport
from app.hardware.gpu_info import GpuInfo
from app.hardware.system_info import SystemInfo
from app.models.catalog import CATALOG
from app.models.installed import InstalledModels
from app.models.recommend import recommend
from app.ui.models_dialog import ModelsDialog

GB = 1 << 30


def hardware(gpu_free_gb: float | None, ram_gb: float = 16) -> HardwareReport:
    gpus = () if gpu_free_gb is None else (GpuInfo(
        0, "RTX Test", int(80 * GB), int(gpu_free_gb * GB), 0, 0, "550.0", (8, 6), None),)
    system = SystemInfo(int(64 * GB), int(ram_gb * GB), 8, "Test CPU", "AVX2")
    return HardwareReport(gpus, None, system, gpu_offload_supported=gpu_free_gb is not None,
                          advice=None)


def test_recommendation_on_a_cpu_is_the_3b_mix_at_q4_k_m() -> None:
    advice = recommend(hardware(None, 16))
    assert advice is not None
    assert (advice.entry.name, advice.choice.quant) == ("paligemma2-3b-mix-224", "Q4_K_M")
    assert advice.sentence().startswith(
        "Recommended here: paligemma2-3b-mix-224 with Q4_K_M, on the CPU, ~")
    assert advice.sentence().endswith("tok/s estimated.")
    assert recommend(hardware(None, 16), task="ocr").entry.name == "paligemma2-3b-mix-448"


def test_recommendation_with_a_big_gpu_takes_the_largest_mix_on_it() -> None:
    advice = recommend(hardware(78.0, 64))
    assert advice.entry.kind == "mix" and advice.entry.params == "28b"
    assert advice.choice.device == "gpu" and advice.speed is None


def test_nothing_fits_gives_no_recommendation() -> None:
    assert recommend(hardware(None, 1)) is None


def test_dialog_guides_the_choice(qtbot, tmp_path: Path) -> None:
    dialog = ModelsDialog(InstalledModels(tmp_path), hardware(None, 16))
    qtbot.addWidget(dialog)
    assert "paligemma2-3b-mix-224 with Q4_K_M" in dialog.recommend_label.text()
    kinds = {CATALOG[r].kind: dialog.catalog.item(r, 1).text()
             for r in range(dialog.catalog.rowCount())}
    assert kinds["pt"] == "pt (for fine-tuning)" and kinds["mix"].startswith("mix")
    legend = dialog.legend_label.text()
    for badge in ("fits on GPU", "partial offload", "CPU only", "too large"):
        assert badge in legend
    row = next(i for i, e in enumerate(CATALOG) if e.name == "paligemma2-3b-mix-224")
    dialog.catalog.selectRow(row)
    assert "Q4_K_M reads" in dialog.choice_label.text()
    assert "tokens/s estimated" in dialog.choice_label.text()
    # An ordinary Close button; Cancel only appears while something is prepared.
    assert dialog.cancel_button.isHidden()
    close = dialog.close_buttons.button(QDialogButtonBox.StandardButton.Close)
    dialog.show()
    close.click()
    assert not dialog.isVisible()


def test_installed_model_shows_its_measured_speed(qtbot, tmp_path: Path) -> None:
    from app.models.measured_speed import QuantSpeed, record_speed

    models = InstalledModels(tmp_path)
    folder = models.folder_for("paligemma2-3b-mix-224")
    folder.mkdir(parents=True)
    record_speed(folder, "Q4_K_M", QuantSpeed(decode_tokens_per_s=13.5, first_token_s=4.4))
    dialog = ModelsDialog(models, hardware(None, 16))
    qtbot.addWidget(dialog)
    row = next(i for i, e in enumerate(CATALOG) if e.name == "paligemma2-3b-mix-224")
    dialog.catalog.selectRow(row)
    assert "Measured: Q4_K_M 14 tok/s, first token 4.4 s here." in dialog.choice_label.text()
    dialog.done(0)  # joins the dialog's prepare thread
