"""Shared fixtures: the tiny PaliGemma 2 checkpoints, converted once per session."""

from __future__ import annotations

import atexit
import gc
import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

# Qt tests run without a display in CI (and wherever none is set).
if os.environ.get("CI") or not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# The user's own settings, history and models folder are never read or written: a test
# run gets folders of its own, which its xdist workers and the CLI runs they start inherit
# (one set for all: parametrized ids name the default models folder, and every worker must
# collect the same ids). Tests that need other folders still set them with monkeypatch.
if "PALIDESK_TEST_FOLDERS" not in os.environ:
    os.environ["PALIDESK_TEST_FOLDERS"] = tempfile.mkdtemp(prefix="palidesk-tests-")
    atexit.register(shutil.rmtree, os.environ["PALIDESK_TEST_FOLDERS"], ignore_errors=True)
_USER_FOLDERS = Path(os.environ["PALIDESK_TEST_FOLDERS"])
for _variable in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
    os.environ[_variable] = str(_USER_FOLDERS / _variable.lower())

FIXTURES = Path(__file__).parent / "fixtures"
TINY = FIXTURES / "tiny"
IMAGES = FIXTURES / "images"


def _pin_this_xdist_worker() -> None:
    """Give each xdist worker CPUs of its own, which the model threads and the CLI runs it
    starts inherit (the engine's default thread count is the CPUs it may use).

    llama.cpp's threads wait for each other after every graph node: two workers running
    2-thread models on 2 shared cores slowed each other many times over (docs/packaging.md,
    "The test suite"), so each worker is a smaller machine instead. A test that needs more
    threads than its worker has (tests/test_determinism.py) widens its own subprocess.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... in a worker
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if not worker.startswith("gw") or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if count > len(cpus):
        return  # more workers than CPUs: nothing to divide
    os.environ.setdefault("PALIDESK_TEST_ALL_CPUS", ",".join(map(str, cpus)))
    os.sched_setaffinity(0, cpus[int(worker[2:]) % count::count])


_pin_this_xdist_worker()


def every_cpu() -> None:
    """``preexec_fn`` for a subprocess that needs the whole machine, not its worker's
    CPUs: 2-thread runs (tests/test_determinism.py), and Ray, whose local instance (its
    servers, its workers, their models) crowded onto one CPU: the three longest Ray tests
    took 57 s so, 45 s with both (one suite run each, idle machine)."""
    every = os.environ.get("PALIDESK_TEST_ALL_CPUS")
    if every and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(cpu) for cpu in every.split(",")})


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


@pytest.fixture(scope="session")
def mask_decoder_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random mask decoder (tests/mask_weights.py) as vae-oid.npz; read-only: a test that
    changes it works on a copy."""
    from mask_weights import write_random_decoder

    return write_random_decoder(tmp_path_factory.mktemp("decoder") / "vae-oid.npz")


@pytest.fixture
def image_view(qtbot):
    """An ImageView shown at 640x480 (offscreen), ready for images and overlays."""
    from app.ui.image_view import ImageView

    widget = ImageView()
    qtbot.addWidget(widget)
    widget.resize(640, 480)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


@pytest.fixture
def result_store(tmp_path: Path):
    """A ResultStore over a new history database in ``tmp_path``, closed afterwards."""
    from app.history import HistoryStore
    from app.session import ResultStore

    history = HistoryStore(tmp_path / "history.sqlite3")
    yield ResultStore(history)
    history.close()


@pytest.fixture
def private_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A private HF_HOME (returned); no real token, cache, telemetry, proxy or offline switch
    of the person running the tests. Pooled connections are closed afterwards, so none to
    a stopped fake hub outlives the test."""
    from huggingface_hub import constants as hf_constants
    from huggingface_hub.utils import close_session

    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in ("HF_HUB_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE",
                 "HUGGINGFACE_HUB_CACHE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    # huggingface_hub reads these at import; patch the values it uses now.
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    yield home
    close_session()


@pytest.fixture(scope="session")
def tiny_f16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pg2-tiny-224 converted to F16 only (``--model`` then needs no ``--quant``);
    read-only: a test that changes model files works on a copy."""
    from app.convert.converter import convert_checkpoint

    out = tmp_path_factory.mktemp("tiny-f16") / "tiny"
    convert_checkpoint(TINY / "pg2-tiny-224", out, "f16")
    return out


@pytest.fixture(autouse=True)
def collect_qt_garbage():
    """Collect each test's garbage in the main thread: a widget left in a reference cycle
    and collected later by a Python thread of another test (a worker running a model)
    would be destroyed outside the GUI thread, which makes Qt abort the process.

    What survives is then frozen (moved out of the collector's sight): without that, each
    full collection walks every object that numpy, Qt, llama.cpp and Ray ever made, which
    cost up to half a second per test, minutes per suite. A frozen object that becomes
    cyclic garbage later is never collected, so never destroyed in the wrong thread either.
    """
    yield
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def no_thread_left_running():
    """Fail a test that leaves a thread behind (the app must always join its workers).

    Python threads are checked directly; Qt threads (the engine's worker thread) through
    the registry of live EngineThreads. Threads Python merely saw running a callback
    (``_DummyThread``, e.g. llama.cpp's log callback from a compute thread) are not ours.
    """
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate()
                if t not in before and t.is_alive() and not isinstance(t, threading._DummyThread)]
    for thread in leftover:
        thread.join(timeout=5)
    still = [t.name for t in leftover if t.is_alive()]
    assert not still, f"threads left running: {still}"
    engine_worker = sys.modules.get("app.ui.engine_worker")
    if engine_worker is not None:
        running = [t for t in list(engine_worker.LIVE_THREADS) if t.thread.isRunning()]
        for engine_thread in running:
            engine_thread.stop()
        assert not running, "an engine thread was left running"
