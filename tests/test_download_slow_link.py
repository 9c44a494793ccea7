"""Downloads on a slow or broken link (issue 18): progress at least once a second at
250 kB/s and on a link that hangs, a cancel within a second that keeps what arrived, a
kill -9 at 90 % of a file that costs at most one block on the rerun, and one plain line
per retry after a dropped connection. The fake hub (tests/fake_hub.py) is throttled."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fake_hub import FakeHub
from test_download import hub_environment, serve  # noqa: F401  (fixtures)

from app.errors import Cancelled
from app.models import download_progress
from app.models.download import download_checkpoint
from app.models.hub_leftovers import PARTIAL_SUFFIX, hub_partials
from app.progress import CancelFlag, ProgressEvent
from conftest import TINY

REPO = "google/pg2-tiny-224"
WEIGHTS = "model.safetensors"
SLOW = 250_000  # bytes per second: a slow home link
# The most a piece that arrived but was not yet on disk can be: one socket read.
BLOCK = 64 << 10
ROOT = Path(__file__).resolve().parent.parent


def small_repo(weights_bytes: int) -> dict[str, bytes]:
    """The tiny model's config and random weights of the size a test needs."""
    return {"config.json": (TINY / "pg2-tiny-224" / "config.json").read_bytes(),
            WEIGHTS: os.urandom(weights_bytes)}


@pytest.fixture
def real_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    """The progress pacing users get (test_download.py's fixture reports every chunk)."""
    monkeypatch.setattr(download_progress, "PROGRESS_INTERVAL_S", 0.25)
    monkeypatch.setattr(download_progress, "MIN_MEASURE_S", 0.5)


def timed(events: list[tuple[float, ProgressEvent]]):
    return lambda event: events.append((time.monotonic(), event))


def weights_served(hub: FakeHub) -> int:
    """Bytes of the weights file the hub sent (error answers carry no file bytes)."""
    return sum(r.body_bytes for r in hub.gets_of(WEIGHTS) if r.status in (200, 206))


def test_progress_at_least_once_a_second_at_250_kB_s(real_pace: None) -> None:
    """It used to come once per 10 MiB piece: "measuring speed" for ~40 s."""
    size = 600_000
    events: list[tuple[float, ProgressEvent]] = []
    with FakeHub(small_repo(size), REPO, rate=SLOW) as hub:
        download_checkpoint(REPO, endpoint=hub.url, progress=timed(events))
    weights = [(t, e) for t, e in events if e.message.startswith(WEIGHTS)]
    times = [t for t, _ in weights]
    assert times[-1] - times[0] > 1.5  # the link really was slow
    assert max(b - a for a, b in itertools.pairwise(times)) < 1.0
    # Bytes, speed and time left from the first second on, not after the file.
    told = [t for t, e in weights if "kB/s" in e.message and "left" in e.message]
    assert told and told[0] - times[0] < 1.5
    assert len({e.done for _, e in weights}) >= 5


def test_a_link_that_hangs_still_shows_progress_and_cancels_at_once(real_pace: None) -> None:
    """No byte for seconds: a line a second that says so, and Cancel within a second."""
    size = 400_000
    events: list[tuple[float, ProgressEvent]] = []
    cancel = CancelFlag()
    pressed: list[float] = []

    def press_cancel() -> None:
        pressed.append(time.monotonic())
        cancel.cancel()

    with FakeHub(small_repo(size), REPO, rate=SLOW, stall_after=100_000) as hub:
        timer = threading.Timer(4.5, press_cancel)  # the window's Cancel, from its thread
        timer.start()
        try:
            with pytest.raises(Cancelled, match="What arrived is kept"):
                download_checkpoint(REPO, endpoint=hub.url, progress=timed(events),
                                    cancel=cancel)
            returned = time.monotonic()
        finally:
            timer.cancel()
    assert returned - pressed[0] < 1.0
    quiet = [t for t, e in events if "no data for" in e.message]
    assert quiet, [e.message for _, e in events]
    times = [t for t, e in events if e.message.startswith(WEIGHTS) and t < pressed[0]]
    assert max(b - a for a, b in itertools.pairwise(times)) < 1.5
    [partial] = hub_partials()
    assert partial.size_bytes >= 100_000 and partial.repo_id == REPO


def test_cancel_within_a_second_keeps_what_arrived_and_the_rerun_continues(
    real_pace: None,
) -> None:
    size = 1_000_000
    cancel = CancelFlag()
    pressed: list[float] = []

    def press_cancel() -> None:
        pressed.append(time.monotonic())
        cancel.cancel()

    files = small_repo(size)
    with FakeHub(files, REPO, rate=SLOW) as hub:
        timer = threading.Timer(2.0, press_cancel)
        timer.start()
        try:
            with pytest.raises(Cancelled):
                download_checkpoint(REPO, endpoint=hub.url, cancel=cancel)
            returned = time.monotonic()
        finally:
            timer.cancel()
        assert returned - pressed[0] < 1.0
        [partial] = hub_partials()
        assert partial.size_bytes >= 200_000  # ~1.9 s at 250 kB/s, kept
        hub.rate = None
        events: list[ProgressEvent] = []
        folder = download_checkpoint(REPO, endpoint=hub.url, progress=events.append)
        assert any(e.message.startswith(f"{WEIGHTS}: continuing after") for e in events)
        second = hub.gets_of(WEIGHTS)[-1]
        assert second.range == f"bytes={partial.size_bytes}-" and second.status == 206
        assert weights_served(hub) <= size + BLOCK
    assert (folder / WEIGHTS).read_bytes() == files[WEIGHTS]
    assert hub_partials() == []


CHILD = """
import sys
from app.models.download import download_checkpoint
download_checkpoint(sys.argv[1], endpoint=sys.argv[2])
"""


def test_kill_9_at_90_percent_costs_at_most_one_block(tmp_path: Path) -> None:
    """A real SIGKILL of a process downloading into the Hugging Face cache, at ~90 % of a
    20-block file; the rerun asks only for the rest."""
    size = 20 * BLOCK
    files = small_repo(size)
    with FakeHub(files, REPO, rate=500_000) as hub:
        child = subprocess.Popen([sys.executable, "-c", CHILD, REPO, hub.url], cwd=ROOT,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)},
                                 stderr=subprocess.PIPE)
        try:
            blobs = tmp_path / "hf-home" / "hub" / "models--google--pg2-tiny-224" / "blobs"
            deadline = time.monotonic() + 30
            reached = 0
            while reached < 0.9 * size and time.monotonic() < deadline:
                assert child.poll() is None, child.stderr.read().decode()
                parts = list(blobs.glob("*" + PARTIAL_SUFFIX)) if blobs.exists() else []
                reached = parts[0].stat().st_size if parts else 0
                time.sleep(0.02)
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait(timeout=10)
            child.stderr.close()
        assert child.returncode == -signal.SIGKILL and 0.9 * size <= reached < size
        [left] = hub_partials()
        assert not left.in_use and left.size_bytes >= reached  # the lock died with it
        folder = download_checkpoint(REPO, endpoint=hub.url)
        _first, second = hub.gets_of(WEIGHTS)
        assert second.range == f"bytes={left.size_bytes}-"
        refetched = weights_served(hub) - size
        assert 0 <= refetched <= BLOCK, refetched
    assert (folder / WEIGHTS).read_bytes() == files[WEIGHTS]
    assert hub_partials() == []


def test_a_dropped_connection_is_one_plain_line_per_retry(
    serve, caplog: pytest.LogCaptureFixture,  # noqa: F811
) -> None:
    """It used to be each huggingface_hub warning twice, with the CDN address."""
    hub = serve("interrupt", interrupt_after=300_000)
    with caplog.at_level(logging.DEBUG):
        download_checkpoint(REPO, endpoint=hub.url)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in warnings] == ["palidesk.download"]
    line = warnings[0].getMessage()
    assert "\n" not in line and hub.url not in line and "http" not in line
    assert line.startswith(f"{WEIGHTS}: the connection broke off; trying again (1 of 5)")


def test_ctrl_c_in_models_pull_stops_within_a_second_and_the_rerun_continues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.cli.main import main

    size = 1_000_000
    files = small_repo(size)
    dest = tmp_path / "ckpt"
    with FakeHub(files, REPO, rate=SLOW) as hub:
        command = [sys.executable, "-c", "from app.cli.main import main; exit(main())",
                   "models", "pull", REPO, "--dest", str(dest)]
        child = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "HF_ENDPOINT": hub.url,
                                      "PYTHONPATH": str(ROOT)})
        try:
            downloads = dest / ".cache" / "huggingface" / "download"
            deadline = time.monotonic() + 30
            reached = 0
            while reached < 200_000 and time.monotonic() < deadline:
                assert child.poll() is None, child.stderr.read()
                parts = list(downloads.glob("*" + PARTIAL_SUFFIX)) if downloads.exists() \
                    else []
                reached = parts[0].stat().st_size if parts else 0
                time.sleep(0.02)
            pressed = time.monotonic()
            child.send_signal(signal.SIGINT)
            child.wait(timeout=10)
            stopped = time.monotonic() - pressed
        finally:
            child.kill()
            child.wait()
            err = child.stderr.read()
            child.stderr.close()
        assert child.returncode == 130 and "cancelled" in err, err
        assert stopped < 1.0, stopped
        [partial] = downloads.glob("*" + PARTIAL_SUFFIX)
        kept = partial.stat().st_size
        assert kept >= 200_000 and not (dest / WEIGHTS).exists()
        hub.rate = None
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        assert main(["models", "pull", REPO, "--dest", str(dest)]) == 0
        assert hub.gets_of(WEIGHTS)[-1].range == f"bytes={kept}-"
        assert weights_served(hub) <= size + BLOCK
    assert (dest / WEIGHTS).read_bytes() == files[WEIGHTS]


def test_an_expired_cdn_address_is_asked_for_again_and_the_file_continues() -> None:
    """The hub's signed CDN addresses expire; a retry after that gets a new one from the
    hub instead of failing with "403", and continues from the bytes on disk."""
    size = 600_000
    files = small_repo(size)
    with FakeHub(files, REPO, mode="interrupt", interrupt_after=300_000, rate=1_000_000,
                 cdn_ttl_s=0.5) as hub:
        folder = download_checkpoint(REPO, endpoint=hub.url)
        cdn = [r for r in hub.gets_of(WEIGHTS) if r.path.startswith("/cdn/")]
        assert [r.status for r in cdn] == [200, 403, 206]  # dropped, expired, continued
        assert cdn[2].range == "bytes=300000-" and cdn[2].path != cdn[0].path
        assert weights_served(hub) == size
    assert (folder / WEIGHTS).read_bytes() == files[WEIGHTS]


HOLD_LOCK = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_a_file_another_program_is_writing_is_waited_for_and_cancel_still_works(
    tmp_path: Path,
) -> None:
    """huggingface_hub's lock for the same blob (transformers downloading it right now):
    PaliDesk says it waits, never writes alongside, and a cancel still ends the wait."""
    import hashlib

    from app.models.hub_leftovers import cache_partial_lock

    files = small_repo(200_000)
    etag = hashlib.sha256(files[WEIGHTS]).hexdigest()
    lock = cache_partial_lock(tmp_path / "hf-home" / "hub", REPO, etag)
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock)],
                              stdout=subprocess.PIPE, text=True)
    cancel = CancelFlag()
    events: list[ProgressEvent] = []

    def cancel_when_waiting(event: ProgressEvent) -> None:
        events.append(event)
        if "another program" in event.message:
            threading.Timer(0.5, cancel.cancel).start()

    try:
        assert holder.stdout.readline().strip() == "held"
        with FakeHub(files, REPO) as hub:
            started = time.monotonic()
            with pytest.raises(Cancelled):
                download_checkpoint(REPO, endpoint=hub.url, progress=cancel_when_waiting,
                                    cancel=cancel)
            assert time.monotonic() - started < 2.0
            assert hub.gets_of(WEIGHTS) == []  # nothing written alongside the other one
            holder.kill()
            holder.wait()
            folder = download_checkpoint(REPO, endpoint=hub.url)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert any(e.message == f"{WEIGHTS}: waiting: another program is downloading this file"
               for e in events)
    assert (folder / WEIGHTS).read_bytes() == files[WEIGHTS]


def test_models_pull_prints_one_plain_line_for_a_dropped_connection(tmp_path: Path) -> None:
    """What a user of `palidesk models pull` sees on stderr (no pytest log capture)."""
    with FakeHub(small_repo(600_000), REPO, mode="interrupt", interrupt_after=300_000) as hub:
        done = subprocess.run(
            [sys.executable, "-c", "from app.cli.main import main; exit(main())", "models",
             "pull", REPO, "--dest", str(tmp_path / "ckpt")], cwd=ROOT, text=True,
            capture_output=True, timeout=60,
            env={**os.environ, "HF_ENDPOINT": hub.url, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    about = [line for line in done.stderr.splitlines()
             if "trying again" in line or "Error while downloading" in line
             or "Retry" in line or "resume" in line]
    assert about == [f"WARNING palidesk.download: {WEIGHTS}: the connection broke off; "
                     "trying again (1 of 5), keeping what arrived"], done.stderr
    assert "http" not in done.stderr and "127.0.0.1" not in done.stderr


def test_a_server_that_never_answers_still_shows_progress_and_cancels_at_once(
    real_pace: None,
) -> None:
    """Accepted, then silent (not even the headers): the wait is shown once a second and
    a cancel returns within a second, not after the 10 s read timeout."""
    events: list[tuple[float, ProgressEvent]] = []
    cancel = CancelFlag()
    pressed: list[float] = []

    def press_cancel() -> None:
        pressed.append(time.monotonic())
        cancel.cancel()

    with FakeHub(small_repo(100_000), REPO, silent=True) as hub:
        timer = threading.Timer(3.5, press_cancel)
        timer.start()
        try:
            with pytest.raises(Cancelled):
                download_checkpoint(REPO, endpoint=hub.url, progress=timed(events),
                                    cancel=cancel)
            returned = time.monotonic()
        finally:
            timer.cancel()
    assert returned - pressed[0] < 1.0
    waiting = [t for t, e in events if e.message.startswith(WEIGHTS)]
    assert len(waiting) >= 3 and max(b - a for a, b in itertools.pairwise(waiting)) < 1.5
    assert any("no data for" in e.message for _, e in events)


def test_heartbeat_reports_once_a_second_and_says_when_no_data_comes() -> None:
    from app.models.download_progress import ByteProgress

    now = [0.0]
    events: list[ProgressEvent] = []
    meter = ByteProgress(events.append, total=1_000_000, interval_s=0.25,
                         clock=lambda: now[0])
    for _ in range(8):  # 200 kB/s in pieces of 25 kB (steps exact in binary)
        now[0] += 0.125
        meter.received(25_000, WEIGHTS)
    assert events[-1].message.endswith("of 1.0 MB, 200.0 kB/s, about 4 s left")
    count = len(events)
    for _ in range(40):  # then nothing for 5 s; the watchdog calls heartbeat meanwhile
        now[0] += 0.125
        meter.heartbeat(WEIGHTS)
    quiet = events[count:]
    assert len(quiet) == 5  # once a second
    assert "no data for" not in quiet[0].message and "(no data for 5 s)" in quiet[-1].message
    assert all(e.done == 200_000 for e in quiet)
