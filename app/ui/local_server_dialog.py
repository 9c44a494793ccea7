"""Tools › Local Server…: `palidesk serve` on the window's loaded model.

Served requests become jobs of the window's own engine thread, sent exactly as the
window sends its jobs (``EngineThread.run``), so they wait in the same first-in
first-out line as the window's Run, a model swap waits for the request in flight, and
results go to the same history. The dialog only starts, stops and shows; the server is
``app.server``'s.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from app.errors import PaliDeskError
from app.server.engine_host import EngineHost, LoadedModel, ServedToken
from app.server.job_queue import QueueClosed, QueueFull
from app.server.listener import DEFAULT_PORT
from app.session.job import Job, JobOutcome, JobStarted
from app.tasks.output_text import END_MARKER
from app.tasks.task_runner import ObjectEvent
from app.ui.engine_worker import EngineThread
from app.ui.engine_worker import LoadedModel as WindowModel


class WindowJobQueue(QObject):
    """``app.server.job_queue.JobQueue``'s interface on the window's engine thread."""

    send_requested = Signal(object)  # a Job, carried to the UI thread, then to the engine
    count_changed = Signal(int)  # requests answered so far

    def __init__(self, engine: EngineThread, capacity: int = 32) -> None:
        super().__init__()
        self.engine = engine
        self.capacity = capacity
        self.served = 0
        self._sinks: dict[int, Callable[[object], None]] = {}
        self._jobs: dict[int, Job] = {}
        self._lock = threading.Lock()
        self._closed = False
        worker = engine.worker
        worker.job_started.connect(self._started)
        worker.token.connect(self._token)
        worker.object_found.connect(self._object)
        worker.job_ended.connect(self._ended)
        self.send_requested.connect(self._send)

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._sinks)

    def submit(self, job: Job, sink: Callable[[object], None],
               dropped: Callable[[], None]) -> None:
        """Called from the server's thread; the job goes to the engine via the UI thread."""
        with self._lock:
            if self._closed:
                raise QueueClosed("The local server is stopping.")
            if len(self._sinks) > self.capacity:
                raise QueueFull(f"{len(self._sinks) - 1} requests are already waiting.")
            self._sinks[job.job_id] = sink
            self._jobs[job.job_id] = job
        self.send_requested.emit(job)

    def close(self, wait: bool = True, timeout: float | None = None,
              cancel: bool = False) -> None:
        """Take no new job; with ``cancel``, stop the ones sent within a token."""
        with self._lock:
            self._closed = True
            sent = list(self._jobs.values()) if cancel else []
        for job in sent:
            job.cancel.cancel()

    @Slot(object)
    def _send(self, job: Job) -> None:
        self.engine.run(job)

    def _sink(self, job_id: int) -> Callable[[object], None] | None:
        with self._lock:
            return self._sinks.get(job_id)

    @Slot(int)
    def _started(self, job_id: int) -> None:
        if sink := self._sink(job_id):
            sink(JobStarted(job_id))

    @Slot(int, str)
    def _token(self, job_id: int, text: str) -> None:
        if sink := self._sink(job_id):
            sink(ServedToken("" if text == END_MARKER else text, -1))

    @Slot(int, object)
    def _object(self, job_id: int, obj: object) -> None:
        if sink := self._sink(job_id):
            sink(ObjectEvent(obj))  # type: ignore[arg-type]

    @Slot(object)
    def _ended(self, outcome: JobOutcome) -> None:
        with self._lock:
            sink = self._sinks.pop(outcome.job_id, None)
            self._jobs.pop(outcome.job_id, None)
        if sink is not None:
            sink(outcome)
            self.served += 1
            self.count_changed.emit(self.served)


class LocalServer(QObject):
    """Starts and stops the server on the window's engine and model."""

    changed = Signal(str)  # the status text, "" when stopped

    def __init__(self, engine: EngineThread, model: Callable[[], WindowModel | None]) -> None:
        super().__init__()
        self.engine = engine
        self.window_model = model
        self.background = None
        self.queue: WindowJobQueue | None = None
        self.host: EngineHost | None = None
        self.stopping = None
        engine.worker.model_loaded.connect(self._model_loaded)

    @property
    def running(self) -> bool:
        return self.background is not None

    def start(self, port: int = DEFAULT_PORT) -> str:
        """Start serving; returns the address (raises PaliDeskError in words)."""
        from app.server.background_server import BackgroundServer
        from app.server.engine_host import installed_mask_decoder
        from app.server.serve_state import ServeState
        from app.server.served_images import ServedImages

        model = self.window_model()
        if model is None:
            raise PaliDeskError("Load a model first: the server serves the window's model.")
        # Served jobs are the core's new_job: ids apart from the window's own (from 1),
        # and small enough for the worker's signals, which carry them as 32-bit ints.
        self.host = EngineHost(None)
        self.host.model = LoadedModel(model.folder, model.identity, None)
        self.queue = WindowJobQueue(self.engine)
        self.queue.count_changed.connect(lambda _: self.changed.emit(self.status()))
        # Beside the window's history, as `palidesk serve` keeps them beside the default one.
        images = ServedImages(self.engine.worker.store.history.path.parent / "served-images")
        state = ServeState(self.host, self.queue, images,  # type: ignore[arg-type]
                           installed_mask_decoder())
        state.loaded.set()
        self.background = BackgroundServer(state, "127.0.0.1", port)
        self.changed.emit(self.status())
        return self.background.address

    def stop(self, cancel_in_flight: bool = False) -> None:
        """Stop taking requests; the ones in flight finish first (their answers need this
        thread's event loop, so nothing here waits for them), or are cancelled within a
        token when the window closes."""
        if self.background is None:
            return
        background, self.background = self.background, None
        assert self.queue is not None
        self.queue.close(cancel=cancel_in_flight)
        background.server.should_exit = True
        self.stopping = background
        self.changed.emit("")

    @property
    def stopped(self) -> bool:
        """Whether the server's thread has ended (after ``stop``)."""
        return self.stopping is None or not self.stopping.thread.is_alive()

    def status(self) -> str:
        if self.background is None or self.queue is None:
            return ""
        n = self.queue.served
        return (f"Serving on {self.background.address} · {n} request"
                + ("" if n == 1 else "s"))

    @Slot(object)
    def _model_loaded(self, model: WindowModel) -> None:
        # A swap in Settings: later requests run on the new model (one in flight when the
        # load was sent finished first, since the engine thread takes one intent at a time).
        if self.host is not None:
            self.host.model = LoadedModel(model.folder, model.identity, None)


class LocalServerDialog(QDialog):
    """Start/Stop, the port, and the addresses to give other tools."""

    def __init__(self, server: LocalServer, window: QMainWindow) -> None:
        super().__init__(window)
        self.setWindowTitle("Local Server")
        self.server = server
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(DEFAULT_PORT)
        self.button = QPushButton()
        self.button.clicked.connect(self.toggle)
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(self.info.textInteractionFlags()
                                          | self.info.textInteractionFlags().TextSelectableByMouse)
        row = QHBoxLayout()
        row.addWidget(QLabel("Port on 127.0.0.1:"))
        row.addWidget(self.port)
        row.addWidget(self.button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.info)
        # Wide enough for the addresses on one line each: a wrapped URL is hard to copy.
        self.setMinimumWidth(self.fontMetrics().horizontalAdvance(
            "X-AnyLabeling: http://127.0.0.1:65535/xanylabeling") + 60)
        server.changed.connect(self._show)
        self._show(server.status())

    def toggle(self) -> None:
        if self.server.running:
            self.server.stop()
            return
        try:
            self.server.start(self.port.value())
        except PaliDeskError as exc:
            self.info.setText(str(exc))

    def _show(self, status: str) -> None:
        running = self.server.running
        self.button.setText("Stop" if running else "Start")
        self.port.setEnabled(not running)
        if not running:
            self.info.setText("Serves the loaded model to other tools on this machine "
                              "(OpenAI-compatible chat, /v1/run, Label Studio, "
                              "X-AnyLabeling); see docs/server.md.")
            return
        base = f"http://{self.server.background.address}"  # type: ignore[union-attr]
        self.info.setText(f"{status}\n\nOpenAI base URL: {base}/v1\nLabel Studio: {base}\n"
                          f"X-AnyLabeling: {base}/xanylabeling\nHealth: {base}/health")
        self.adjustSize()  # the label grew by four lines: show them all


def local_server_for(window: QMainWindow) -> LocalServer | None:
    """The server on ``window``'s engine and model, with its status in the status bar;
    None (after saying why) when the server extra is not installed."""
    from PySide6.QtWidgets import QMessageBox

    try:
        import defusedxml  # noqa: F401
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        QMessageBox.information(window, "Local Server", "The local server needs the server "
                                "extra: pip install 'palidesk[server]'")
        return None
    server = LocalServer(window.engine, lambda: getattr(window, "model", None))  # type: ignore[attr-defined]
    label = QLabel()
    window.statusBar().addPermanentWidget(label)
    server.changed.connect(label.setText)
    return server
