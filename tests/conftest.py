"""Shared fixtures: the tiny PaliGemma 2 checkpoints, converted once per session."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
TINY = FIXTURES / "tiny"
IMAGES = FIXTURES / "images"


@pytest.fixture(scope="session")
def reference() -> dict:
    return json.loads((TINY / "reference.json").read_text())


@pytest.fixture(scope="session")
def reference_arrays() -> dict[str, np.ndarray]:
    with np.load(TINY / "reference.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory):
    """name -> model folder holding F32, F16, Q8_0 and Q4_K_M text files (built lazily)."""
    from app.convert.converter import convert_checkpoint
    from app.models.quantize import quantize_folder

    root = tmp_path_factory.mktemp("models")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            out = root / name
            convert_checkpoint(TINY / name, out, "f32")
            convert_checkpoint(TINY / name, out, "f16")
            for quant in ("Q8_0", "Q4_K_M"):
                quantize_folder(out, quant)
            built[name] = out
        return built[name]

    return get


@pytest.fixture(autouse=True)
def no_thread_left_running():
    """Fail a test that leaves a thread behind (the app must always join its workers)."""
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for thread in leftover:
        thread.join(timeout=5)
    still = [t.name for t in leftover if t.is_alive()]
    assert not still, f"threads left running: {still}"
