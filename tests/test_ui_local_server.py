"""Tools › Local Server…: served requests run on the window's own engine thread, in the
same line as the window's Run, and land in the window's history."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
from pathlib import Path

import pytest
from test_ui_session_window import _close, _images, _queue, _window

from conftest import IMAGES

pytest.importorskip("fastapi")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(port: int, body: dict, answers: list) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("POST", "/v1/run", json.dumps(body),
                           {"content-type": "application/json"})
        response = connection.getresponse()
        answers.append((response.status, json.loads(response.read())))
    finally:
        connection.close()


def test_served_requests_share_the_windows_engine_queue_and_history(
        qtbot, tmp_path: Path, converted) -> None:
    win = _window(qtbot, tmp_path, converted("pg2-tiny-224"))
    try:
        _queue(qtbot, win, _images(tmp_path, ("shapes_320x240.png",)))
        dialog = win.tools_menu.show_local_server()
        port = _free_port()
        dialog.port.setValue(port)
        dialog.toggle()
        server = win.tools_menu.local_server
        assert server.running
        assert f"127.0.0.1:{port}" in dialog.info.text()
        before = len(win.history.recent(limit=1000))

        answers: list = []
        body = {"image": base64.b64encode((IMAGES / "noise_97x150.png").read_bytes()).decode(),
                "task": "caption", "max_tokens": 12}
        client = threading.Thread(target=_post, args=(port, body, answers))
        client.start()
        win.run_current()  # the window's own job, in the same line as the served one
        qtbot.waitUntil(lambda: bool(answers) and win.session.running is None,
                        timeout=120_000)
        client.join(30)

        status, record = answers[0]
        assert status == 200, record
        stored = win.history.recent(limit=1000)
        assert len(stored) == before + 2  # the served result and the window's, once each
        served = [r for r in stored if r.tokens == record["tokens"]
                  and Path(r.image_path).parent.name == "served-images"]
        assert len(served) == 1
        assert served[0].model == win.model.identity.name
        label = [w for w in win.statusBar().findChildren(type(dialog.info))
                 if w.text().startswith("Serving on")]
        assert label and label[0].text() == f"Serving on 127.0.0.1:{port} · 1 request"

        dialog.toggle()  # Stop
        qtbot.waitUntil(lambda: server.stopped, timeout=30_000)
        assert not server.running
        dialog.close()
    finally:
        _close(win, qtbot)


def test_a_model_swap_waits_for_the_served_request_in_flight(
        qtbot, tmp_path: Path, converted) -> None:
    folder = converted("pg2-tiny-224")
    win = _window(qtbot, tmp_path, folder)
    try:
        dialog = win.tools_menu.show_local_server()
        port = _free_port()
        dialog.port.setValue(port)
        dialog.toggle()
        server = win.tools_menu.local_server
        image = base64.b64encode((IMAGES / "shapes_320x240.png").read_bytes()).decode()
        answers: list = []
        started: list[int] = []
        win.engine.worker.job_started.connect(started.append)
        client = threading.Thread(target=_post, args=(
            port, {"image": image, "task": "caption", "max_tokens": 2048}, answers))
        client.start()
        # In flight: the engine has begun it (queued alone, the swap could reach the engine
        # first, and the job would rightly refuse to run on a model it did not ask for).
        qtbot.waitUntil(lambda: server.queue.queued == 1 and bool(started), timeout=30_000)
        win.settings.quantization = "F32"
        win.load_model(folder)  # the swap is sent while the served job runs
        qtbot.waitUntil(lambda: bool(answers) and not win.loading, timeout=120_000)
        client.join(30)
        status, record = answers[0]
        assert status == 200, record
        assert record["stop_reason"] != "cancelled"  # it finished on the model it began on
        first = [r for r in win.history.recent(limit=100) if r.tokens == record["tokens"]]
        assert [r.quantization for r in first] == ["F16"]

        later: list = []  # sent from a thread: the answer needs the UI loop running
        client = threading.Thread(target=_post, args=(
            port, {"image": image, "task": "caption", "max_tokens": 8}, later))
        client.start()
        qtbot.waitUntil(lambda: bool(later), timeout=60_000)
        client.join(30)
        assert later[0][0] == 200, later[0]
        assert win.history.recent(limit=1)[0].quantization == "F32"  # the new model

        dialog.toggle()
        qtbot.waitUntil(lambda: server.stopped, timeout=30_000)
        dialog.close()
    finally:
        _close(win, qtbot)
