"""How the real window keeps up with a fast token stream (issue 17, item 6).

A synthetic engine is put into the real ``EngineWorker`` (its own QThread, the real
``execute_job`` -> ``run_task`` -> ``token``/``object_found``/``job_ended`` signals) and
"generates" a fixed answer at ``--rate`` tokens per second into a real, shown
``MainWindow``. Nothing in the window is replaced; only its engine is synthetic, so what
is measured is the window's own handling of tokens. It measures:

- UI time per token at tokens 100/500/1000/2000: the CPU time of the UI thread
  (``time.thread_time``) while the window received tokens k-50..k+50, divided by the
  tokens in that span — everything the window does for those tokens (slots, coalesced
  flushes, layout, painting), amortised. When the UI thread cannot keep up it is busy all
  the time, and this is the time per token handled.
- the largest freeze: the longest gap between ticks of a 5 ms QTimer, minus 5 ms; and
  the most CPU time the UI thread spent between two ticks (its own work, without the
  time it waited for a core on a busy machine);
- display lag: from a token's emission (in the engine thread) to the first paint of the
  results text that contains it;
- Esc: a second run is cancelled with an Esc key press (QTest, through the window's
  shortcut) at token ``--esc-at``; from the press being posted (in the engine thread)
  to the window's cancel running, and to the cancelled result being shown with the event
  loop idle again.

Baseline in the same run: the results panel alone, fed the same tokens directly
(``append_text`` per token, shown, with its layout and paints), in UI-thread CPU time too.
The result is stored (history, in the worker) between "generation stopped" and "shown".

``--before REF`` also measures the code of git revision REF (extracted to a temporary
folder and run in a subprocess) and prints both side by side. Runs offscreen by default.

    .venv/bin/python bench/stream_window.py --before HEAD~3
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE = REPO / "tests" / "fixtures" / "images" / "shapes_320x240.png"
AT = (100, 500, 1000, 2000)
HALF = 50  # tokens either side of each point of AT

_WORDS = ("the", "a", "cat", "sitting", "on", "wooden", "table", "next", "to", "small",
          "red", "ball", "and", "in", "background", "there", "is", "window", "with",
          "white", "curtains", "light", "coming", "through", "it", "of", "large")


def caption_tokens(count: int, seed: int = 17) -> list[str]:
    """A long detailed caption as SentencePiece-like pieces: one paragraph, like the
    model's, with a sentence end now and then."""
    rng = random.Random(seed)
    pieces = []
    for index in range(count):
        if index and index % 23 == 0:
            pieces.append(".")
        else:
            pieces.append(" " + rng.choice(_WORDS) if index else rng.choice(_WORDS))
    return pieces


def detect_tokens(count: int, seed: int = 17) -> list[str]:
    """A detect answer: four location tokens and a label per object, ``;`` between."""
    rng = random.Random(seed)
    pieces: list[str] = []
    while len(pieces) < count:
        y0, x0 = rng.randrange(0, 900), rng.randrange(0, 900)
        pieces += [f"<loc{y0:04d}>", f"<loc{x0:04d}>", f"<loc{y0 + 50:04d}>",
                   f"<loc{x0 + 80:04d}>", " cat", " ;"]
    return pieces[:count]


# --- the measurement (runs against whichever ``app`` is importable) -------------------------


def measure(task: str, tokens: int, rate: float, esc_at: int, model: str | None = None,
            threads: int = 1) -> dict:
    """The figures of one window; ``model``: a real model folder instead of the synthetic
    engine (its own speed, ``threads`` decode threads)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEvent, QEventLoop, QObject, Qt, QTimer, Signal
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from app.engine.events import ResultEvent, Timings, TokenEvent
    from app.engine.image_input import prepare_image
    from app.history import HistoryStore
    from app.session.identity import ModelIdentity
    from app.settings import Settings, SettingsStore
    from app.ui.engine_worker import LoadedModel
    from app.ui.main_window import MainWindow
    from app.ui.results_panel import ResultsPanel, display_text

    app = QApplication.instance() or QApplication([])
    pieces = caption_tokens(tokens) if task == "describe" else detect_tokens(tokens)

    class Pair:
        pair_id, quant = "bench-pair", "F16"

    class PacedEngine:
        """What run_task needs of an engine: a paced, cancellable token stream."""

        pair = Pair()
        loaded = False  # so the worker's prefetch leaves it alone
        config = None

        def __init__(self) -> None:
            self.stopped_at = 0.0  # when the generation ended

        def prepare(self, image):
            return prepare_image(image, 32)

        def image_rows(self, image):  # never called: ``loaded`` is False
            raise AssertionError

        def unload(self) -> None:
            pass

        def generate(self, prepared, prompt, options=None, cancel=None):
            start = time.perf_counter()
            count = 0
            stop = "max_tokens"
            for index, piece in enumerate(pieces):
                if cancel is not None and cancel.cancelled:
                    stop = "cancelled"
                    break
                due = start + index / rate
                while (now := time.perf_counter()) < due:
                    time.sleep(min(due - now, 0.0005))
                count = index + 1
                yield TokenEvent(token_id=1000 + index, text=piece, index=index)
            self.stopped_at = time.perf_counter()
            yield ResultEvent(tokens=list(range(1000, 1000 + count)),
                              text="".join(pieces[:count]), prompt=prompt,
                              prompt_tokens=[2], stop_reason=stop,
                              timings=Timings(0.0, 0.0, 0.001, count / rate, rate, 260,
                                              True), image_size=prepared.original_size)

    class Probe(QObject):
        """Lives in the UI thread; connected after the window, so it sees each signal
        right after the window handled it."""

        esc_pressed = Signal(float)

        def __init__(self) -> None:
            super().__init__()
            self.received: list[float] = []
            self.cpu: list[float] = []  # the UI thread's CPU time at each token
            self.ended_at: float | None = None
            self.outcome = None
            self.idle_at: float | None = None
            self.esc_posted: float | None = None
            self.loop: QEventLoop | None = None
            self.esc_pressed.connect(self._press_esc)

        def token(self, _job: int, _text: str) -> None:
            self.received.append(time.perf_counter())
            self.cpu.append(time.thread_time())

        def ended(self, outcome) -> None:
            self.ended_at = time.perf_counter()
            self.outcome = outcome
            QTimer.singleShot(0, self._idle)

        def _idle(self) -> None:
            self.idle_at = time.perf_counter()
            if self.loop is not None:  # a little longer, for the last paints
                QTimer.singleShot(200, self.loop.quit)

        def _press_esc(self, posted: float) -> None:
            self.esc_posted = posted
            QTest.keyClick(window, Qt.Key.Key_Escape)

    class PaintProbe(QObject):
        def __init__(self, panel) -> None:
            super().__init__()
            self.panel = panel
            self.paints: list[tuple[float, int]] = []  # (time, chars of answer painted)

        def eventFilter(self, obj, event) -> bool:
            if event.type() == QEvent.Type.Paint:
                self.paints.append((time.perf_counter(), len(self.panel.text())))
            return False

    tmp = Path(tempfile.mkdtemp(prefix="stream-window-"))
    store = SettingsStore(tmp / "settings.json")
    settings = Settings()
    settings.last_task = "caption" if task == "describe" else "detect"
    settings.caption_style = "describe"
    settings.detect_classes = "cat"
    settings.max_new_tokens = tokens
    if model:
        settings.model_folder, settings.quantization = model, "F16"
        settings.threads = threads
    store.save(settings)
    history = HistoryStore(tmp / "history.sqlite3")
    window = MainWindow(store, history, tmp / "cache")
    window.show()
    window.activateWindow()
    engine = PacedEngine()
    if model:
        _wait(app, lambda: window.model is not None, 120)
    else:
        window.engine.worker.engine = engine
        identity = ModelIdentity(Pair.pair_id, "synthetic", Pair.quant)
        # What the worker says after a load (emitted here, so it is handled at once).
        window.engine.worker.model_loaded.emit(
            LoadedModel(tmp, identity, 224, "mix", "synthetic"))
    window.queue.add_paths([IMAGE])
    _wait(app, lambda: bool(window.queue.items())
          and window.queue.items()[0].status != "loading")
    window.queue.set_current(window.queue.items()[0].key)
    _wait(app, lambda: False, 0.3)

    probe = Probe()
    window.engine.worker.token.connect(probe.token)
    window.engine.worker.job_ended.connect(probe.ended)
    emitted: list[float] = []  # when the worker emitted each token
    texts: list[str] = []
    esc: list[int | None] = [None]

    def on_emit(_job: int, text: str) -> None:  # in the worker thread
        now = time.perf_counter()
        if len(emitted) == esc[0]:
            probe.esc_pressed.emit(now)  # to the UI thread: press Esc there
        emitted.append(now)
        texts.append(text)

    window.engine.worker.token.connect(on_emit, Qt.ConnectionType.DirectConnection)
    stored_at: list[float] = []  # when the worker sent the outcome (the result is stored)
    window.engine.worker.job_ended.connect(lambda _o: stored_at.append(time.perf_counter()),
                                           Qt.ConnectionType.DirectConnection)
    paints = PaintProbe(window.results_panel)
    window.results_panel.text_edit.viewport().installEventFilter(paints)
    ticks: list[float] = []
    tick_cpu: list[float] = []  # the UI thread's CPU time at each tick

    def on_tick() -> None:
        ticks.append(time.perf_counter())
        tick_cpu.append(time.thread_time())

    tick = QTimer()
    tick.setTimerType(Qt.TimerType.PreciseTimer)
    tick.timeout.connect(on_tick)

    def one_run(esc_token: int | None) -> None:
        emitted.clear()
        texts.clear()
        esc[0] = esc_token
        probe.received.clear()
        probe.cpu.clear()
        probe.ended_at = probe.idle_at = probe.esc_posted = None
        paints.paints.clear()
        ticks.clear()
        tick_cpu.clear()
        tick.start(5)
        # The real event loop (not processEvents), as in the app: timers, posted token
        # signals and paints are ordered as they are for a user.
        probe.loop = QEventLoop()
        QTimer.singleShot(120_000, probe.loop.quit)
        window.run_current()
        probe.loop.exec()
        probe.loop = None
        tick.stop()

    # --- run 1: the whole answer -------------------------------------------------------
    one_run(None)
    result: dict = {"task": task, "tokens": tokens, "rate": rate}
    received, cpu, emitted_1 = list(probe.received), list(probe.cpu), list(emitted)
    streamed = list(texts)
    ends = list(_cumulative(len(t) for t in streamed))  # chars shown once token i is in
    per_token = {}
    for k in AT:
        lo, hi = max(0, k - HALF), min(len(received) - 1, k + HALF)
        if hi > lo:
            per_token[k] = 1000 * (cpu[hi] - cpu[lo]) / (hi - lo)
    result["ui_ms_per_token"] = per_token
    result["handled_s"] = received[-1] - emitted_1[0]
    result["generated_s"] = emitted_1[-1] - emitted_1[0]
    result["max_freeze_ms"] = 1000 * max(0.0, max(_gaps(ticks)) - 0.005)
    # Split at the end of the answer: while it streams, and showing the stored result.
    ended = probe.ended_at or ticks[-1]
    streaming = [t for t in ticks if t <= ended]
    result["max_freeze_streaming_ms"] = 1000 * max(0.0, max(_gaps(streaming)) - 0.005)
    # The UI thread's own work between two ticks (CPU time): what a freeze would be on
    # an idle machine; the rest of a wall-clock gap is waiting for a core (or the GIL).
    result["max_freeze_cpu_ms"] = 1000 * max(_gaps(tick_cpu))
    lags = _lags(emitted_1, ends, paints.paints)
    result["lag_ms"] = {"median": 1000 * statistics.median(lags),
                        "p95": 1000 * _percentile(lags, 95), "max": 1000 * max(lags)}
    result["tokens_streamed"] = len(streamed)
    final = window.results_panel.text()
    result["final_text_ok"] = final == display_text("".join(streamed)) and (
        bool(model) or streamed == pieces)
    result["rows"] = window.results_panel.object_rows()

    # --- run 2: Esc in the middle of a fast answer ---------------------------------------
    cancelled_at: list[float] = []
    real_cancel = window.session.cancel

    def timed_cancel() -> None:
        cancelled_at.append(time.perf_counter())
        real_cancel()

    window.session.cancel = timed_cancel
    one_run(esc_at)
    window.session.cancel = real_cancel
    if probe.esc_posted is not None and cancelled_at:
        result["esc_ms"] = {
            "to_cancel": 1000 * (cancelled_at[0] - probe.esc_posted),
            "to_stored": 1000 * (stored_at[-1] - probe.esc_posted),
            "to_shown_idle": 1000 * (probe.idle_at - probe.esc_posted),
        }
        if not model:
            result["esc_ms"]["to_stopped"] = 1000 * (engine.stopped_at - probe.esc_posted)
    # False when the answer ended by itself before the Esc was acted on.
    result["esc_cancelled"] = probe.outcome is not None and probe.outcome.status == "cancelled"
    kept = window.results_panel.text()
    result["esc_kept_tokens"] = len(texts)
    result["esc_text_ok"] = kept == display_text("".join(texts))
    result["esc_status"] = window.results_panel.status_label.text()

    # --- baseline: the results panel alone, in the same process ----------------------------
    panel = ResultsPanel()
    panel.resize(window.results_panel.size())
    panel.show()
    _wait(app, lambda: False, 0.2)
    panel.start(IMAGE.name, "describe en")
    costs: list[float] = []
    for piece in streamed:
        began = time.thread_time()  # CPU time, as for the window above
        panel.append_text(piece)
        app.processEvents()  # its layout and paint, as the event loop would
        costs.append(time.thread_time() - began)
    result["panel_alone_ms_per_token"] = {
        k: 1000 * statistics.mean(costs[max(0, k - HALF):k + HALF]) for k in AT
        if k < len(costs)}
    panel.close()

    window.close()
    _wait(app, lambda: not window.engine.thread.isRunning(), 30)
    history.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return result


def _cumulative(values):
    total = 0
    for value in values:
        total += value
        yield total


def _gaps(ticks: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(ticks)] or [0.0]


def _lags(emitted: list[float], ends: list[int], paints: list[tuple[float, int]]
          ) -> list[float]:
    """Per token: first paint showing it minus its emission (never painted: to the end)."""
    lags = []
    shown_upto = 0  # tokens visible so far
    painted: list[float] = [float("nan")] * len(emitted)
    for when, chars in paints:
        visible = min(bisect.bisect_right(ends, chars), len(emitted))
        for index in range(shown_upto, visible):
            painted[index] = when
        shown_upto = max(shown_upto, visible)
    last = paints[-1][0] if paints else emitted[-1]
    for index, sent in enumerate(emitted):
        when = painted[index]
        lags.append((last if when != when else when) - sent)
    return lags


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def _wait(app, done, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.001)


# --- before/after driver ------------------------------------------------------------------


def _extract(ref: str) -> Path:
    """The tree of ``ref`` in a temporary folder (its app/ is what gets imported)."""
    data = subprocess.run(["git", "-C", str(REPO), "archive", ref, "app"], check=True,
                          capture_output=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="stream-window-before-"))
    with tarfile.open(fileobj=BytesIO(data)) as archive:
        archive.extractall(folder, filter="data")
    return folder


def _run_child(source: Path, args: argparse.Namespace) -> dict:
    env = dict(os.environ, PYTHONPATH=str(source), QT_QPA_PLATFORM=os.environ.get(
        "QT_QPA_PLATFORM", "offscreen"))
    command = [sys.executable, str(Path(__file__).resolve()), "--measure", "--task",
               args.task, "--tokens", str(args.tokens), "--rate", str(args.rate),
               "--esc-at", str(args.esc_at), "--threads", str(args.threads)]
    if args.model:
        command += ["--model", str(args.model)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False,
                         cwd=str(source))
    if out.returncode != 0:
        raise SystemExit(f"the run against {source} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _row(name: str, values: list[str]) -> str:
    return f"{name:<38}" + "".join(f"{v:>16}" for v in values)


def report(results: list[tuple[str, dict]]) -> None:
    print(_row("", [label for label, _ in results]))
    for k in AT:
        print(_row(f"UI ms per token at {k}",
                   [f"{_get(r['ui_ms_per_token'], k):.3f}" for _, r in results]))
    for k in AT:
        print(_row(f"  panel alone at {k} (baseline)",
                   [f"{_get(r['panel_alone_ms_per_token'], k):.3f}" for _, r in results]))
    window, panel = "ui_ms_per_token", "panel_alone_ms_per_token"
    print(_row("  ratio window/panel alone at 2000",
               [f"{_get(r[window], 2000) / _get(r[panel], 2000):.2f}" for _, r in results]))
    print(_row("  ratio window at 2000 / at 100",
               [f"{_get(r[window], 2000) / _get(r[window], 100):.2f}" for _, r in results]))
    print(_row("tokens generated in (s)", [f"{r['generated_s']:.2f}" for _, r in results]))
    print(_row("tokens handled in (s)", [f"{r['handled_s']:.2f}" for _, r in results]))
    print(_row("largest freeze (ms)", [f"{r['max_freeze_ms']:.1f}" for _, r in results]))
    print(_row("  of which while streaming (ms)",
               [f"{r.get('max_freeze_streaming_ms', float('nan')):.1f}" for _, r in results]))
    print(_row("largest UI work between ticks (CPU ms)",
               [f"{r.get('max_freeze_cpu_ms', float('nan')):.1f}" for _, r in results]))
    for key in ("median", "p95", "max"):
        print(_row(f"display lag {key} (ms)", [f"{r['lag_ms'][key]:.1f}" for _, r in results]))
    print(_row("Esc -> cancel (ms)",
               [f"{r.get('esc_ms', {}).get('to_cancel', float('nan')):.1f}"
                for _, r in results]))
    print(_row("Esc -> generation stopped (ms)",
               [("ended first" if not r.get("esc_cancelled") else
                 f"{r['esc_ms']['to_stopped']:.1f}" if "to_stopped" in r.get("esc_ms", {})
                 else "n/a (real engine)") for _, r in results]))
    print(_row("Esc -> result stored by the worker (ms)",
               [f"{r.get('esc_ms', {}).get('to_stored', float('nan')):.1f}"
                for _, r in results]))
    print(_row("Esc -> result shown, idle (ms)",
               [f"{r.get('esc_ms', {}).get('to_shown_idle', float('nan')):.1f}"
                for _, r in results]))
    print(_row("final text exact", [str(r["final_text_ok"]) for _, r in results]))
    print(_row("Esc kept text exact", [str(r["esc_text_ok"]) for _, r in results]))
    if results[-1][1]["task"] == "detect":
        print(_row("detections listed", [str(r["rows"]) for _, r in results]))


def _get(mapping: dict, key: int) -> float:
    return mapping.get(key, mapping.get(str(key), float("nan")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=("describe", "detect"), default="describe")
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--rate", type=float, default=1000.0, help="tokens per second")
    parser.add_argument("--esc-at", type=int, default=1500, help="token of the Esc press")
    parser.add_argument("--before", help="also measure this git revision (e.g. HEAD~2)")
    parser.add_argument("--model", type=Path,
                        help="a converted model folder: its real engine instead of the "
                             "synthetic stream (at the model's own speed)")
    parser.add_argument("--tiny", action="store_true",
                        help="--model: the tiny test model, converted to a temporary folder")
    parser.add_argument("--threads", type=int, default=1, help="decode threads (--model)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # a child run: one JSON line for the parent
        print(json.dumps(measure(args.task, args.tokens, args.rate, args.esc_at,
                                 str(args.model) if args.model else None, args.threads)))
        return
    if args.tiny:
        from app.convert.converter import convert_checkpoint

        args.model = Path(tempfile.mkdtemp(prefix="stream-window-tiny-")) / "pg2-tiny-224"
        convert_checkpoint(REPO / "tests" / "fixtures" / "tiny" / "pg2-tiny-224", args.model,
                           "f16")
    results = []
    if args.before:
        before = _extract(args.before)
        try:
            results.append((f"before {args.before}", _run_child(before, args)))
        finally:
            shutil.rmtree(before, ignore_errors=True)
    results.append(("this tree", _run_child(REPO, args)))
    source = (f"{args.model.name} (real engine, {args.threads} thread(s))" if args.model
              else f"at {args.rate:.0f} tokens/s")
    print(f"{args.task}: up to {args.tokens} tokens {source} into the window; streamed "
          + " / ".join(str(r["tokens_streamed"]) for _, r in results))
    report(results)
    if args.json:
        args.json.write_text(json.dumps(dict(results), indent=2))
    if args.tiny:
        shutil.rmtree(args.model.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
