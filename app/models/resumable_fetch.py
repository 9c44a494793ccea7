"""Fetch one file over HTTP into a partial file that outlives a cancel, a crash or a kill.

huggingface_hub 2.x resumes only inside one call: it writes each attempt to a temporary
file with a random name and deletes it on failure, so a cancel, a quit or a kill -9 starts
the file over (and a kill leaves the temporary file behind for good). Here the partial
file has a stable name (the caller names it by the file's content id), every piece that
arrives is written straight through to it (unbuffered, so a killed process loses only what
was still in the socket), and the next try asks for the rest with a Range request.

Pieces are as large as one socket read (64 KiB at most), not the library's 10 MiB chunk:
progress and a cancel are looked at several times a second even at 250 kB/s. A watchdog
thread covers a link that delivers nothing at all: it keeps the progress alive once a
second and, on a cancel, shuts the socket so the blocked read returns at once. Until the
server's answer has arrived the request waits in a helper thread (``call_cancellable``),
so a server that accepted the connection and went silent holds neither.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx2
from huggingface_hub.utils import get_session, hf_raise_for_status

from app.errors import Cancelled
from app.models.disk_space import format_size
from app.models.download_progress import ByteProgress
from app.progress import CancelFlag

# A dropped connection is tried again this often in a row (the count starts afresh once
# bytes arrive again), with this pause between tries: as huggingface_hub does.
MAX_RETRIES = 5
RETRY_WAIT_S = 1.0
# How often the watchdog looks at the cancel flag and at a link that went quiet.
WATCH_INTERVAL_S = 0.1
# Transport failures worth another try (the library retries the same ones).
TRANSIENT = (httpx2.TransportError,)
T = TypeVar("T")


@dataclass(frozen=True)
class Transfer:
    """One file to bring to ``size`` bytes in ``partial`` from ``url``."""

    url: str
    headers: dict[str, str]
    partial: Path
    size: int
    name: str  # the repository's file name, for messages
    timeout_s: float = 10.0  # seconds without a byte before a read counts as failed


def fetch_to_partial(
    transfer: Transfer,
    meter: ByteProgress,
    cancel: CancelFlag | None,
    cancelled: Callable[[], Cancelled],
    on_retry: Callable[[int, BaseException], None],
) -> None:
    """Bring ``transfer.partial`` to ``transfer.size`` bytes, continuing what is there.

    Raises ``cancelled()`` on a cancel (the bytes that arrived stay on disk), the
    library's HfHubHTTPError for an HTTP error, an httpx2.TransportError once the retries
    are spent, or an OSError from writing. ``on_retry(n, error)`` is called before the
    n-th new try after a dropped connection.
    """
    partial = transfer.partial
    partial.parent.mkdir(parents=True, exist_ok=True)
    have = partial.stat().st_size if partial.exists() else 0
    if have > transfer.size:  # not a prefix of this file: start it over
        partial.unlink()
        have = 0
    if have:
        meter.skipped(have, transfer.name, f"continuing after {format_size(have)}")
    failures = 0  # in a row: bytes arriving again start the count afresh
    while have < transfer.size:
        _check(cancel, cancelled)
        before = have
        try:
            have = _one_request(transfer, have, meter, cancel, cancelled)
        except TRANSIENT as exc:
            _check(cancel, cancelled)  # a cancel shuts the socket: that is no failure
            have = partial.stat().st_size if partial.exists() else 0
            failures = 1 if have > before else failures + 1
            if failures > MAX_RETRIES:
                raise
            on_retry(failures, exc)
            if cancel is not None and _wait(cancel, RETRY_WAIT_S):
                raise cancelled() from None
            if cancel is None:
                time.sleep(RETRY_WAIT_S)


def _one_request(transfer: Transfer, have: int, meter: ByteProgress,
                 cancel: CancelFlag | None, cancelled: Callable[[], Cancelled]) -> int:
    """One GET from byte ``have``; returns the bytes in the partial file afterwards."""
    # No compression: the bytes on the wire are the file's, so a Range counts file bytes.
    headers = {**transfer.headers, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    response = _open(transfer, headers, meter, cancel, cancelled)
    with contextlib.closing(response):
        if response.status_code == 416 and have:
            # The server has no such range: what we hold is not a prefix of its file.
            transfer.partial.unlink(missing_ok=True)
            meter.discarded(have)
            return 0
        hf_raise_for_status(response)
        if have and response.status_code == 206 and not _continues_at(response, have):
            # Another range than asked for: start the file over rather than guess.
            transfer.partial.unlink(missing_ok=True)
            meter.discarded(have)
            raise httpx2.RemoteProtocolError("the server answered another range")
        if have and response.status_code != 206:
            meter.discarded(have)  # the server sent the whole file (it ignored the Range)
            have = 0
        mode = "r+b" if have else "wb"
        with _Watchdog(response, meter, transfer.name, cancel), \
                transfer.partial.open(mode, buffering=0) as out:
            out.seek(have)
            out.truncate()
            for piece in response.iter_bytes():
                if cancel is not None and cancel.cancelled:
                    raise cancelled()
                out.write(piece)
                have += len(piece)
                meter.received(len(piece), transfer.name)
    if have < transfer.size:
        # The server ended the body early without an error: a dropped line.
        raise httpx2.RemoteProtocolError(
            f"the connection closed after {have} of {transfer.size} bytes")
    return have


def _open(transfer: Transfer, headers: dict[str, str], meter: ByteProgress,
          cancel: CancelFlag | None, cancelled: Callable[[], Cancelled]) -> httpx2.Response:
    """Send the GET and wait for the answer's headers without holding up a cancel."""
    session = get_session()
    request = session.build_request("GET", transfer.url, headers=headers,
                                    timeout=httpx2.Timeout(transfer.timeout_s))
    return call_cancellable(lambda: session.send(request, stream=True), cancel, cancelled,
                            tick=lambda: meter.heartbeat(transfer.name),
                            discard=lambda response: response.close())


def call_cancellable(
    work: Callable[[], T],
    cancel: CancelFlag | None,
    cancelled: Callable[[], Cancelled],
    *,
    tick: Callable[[], None] = lambda: None,
    discard: Callable[[T], None] = lambda _result: None,
) -> T:
    """``work()`` (a request that waits on the network and writes nothing) in a helper
    thread, so that a server that accepted the connection and went silent cannot hold a
    cancel for the whole timeout. ``tick`` runs every WATCH_INTERVAL_S meanwhile (the
    progress a second); a result that arrives after a cancel goes to ``discard``."""
    box: dict[str, object] = {}
    answered = threading.Event()
    abandoned = threading.Event()

    def run() -> None:
        try:
            box["result"] = work()
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc
        finally:
            answered.set()
            if abandoned.is_set():
                _discard(box, discard)

    threading.Thread(target=run, name="download-request", daemon=True).start()
    try:
        while not answered.wait(WATCH_INTERVAL_S):
            if cancel is not None and cancel.cancelled:
                raise cancelled()
            tick()
    except BaseException:
        abandoned.set()
        if answered.is_set():
            _discard(box, discard)
        raise
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]  # type: ignore[return-value]


def _discard(box: dict[str, object], discard: Callable[[T], None]) -> None:
    if "result" in box and not box.get("discarded"):
        box["discarded"] = True
        discard(box["result"])  # type: ignore[arg-type]


def _continues_at(response: httpx2.Response, have: int) -> bool:
    """Whether the 206 ``response`` is the rest of the file from byte ``have``."""
    content_range = response.headers.get("Content-Range", "")
    return content_range.startswith(f"bytes {have}-")


def _check(cancel: CancelFlag | None, cancelled: Callable[[], Cancelled]) -> None:
    if cancel is not None and cancel.cancelled:
        raise cancelled()


def _wait(cancel: CancelFlag, seconds: float) -> bool:
    """Sleep ``seconds`` unless cancelled first; True when cancelled."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cancel.cancelled:
            return True
        time.sleep(WATCH_INTERVAL_S)
    return cancel.cancelled


class _Watchdog:
    """While a body is read: a progress line once a second when no byte arrives, and on a
    cancel the socket shut so the blocked read ends at once (a read only returns when
    bytes arrive or after the timeout, 10 s)."""

    def __init__(self, response: httpx2.Response, meter: ByteProgress, name: str,
                 cancel: CancelFlag | None) -> None:
        self.response = response
        self.meter = meter
        self.name = name
        self.cancel = cancel
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="download-watchdog",
                                        daemon=True)

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL_S):
            if self.cancel is not None and self.cancel.cancelled:
                self._shut()
                return
            self.meter.heartbeat(self.name)

    def _shut(self) -> None:
        stream = self.response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):  # already closed: nothing left to wake
                sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def held_lock(lock_path: Path, cancel: CancelFlag | None,
              cancelled: Callable[[], Cancelled], on_wait: Callable[[], None]) -> Iterator[None]:
    """Hold ``lock_path`` (the lock huggingface_hub takes for the same file, so two
    programs never write one file), waiting while another process holds it."""
    from filelock import FileLock, Timeout

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path), mode=0o664)
    told = False
    while True:
        _check(cancel, cancelled)
        try:
            lock.acquire(timeout=0.25)
            break
        except Timeout:
            if not told:
                on_wait()
                told = True
    try:
        yield
    finally:
        lock.release()
