"""A served job as the async request handler sees it: submitted to the queue, its events
read back on the event loop, and cancelled when the client goes away."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from app.server.job_queue import QueueClosed, QueueFull
from app.server.request_errors import RequestRefused
from app.server.serve_state import ServeState
from app.session.job import Job, JobOutcome

RETRY_AFTER_S = 2


class Dropped:
    """The job never ran: the server shut down while it waited."""


class JobStream:
    def __init__(self, state: ServeState, job: Job) -> None:
        self.state = state
        self.job = job
        self.ended = False
        loop = asyncio.get_running_loop()
        self._events: asyncio.Queue[object] = asyncio.Queue()

        def sink(event: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody listens
                loop.call_soon_threadsafe(self._events.put_nowait, event)

        try:
            state.queue.submit(job, sink, lambda: sink(Dropped()))
        except QueueFull as exc:
            state.images.release(job.image)
            raise RequestRefused(503, f"The server is busy: {exc} Try again shortly.",
                                 headers={"retry-after": str(RETRY_AFTER_S)}) from None
        except QueueClosed as exc:
            state.images.release(job.image)
            raise RequestRefused(503, str(exc)) from None

    async def events(self, gone: Callable[[], Awaitable[bool]] | None = None,
                     poll_s: float = 0.1) -> AsyncIterator[object]:
        """The job's events up to its JobOutcome (or Dropped). ``gone`` tells whether the
        client disconnected; then the job is cancelled (within one token) and this ends."""
        loop = asyncio.get_running_loop()
        next_check = loop.time() + poll_s
        try:
            while True:
                # Checked on a clock, not only when no event came: tokens arrive faster
                # than the poll while a generation runs.
                if gone is not None and loop.time() >= next_check:
                    if await gone():
                        return
                    next_check = loop.time() + poll_s
                try:
                    event = await asyncio.wait_for(self._events.get(), poll_s)
                except TimeoutError:
                    continue
                if isinstance(event, JobOutcome | Dropped):
                    self.ended = True
                    yield event
                    return
                yield event
        finally:
            self.close()

    def close(self) -> None:
        """Cancel the job unless it ended; free its image once nothing needs it."""
        if not self.ended:
            self.job.cancel.cancel()
        # Only a temporary copy is deleted (--no-history); an image the worker has not
        # read yet was cancelled before it starts, so it is never opened.
        self.state.images.release(self.job.image)


async def outcome_of(stream: JobStream,
                     gone: Callable[[], Awaitable[bool]] | None) -> JobOutcome | None:
    """Wait for the job's end (None when the client left and the job was cancelled)."""
    async for event in stream.events(gone):
        if isinstance(event, Dropped):
            raise RequestRefused(503, "The server shut down before this request ran.")
        if isinstance(event, JobOutcome):
            return event
    return None
