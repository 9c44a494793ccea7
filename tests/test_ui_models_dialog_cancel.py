"""The Models window's Cancel during a download on a slow link (issue 18): it returns
within a second and keeps what arrived, and the next download continues from there."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from fake_hub import FakeHub
from huggingface_hub import constants as hf_constants
from huggingface_hub.utils import close_session

from app.hardware import HardwareReport
from app.hardware.system_info import SystemInfo
from app.models.download import download_checkpoint
from app.models.hub_leftovers import hub_partials
from app.models.installed import InstalledModels
from app.models.prepare import PrepareRequest
from app.ui.models_dialog import ModelsDialog
from conftest import TINY

REPO = "google/pg2-tiny-224"
WEIGHTS = "model.safetensors"


def test_cancel_in_the_window_returns_within_a_second_and_keeps_the_bytes(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in ("HF_HUB_OFFLINE", "HF_TOKEN", "HF_HUB_CACHE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    size = 1_000_000
    files = {"config.json": (TINY / "pg2-tiny-224" / "config.json").read_bytes(),
             WEIGHTS: os.urandom(size)}
    system = SystemInfo(16 << 30, 8 << 30, 4, "Test CPU", "AVX2")
    dialog = ModelsDialog(InstalledModels(tmp_path / "models"),
                          HardwareReport((), None, system, gpu_offload_supported=False,
                                         advice=None))
    qtbot.addWidget(dialog)
    try:
        with FakeHub(files, REPO, rate=250_000) as hub:
            dialog.start(PrepareRequest("pg2-tiny-224", ("Q4_K_M",), repo_id=REPO,
                                        endpoint=hub.url))
            qtbot.waitUntil(lambda: "kB/s" in dialog.status.text(), timeout=20_000)
            assert dialog.status.text().startswith(f"download: {WEIGHTS}: ")
            pressed = time.monotonic()
            dialog.cancel_button.click()
            qtbot.waitUntil(lambda: not dialog.busy, timeout=5_000)
            assert time.monotonic() - pressed < 1.0
            assert "cancelled" in dialog.status.text()
            [partial] = hub_partials()
            assert partial.size_bytes > 0 and not partial.in_use
            # The window lists it as unfinished work, with its real size.
            assert "1 unfinished" in dialog.disk_label.text()
            hub.rate = None
            folder = download_checkpoint(REPO, endpoint=hub.url)
            assert hub.gets_of(WEIGHTS)[-1].range == f"bytes={partial.size_bytes}-"
            assert sum(r.body_bytes for r in hub.gets_of(WEIGHTS)) <= size + (64 << 10)
        assert (folder / WEIGHTS).read_bytes() == files[WEIGHTS]
    finally:
        dialog.done(0)
        close_session()
