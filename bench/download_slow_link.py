"""Downloads on a slow link, against the local stand-in hub (tests/fake_hub.py).

Measures, at 250 kB/s: the longest gap between two progress events, while a file comes
in, for huggingface_hub's own ``hf_hub_download`` (10 MiB reads) and for PaliDesk's
download; how long Cancel takes to return on a steady and on a hung link; and how many
bytes of a file are fetched again after a kill -9 at ~90 % of it. Prints a Markdown
table (the figures in docs/benchmarks.md).

    .venv/bin/python bench/download_slow_link.py
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

RATE = 250_000
REPO = "google/pg2-tiny-224"
WEIGHTS = "model.safetensors"
CONFIG = ROOT / "tests" / "fixtures" / "tiny" / "pg2-tiny-224" / "config.json"


def files(size: int) -> dict[str, bytes]:
    return {"config.json": CONFIG.read_bytes(), WEIGHTS: os.urandom(size)}


def max_gap(times: list[float]) -> float:
    return max((b - a for a, b in itertools.pairwise(times)), default=float("nan"))


def library_gap(size: int) -> tuple[float, int]:
    """hf_hub_download's own progress bar: the longest wait between two updates."""
    from fake_hub import FakeHub
    from huggingface_hub import hf_hub_download

    times: list[float] = []

    class Bar:
        def __init__(self, *_a: object, **_k: object) -> None:
            times.append(time.monotonic())

        def update(self, _n: float = 1) -> None:
            times.append(time.monotonic())

        def __getattr__(self, _name: str):
            return lambda *_a, **_k: None

        def __enter__(self) -> Bar:
            return self

        def __exit__(self, *_exc: object) -> None:
            pass

    with FakeHub(files(size), REPO, rate=RATE) as hub:
        hf_hub_download(REPO, WEIGHTS, endpoint=hub.url, tqdm_class=Bar)
    return max_gap(times), len(times)


def palidesk_gap(size: int) -> tuple[float, int]:
    from fake_hub import FakeHub

    from app.models.download import download_checkpoint

    times: list[float] = []
    with FakeHub(files(size), REPO, rate=RATE) as hub:
        download_checkpoint(REPO, endpoint=hub.url, progress=lambda e: times.append(
            time.monotonic()) if e.message.startswith(WEIGHTS) else None)
    return max_gap(times), len(times)


def cancel_delay(size: int, stall_after: int | None, silent: bool = False) -> float:
    from fake_hub import FakeHub

    from app.errors import Cancelled
    from app.models.download import download_checkpoint
    from app.progress import CancelFlag

    cancel = CancelFlag()
    pressed: list[float] = []

    def press() -> None:
        pressed.append(time.monotonic())
        cancel.cancel()

    with FakeHub(files(size), REPO, rate=RATE, stall_after=stall_after,
                 silent=silent) as hub:
        timer = threading.Timer(3.0, press)
        timer.start()
        try:
            download_checkpoint(REPO, endpoint=hub.url, cancel=cancel)
        except Cancelled:
            return time.monotonic() - pressed[0]
        finally:
            timer.cancel()
    return float("nan")


CHILD = "import sys\nfrom app.models.download import download_checkpoint\n" \
        "download_checkpoint(sys.argv[1], endpoint=sys.argv[2])\n"


def refetched_after_kill(size: int) -> tuple[int, int]:
    """(bytes on disk at the kill, bytes served twice) for a kill -9 at ~90 %."""
    from fake_hub import FakeHub

    from app.models.download import download_checkpoint

    with FakeHub(files(size), REPO, rate=RATE) as hub:
        child = subprocess.Popen([sys.executable, "-c", CHILD, REPO, hub.url], cwd=ROOT,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
        blobs = Path(os.environ["HF_HOME"]) / "hub" / "models--google--pg2-tiny-224" / "blobs"
        reached = 0
        while reached < 0.9 * size:
            parts = list(blobs.glob("*.palidesk.incomplete")) if blobs.exists() else []
            reached = parts[0].stat().st_size if parts else 0
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait()
        download_checkpoint(REPO, endpoint=hub.url)
        served = sum(r.body_bytes for r in hub.gets_of(WEIGHTS))
    return reached, served - size


def fresh_cache(home: str, name: str) -> None:
    """Each measurement downloads into an empty Hugging Face cache of its own."""
    os.environ["HF_HOME"] = os.path.join(home, name)


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        os.environ.update(HF_HUB_DISABLE_TELEMETRY="1", NO_PROXY="127.0.0.1,localhost")
        from huggingface_hub import constants

        size = 1_000_000
        fresh_cache(home, "library")
        constants.HF_HUB_CACHE = os.path.join(home, "library", "hub")
        lib = library_gap(size)
        fresh_cache(home, "gap")
        ours = palidesk_gap(size)
        print(f"| file | {size / 1e6:.1f} MB at {RATE / 1e3:.0f} kB/s |")
        print("|---|---|")
        print(f"| hf_hub_download alone: longest gap between updates | {lib[0]:.2f} s "
              f"({lib[1]} updates) |")
        print(f"| PaliDesk: longest gap between progress events | {ours[0]:.2f} s "
              f"({ours[1]} events) |")
        fresh_cache(home, "cancel")
        print(f"| Cancel, steady link: returns after | {cancel_delay(size, None):.3f} s |")
        fresh_cache(home, "hung")
        print(f"| Cancel, link hung after 100 kB: returns after | "
              f"{cancel_delay(size, 100_000):.3f} s |")
        fresh_cache(home, "silent")
        print(f"| Cancel, server accepted and never answered: returns after | "
              f"{cancel_delay(size, None, silent=True):.3f} s |")
        fresh_cache(home, "kill")
        reached, again = refetched_after_kill(size)
        print(f"| kill -9 at {reached / size:.0%}: bytes fetched again on the rerun | "
              f"{again} |")


if __name__ == "__main__":
    main()
