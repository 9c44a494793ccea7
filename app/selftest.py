"""``palidesk --self-test``: prove that this PaliDesk works, frozen or from source.

It prints the versions, the llama.cpp build and system info, whether GPU offload is
available and what hardware it sees, then opens the real main window (offscreen unless a
Qt platform is chosen), loads the built-in tiny model through the real engine worker,
captions the built-in image and checks the answer. Exit status 0 means every step
passed; otherwise the last line says which step failed and why.

Everything it writes (settings, history, thumbnails) goes to a temporary folder, never
the user's. ``PALIDESK_SELFTEST_MODEL`` / ``PALIDESK_SELFTEST_IMAGE`` point it at another
model folder or image, ``PALIDESK_SELFTEST_TIMEOUT`` (seconds) changes how long it waits.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TextIO

from app import __version__
from app.errors import PaliDeskError
from app.resources import resource_path

MODEL_ENV = "PALIDESK_SELFTEST_MODEL"
IMAGE_ENV = "PALIDESK_SELFTEST_IMAGE"
TIMEOUT_ENV = "PALIDESK_SELFTEST_TIMEOUT"
DEFAULT_TIMEOUT_S = 120.0
PASSED = "self-test passed"
FAILED = "self-test FAILED"

Say = Callable[[str, str], None]


class WindowResult(Protocol):
    tokens: list[int]
    stop_reason: str
    seconds: float


class CheckWindow(Protocol):
    """The window half (app.ui.selftest_window.check_window). The caller hands it in: this
    module is Qt-free, so it never imports app.ui itself."""

    def __call__(self, model: Path, image: Path, *, gpu_layers: int, timeout_s: float,
                 say: Say) -> WindowResult: ...


class SelfTestFailure(PaliDeskError):
    """A self-test step did not pass; the message says which and why."""


def builtin_model() -> Path:
    return Path(os.environ.get(MODEL_ENV) or resource_path("selftest-model"))


def builtin_image() -> Path:
    return Path(os.environ.get(IMAGE_ENV) or resource_path("verify-image.png"))


def run_self_test(check_window: CheckWindow, out: TextIO | None = None) -> int:
    """Run every step, printing one line each; returns the exit status (0 = passed)."""
    out = out or sys.stdout

    def say(label: str, value: str) -> None:
        print(f"{label + ':':<18}{value}", file=out, flush=True)

    started = time.monotonic()
    print(f"PaliDesk {__version__} self-test", file=out, flush=True)
    try:
        _check(say, check_window)
    except SelfTestFailure as exc:
        print(f"{FAILED}: {exc}", file=out, flush=True)
        return 1
    except Exception as exc:  # anything unexpected is a failure, reported with its cause
        traceback.print_exc(file=sys.stderr)
        print(f"{FAILED}: unexpected {type(exc).__name__}: {exc}", file=out, flush=True)
        return 1
    print(f"{PASSED} in {time.monotonic() - started:.1f} s", file=out, flush=True)
    return 0


def _check(say: Say, check_window: CheckWindow) -> None:
    from app.build_info import gpu_build_advice, read_build_info

    frozen = bool(getattr(sys, "frozen", False))
    say("python", f"{platform.python_version()} on {platform.system()} {platform.machine()}"
        + (" (frozen)" if frozen else ""))
    build = read_build_info()
    say("build", build.describe())

    offload = _llama_facts(say)

    from app.hardware import detect

    report = detect(offload_supported=offload)
    say("hardware", report.summary())
    if report.gpu_problem:
        say("GPU note", report.gpu_problem)
    if report.advice:
        say("advice", gpu_build_advice(build) or report.advice)

    model, image = builtin_model(), builtin_image()
    if not (model / "manifest.json").is_file():
        raise SelfTestFailure(f"the built-in model is missing: no manifest.json in {model}")
    if not image.is_file():
        raise SelfTestFailure(f"the built-in image is missing: {image}")

    result = check_window(model, image, gpu_layers=-1 if offload else 0,
                          timeout_s=_timeout(), say=say)
    if not result.tokens:
        raise SelfTestFailure("the model ran but generated no tokens")
    if result.stop_reason == "cancelled":
        raise SelfTestFailure("the generation was cancelled before it finished")
    say("result", f"{len(result.tokens)} tokens, stop: {result.stop_reason}, "
        f"{result.seconds:.1f} s")


def _llama_facts(say: Say) -> bool:
    """Load llama.cpp, print its version and system info; returns GPU offload support."""
    try:
        import llama_cpp

        from app.engine.llama_library import ensure_backend, supports_gpu_offload

        backends = ensure_backend()
        info = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip()
        offload = supports_gpu_offload()
    except PaliDeskError as exc:  # e.g. no CPU backend file could be loaded
        raise SelfTestFailure(str(exc)) from exc
    except Exception as exc:
        raise SelfTestFailure(f"llama.cpp could not be loaded: {exc}") from exc
    # Where libllama came from: inside the bundle when frozen, the venv otherwise.
    library = getattr(getattr(llama_cpp.llama_cpp, "_lib", None), "_name", "unknown")
    say("llama-cpp-python", f"{getattr(llama_cpp, '__version__', 'unknown')} ({library})")
    say("CPU backend", backends.cpu_description())
    for skipped in (*backends.skipped, *backends.gpu_missing):
        say("  not used", skipped)
    if backends.gpu_notice():
        say("GPU backend", backends.gpu_notice() or "")
    elif backends.gpu_loaded:
        say("GPU backend", ", ".join(backends.gpu_loaded))
    say("llama.cpp system", info)
    why = ("its GPU backend did not load" if backends.gpu_missing
           else "CPU-only llama.cpp build")
    say("GPU offload", "available" if offload else f"not available ({why})")
    return offload


def _timeout() -> float:
    try:
        return max(1.0, float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S
