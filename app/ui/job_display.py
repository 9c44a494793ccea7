"""How jobs show while they run and when they end: the queue's statuses, the streaming
text and boxes, then the stored result in the results list. Display only: what runs next
is the session's decision (``app.session``)."""

from __future__ import annotations

from pathlib import Path

from app.errors import HistoryError
from app.history.history_record import HistoryRecord
from app.session import Job, JobOutcome, ResultStore
from app.session.job import CANCELLED, FAILED
from app.session.queue_note import queue_status
from app.session.stream_pacing import shows_same
from app.tasks.parsing import DetectedObject
from app.ui.image_queue import ImageQueue, QueueItem
from app.ui.image_view import ImageView
from app.ui.notice_bar import NoticeBar
from app.ui.results_panel import ResultsPanel
from app.ui.stream_coalescer import StreamCoalescer


class JobDisplay:
    def __init__(self, queue: ImageQueue, view: ImageView, panel: ResultsPanel,
                 notices: NoticeBar, results: ResultStore) -> None:
        self.queue, self.view, self.panel = queue, view, panel
        self.notices, self.results = notices, results
        self._listed: tuple[Path, str] | None = None  # the image the results list is of
        panel.record_shown.connect(self._draw_record)
        panel.show_older_changed.connect(lambda _on: self._list_again())
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
        finished = outcome.status == CANCELLED and self._has_finished(job)
        self.queue.set_status(job.queue_key,
                              *queue_status(outcome.status, finished, outcome.message))
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
        """List the image's stored results, showing ``select_id`` (listed even when a newer
        result of the same question would hide it) or the newest."""
        self._listed = (image, sha256)
        try:
            listing = self.results.listing(sha256, image, self.panel.older_check.isChecked(),
                                           keep_id=select_id)
        except HistoryError as exc:
            self.notices.show_notice(str(exc), error=True)
            listing = None
        records = listing.records if listing else []
        self.panel.set_records(records, select_id, image, listing.older if listing else 0)
        if not records:
            self.view.clear_overlays()

    def _list_again(self) -> None:
        """The user asked for older results (or hid them): list the same image again."""
        # While an answer streams the list waits: the job's end lists the image again,
        # with the choice as it is then.
        if self._listed is not None and not self.panel.cursor_timer.isActive():
            self.show_results(*self._listed, select_id=self.panel.shown_id())

    def _has_finished(self, job: Job) -> bool:
        """Whether ``job``'s image has a finished (not cancelled) result of its question."""
        try:
            records = self.results.for_image(job.image_sha256, job.image)
        except HistoryError:
            return False
        return any(not r.cancelled and r.prompt == job.prompt for r in records)
