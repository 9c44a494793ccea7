"""How jobs show while they run and when they end: the queue's statuses, the streaming
text and boxes, then the stored result in the results list. Display only: what runs next
is the session's decision (``app.session``)."""

from __future__ import annotations

from pathlib import Path

from app.errors import HistoryError
from app.history.history_record import HistoryRecord
from app.session import Job, JobOutcome, ResultStore
from app.session.job import CANCELLED, DONE, FAILED, SKIPPED
from app.session.stream_pacing import shows_same
from app.tasks.parsing import DetectedObject
from app.ui.image_queue import ImageQueue, QueueItem
from app.ui.image_view import ImageView
from app.ui.notice_bar import NoticeBar
from app.ui.results_panel import ResultsPanel
from app.ui.stream_coalescer import StreamCoalescer

# How a job's end shows in the queue: (status, note).
QUEUE_STATUS = {DONE: ("done", ""), SKIPPED: ("done", "stored result"),
                CANCELLED: ("ready", "cancelled"), FAILED: ("failed", "")}


class JobDisplay:
    def __init__(self, queue: ImageQueue, view: ImageView, panel: ResultsPanel,
                 notices: NoticeBar, results: ResultStore) -> None:
        self.queue, self.view, self.panel = queue, view, panel
        self.notices, self.results = notices, results
        panel.record_shown.connect(self._draw_record)
        # Tokens and objects are shown at most once per frame: at GPU speed, showing each
        # token by itself costs more than the stream gives time for.
        self.stream = StreamCoalescer(panel.append_text, self._show_objects, parent=panel)

    def started(self, job: Job, follow: bool) -> None:
        """``job`` really runs; with ``follow`` (a batch) its image becomes the selection."""
        self.queue.set_status(job.queue_key, "running")
        if follow:
            self.queue.set_current(job.queue_key)
        self.stream.discard()
        self.view.show_image(job.image)
        self.view.clear_overlays()
        self.panel.start(job.image.name, job.prompt)

    def token(self, text: str) -> None:
        self.stream.add_text(text)

    def found(self, obj: DetectedObject) -> None:
        self.stream.add_object(obj)

    def _show_objects(self, objects: list[DetectedObject]) -> None:
        for obj in objects:
            self.view.add_object(obj)
            self.panel.add_object(obj)

    def _draw_record(self, record: HistoryRecord) -> None:
        # At the end of a run the stored result is what streamed: keep the boxes drawn.
        if not shows_same(self.view.objects(), record.objects):
            self.view.set_objects(record.objects)

    def ended(self, job: Job, outcome: JobOutcome, follow: bool) -> None:
        """Show how ``job`` ended; a skipped job of a batch shows its stored result."""
        self.stream.flush()  # what streamed is shown in full, also when the job failed
        status, note = QUEUE_STATUS[outcome.status]
        self.queue.set_status(job.queue_key, status,
                              outcome.message if status == "failed" else note)
        current = self.queue.current()
        shown = current is not None and current.key == job.queue_key
        if follow and not shown:
            self.queue.set_current(job.queue_key)
            self.view.show_image(job.image)
            shown = True
        record = outcome.record
        if outcome.status == FAILED:
            self.panel.show_error(outcome.message)
        elif outcome.status == CANCELLED and record is None:
            if shown:
                self.show_results(job.image, job.image_sha256)
            self.panel.show_note("Cancelled before the first token; nothing was kept.")
        elif record is not None and record.id is None:
            self.panel.show_record(record)  # not stored (a history error): still shown
        elif shown:
            self.show_results(job.image, record.image_sha256 if record else job.image_sha256,
                              record.id if record else None)
        if outcome.message and outcome.status != FAILED:
            self.notices.show_notice(outcome.message, error=True)

    def show_item(self, item: QueueItem | None) -> None:
        """Show a queued image with its stored results (nothing when None)."""
        self.stream.discard()
        self.view.show_image(item.path if item is not None else None)
        self.view.clear_overlays()
        if item is None:
            self.panel.set_records([])
        else:
            self.show_results(item.path, item.sha256)

    def show_results(self, image: Path, sha256: str, select_id: int | None = None) -> None:
        """List the image's stored results, showing ``select_id`` or the newest."""
        try:
            records = self.results.for_image(sha256, image)
        except HistoryError as exc:
            self.notices.show_notice(str(exc), error=True)
            records = []
        self.panel.set_records(records, select_id)
        if not records:
            self.view.clear_overlays()
