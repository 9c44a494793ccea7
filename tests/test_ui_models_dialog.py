"""The Models dialog: fit badges for this machine, import in the background, use, remove."""

from __future__ import annotations

from pathlib import Path

from app.hardware import HardwareReport
from app.hardware.gpu_info import GpuInfo
from app.hardware.system_info import SystemInfo
from app.models.catalog import CATALOG
from app.models.installed import InstalledModels
from app.ui.models_dialog import BADGE_QUANTS, ModelsDialog
from conftest import TINY

GB = 1 << 30


def _hardware(gpu_free_gb: float | None, ram_gb: float = 16) -> HardwareReport:
    gpus = () if gpu_free_gb is None else (GpuInfo(
        0, "RTX Test", int(12 * GB), int(gpu_free_gb * GB), int((12 - gpu_free_gb) * GB), 0,
        "550.0", (8, 6), None),)
    system = SystemInfo(int(32 * GB), int(ram_gb * GB), 8, "Test CPU", "AVX2")
    return HardwareReport(gpus, None, system, gpu_offload_supported=gpu_free_gb is not None,
                          advice=None)


def _badges(dialog: ModelsDialog, name: str) -> list[str]:
    row = next(i for i, e in enumerate(CATALOG) if e.name == name)
    return [dialog.catalog.item(row, 4 + i).text().split(" · ")[0]
            for i in range(len(BADGE_QUANTS))]


def test_badges_follow_the_hardware(qtbot, tmp_path: Path) -> None:
    big = ModelsDialog(InstalledModels(tmp_path), _hardware(11.5))
    qtbot.addWidget(big)
    assert _badges(big, "paligemma2-3b-mix-224") == ["fits on GPU"] * 3
    assert _badges(big, "paligemma2-28b-pt-896")[0] in ("partial offload", "CPU only",
                                                         "too large")
    cpu = ModelsDialog(InstalledModels(tmp_path), _hardware(None, ram_gb=5))
    qtbot.addWidget(cpu)
    # Q4_K_M fits in 5 GB (PaliDesk takes at most 80 % of it, with room for 2048 new tokens)
    assert _badges(cpu, "paligemma2-3b-mix-224")[-1] == "CPU only"
    assert _badges(cpu, "paligemma2-3b-mix-224")[0] == "too large"  # F16 does not
    cpu.catalog.selectRow(0)
    assert "licence" in cpu.choice_label.text()
    big.done(0)
    cpu.done(0)


def test_import_runs_in_the_background_then_use_and_remove(qtbot, tmp_path: Path) -> None:
    models = InstalledModels(tmp_path / "models")
    dialog = ModelsDialog(models, _hardware(None))
    qtbot.addWidget(dialog)
    dialog.ask_directory = lambda: TINY / "pg2-tiny-224"
    with qtbot.waitSignal(dialog.preparer.worker.finished, timeout=120_000):
        dialog.import_folder()
        assert dialog.busy and not dialog.import_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)
    assert dialog.installed.rowCount() == 1
    assert dialog.installed.item(0, 0).text() == "pg2-tiny-224"
    assert "Q4_K_M" in dialog.installed.item(0, 2).text()
    dialog.installed.selectRow(0)
    with qtbot.waitSignal(dialog.model_chosen) as chosen:
        dialog.use_selected()
    assert chosen.args[0] == models.folder_for("pg2-tiny-224")
    dialog2 = ModelsDialog(models, _hardware(None))
    qtbot.addWidget(dialog2)
    dialog2.confirm_remove = lambda name: True
    dialog2.installed.selectRow(0)
    dialog2.remove_selected()
    assert dialog2.installed.rowCount() == 0 and models.list() == []
    dialog2.done(0)


def test_mask_decoder_row_downloads_and_imports(qtbot, tmp_path: Path,
                                                monkeypatch) -> None:
    from fake_hub import FakeHub
    from mask_weights import write_random_decoder

    from app.models.mask_decoder import URL_VARIABLE, installed_decoder

    weights = write_random_decoder(tmp_path / "vae-oid.npz", dim=16)
    models = InstalledModels(tmp_path / "models")
    dialog = ModelsDialog(models, _hardware(None))
    qtbot.addWidget(dialog)
    assert "not installed" in dialog.decoder_label.text()
    assert "boxes only" in dialog.decoder_label.text()
    assert dialog.get_decoder_button.isVisibleTo(dialog)

    junk = tmp_path / "junk.npz"
    junk.write_text("no")
    dialog.ask_decoder_file = lambda: junk
    dialog.import_decoder_file()
    assert "not a mask decoder" in dialog.status.text()
    assert installed_decoder(models.models_dir) is None

    with FakeHub({"vae-oid.npz": weights.read_bytes()}) as hub:
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv(URL_VARIABLE,
                           f"{hub.url}/{hub.repo_id}/resolve/main/vae-oid.npz")
        with qtbot.waitSignal(dialog.decoder_thread.worker.finished, timeout=30_000):
            dialog.download_decoder()
            assert dialog.busy and not dialog.get_decoder_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=5_000)
    assert installed_decoder(models.models_dir) is not None
    assert dialog.decoder_label.text().startswith("Mask decoder installed")
    assert not dialog.get_decoder_button.isVisibleTo(dialog)

    other = InstalledModels(tmp_path / "other")
    second = ModelsDialog(other, _hardware(None))
    qtbot.addWidget(second)
    second.ask_decoder_file = lambda: weights
    second.import_decoder_file()
    assert installed_decoder(other.models_dir) is not None
    assert "Installed the mask decoder" in second.status.text()
    dialog.done(0)
    second.done(0)


def test_a_catalog_download_brings_the_mask_decoder_along(qtbot, tmp_path: Path,
                                                          monkeypatch) -> None:
    models = InstalledModels(tmp_path / "models")
    dialog = ModelsDialog(models, _hardware(None))
    qtbot.addWidget(dialog)
    started: list[object] = []

    class Recorder:  # stands in for a worker thread: records what it was asked to do
        class start_requested:  # the Qt signal's name
            emit = staticmethod(started.append)

        def cancel(self) -> None: ...
        def stop(self) -> bool:
            return True

    for name in ("preparer", "decoder_thread"):
        getattr(dialog, name).stop()
        setattr(dialog, name, Recorder())
    dialog.catalog.selectRow(0)
    dialog.prepare_selected()
    assert started[0].repo_id == CATALOG[0].repo_id  # type: ignore[attr-defined]
    dialog._on_prepared(models.folder_for(CATALOG[0].name))
    assert started[1] == models.models_dir and dialog.busy  # the decoder download began
    dialog.busy = False
    dialog.ask_directory = lambda: TINY / "pg2-tiny-224"
    dialog.import_folder()
    dialog._on_prepared(models.folder_for("pg2-tiny-224"))
    assert len(started) == 3  # a local import does not go online for the decoder
    dialog.done(0)
