"""The server's plain-Python parts: the FIFO in front of the engine, the request guard's
streamed body count, and `palidesk serve` without the server extra or on Ctrl+C."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.server.job_queue import JobQueue, QueueClosed, QueueFull
from app.server.request_guard import RequestGuard, host_name, is_loopback, presented_key


class SlowRunner:
    """Runs jobs one at a time; each waits for its release (so tests see the line)."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.release: dict[str, threading.Event] = {}
        self.running = threading.Event()

    def __call__(self, job: str, sink) -> None:
        self.running.set()
        self.release.setdefault(job, threading.Event()).wait(10)
        self.ran.append(job)
        sink(f"{job} done")


def test_jobs_run_one_at_a_time_in_arrival_order() -> None:
    runner = SlowRunner()
    queue: JobQueue[str] = JobQueue(runner, capacity=5)
    events: list[object] = []
    for name in ("a", "b", "c"):
        runner.release[name] = threading.Event()
        queue.submit(name, events.append, lambda: None)
    assert runner.running.wait(5)
    assert queue.queued == 3
    for name in ("c", "b", "a"):  # released in reverse: the order still holds
        runner.release[name].set()
    deadline = time.monotonic() + 10
    while queue.queued and time.monotonic() < deadline:
        time.sleep(0.01)
    queue.close(wait=True, timeout=10)
    assert runner.ran == ["a", "b", "c"]
    assert events == ["a done", "b done", "c done"]


def test_past_capacity_the_queue_refuses_and_close_drops_the_waiting() -> None:
    runner = SlowRunner()
    queue: JobQueue[str] = JobQueue(runner, capacity=1)
    dropped: list[str] = []
    queue.submit("running", lambda _: None, lambda: dropped.append("running"))
    assert runner.running.wait(5)
    queue.submit("waiting", lambda _: None, lambda: dropped.append("waiting"))
    with pytest.raises(QueueFull):
        queue.submit("one too many", lambda _: None, lambda: None)
    closer = threading.Thread(target=queue.close)
    closer.start()
    time.sleep(0.1)
    with pytest.raises(QueueClosed):
        queue.submit("late", lambda _: None, lambda: None)
    runner.release["running"].set()  # the running job finishes; the waiting one never runs
    closer.join(10)
    assert runner.ran == ["running"]
    assert dropped == ["waiting"]


def test_a_runner_that_raises_does_not_stop_the_line() -> None:
    ran: list[str] = []

    def runner(job: str, sink) -> None:
        if job == "bad":
            raise RuntimeError("boom")
        ran.append(job)

    queue: JobQueue[str] = JobQueue(runner, capacity=4)
    queue.submit("bad", lambda _: None, lambda: None)
    queue.submit("good", lambda _: None, lambda: None)
    deadline = time.monotonic() + 10
    while queue.queued and time.monotonic() < deadline:
        time.sleep(0.01)
    queue.close(wait=True, timeout=10)
    assert ran == ["good"]


def test_loopback_and_host_names() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
    assert host_name("LocalHost:8637") == "localhost"
    assert host_name("[::1]:8637") == "[::1]"
    assert presented_key([(b"Authorization", b"Bearer abc")]) == "abc"
    assert presented_key([(b"token", b"xyz")]) == "xyz"
    assert presented_key([(b"authorization", b"Basic abc")]) is None


def test_a_body_without_content_length_is_counted_as_it_arrives() -> None:
    """Chunked uploads carry no Content-Length: the guard counts and stops at the limit."""
    read: list[int] = []

    async def app(scope, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            read.append(len(message["body"]))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    chunks = [{"type": "http.request", "body": b"x" * 1000, "more_body": True}] * 10
    sent: list[dict] = []

    async def receive():
        return chunks.pop(0)

    async def send(message) -> None:
        sent.append(message)

    guard = RequestGuard(app, bind_host="127.0.0.1", api_key=None, max_body=2500)
    scope = {"type": "http", "method": "POST", "path": "/v1/run",
             "headers": [(b"host", b"127.0.0.1:8637")]}
    asyncio.run(guard(scope, receive, send))
    assert sent[0]["status"] == 413
    assert len(sent) == 2  # the handler's own answer never reached the client
    assert sum(read) <= 3000  # reading stopped at the limit, not at the end of the body


def test_serve_without_the_extra_says_what_to_install(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['fastapi'] = None; from app.cli.main import main; "
            "sys.exit(main(['serve', '--model', 'x']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).parent.parent, timeout=60)
    assert done.returncode == 1
    assert "pip install 'palidesk[server]'" in done.stderr


def test_the_cli_does_not_import_the_web_stack() -> None:
    code = ("import sys; from app.cli.main import _parser; _parser(); "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'pydantic') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).parent.parent, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_ctrl_c_finishes_the_request_in_flight_and_exits_0(converted, tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from tests.server_process import ServerProcess, image_b64

    server = ServerProcess(converted("pg2-tiny-224"), tmp_path, "--quant", "F32")
    try:
        server.wait_ready()
        answers: list[tuple[int, object]] = []

        def client() -> None:
            status, _, body = server.request("POST", "/v1/run", {
                "image": image_b64(), "task": "caption", "max_tokens": 2048})
            answers.append((status, body))

        thread = threading.Thread(target=client)
        thread.start()
        deadline = time.monotonic() + 10
        while server.request("GET", "/health")[2]["queued"] < 1 and time.monotonic() < deadline:  # type: ignore[index]
            time.sleep(0.01)
    finally:
        code = server.stop()
    thread.join(60)
    assert code == 0, server.log.read_text()
    assert answers and answers[0][0] == 200
    assert len(answers[0][1]["tokens"]) == 2048  # type: ignore[index]  # finished, not cut


def test_the_served_model_is_planned_and_loaded_by_the_core(converted) -> None:
    """`palidesk serve` resolves and plans through app.session, as the window does: the
    window's context (room for 2048 new tokens, whatever a request asks), the planner's
    identity, and jobs of the core that always run."""
    from app.engine.context_size import context_new_tokens
    from app.engine.events import GenerationOptions
    from app.server.engine_host import EngineHost, LoadFinished, LoadModel, open_results, plan_model
    from app.session.load_plan import plan_load
    from app.tasks.task_options import checked_request

    model = converted("pg2-tiny-224")
    host = EngineHost(open_results(keep_history=False))
    finished: list[object] = []
    try:
        host.run(LoadModel(plan_model(str(model), "Q8_0", None, 1)), finished.append)
        [loaded] = finished
        assert isinstance(loaded, LoadFinished) and loaded.model is not None, loaded
        assert host.engine is not None
        assert host.engine.config.max_new_tokens_limit == context_new_tokens(None) == 2048
        assert loaded.model.identity == plan_load(model, "Q8_0", 0).identity
        assert loaded.model.version == "pg2-tiny-224:Q8_0"  # Label Studio's model_version
        assert loaded.model.choice is None  # the quantization was named: nothing chosen
        job = host.make_job(model / "none.png", checked_request("caption"),
                            GenerationOptions(), "0" * 64, None)
        assert job.job_id >= 1_000_000 and not job.skip_if_done
    finally:
        host.close()


def test_only_the_image_formats_palidesk_opens_are_accepted() -> None:
    """A request's image goes only to the decoders of the formats the window opens: an
    EPS would otherwise be rendered by Ghostscript (Pillow runs it on load), a
    PostScript interpreter fed by whoever can reach the server."""
    import io

    from PIL import Image

    from app.server.request_errors import RequestRefused
    from app.server.served_images import check_image

    def encoded(fmt: str, **options: object) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), "red").save(buffer, fmt, **options)
        return buffer.getvalue()

    assert check_image(encoded("PNG"), "image") == ".png"
    assert check_image(encoded("JPEG"), "image") == ".jpg"
    # A phone's multi-picture JPEG reads as MPO: still a JPEG file.
    assert check_image(encoded("MPO", save_all=True,
                               append_images=[Image.new("RGB", (8, 8))]), "image") == ".jpg"
    with pytest.raises(RequestRefused) as refused:
        check_image(encoded("EPS"), "image")
    assert refused.value.status == 400
    assert "JPEG" in refused.value.message and "PNG" in refused.value.message


def test_an_image_check_leaves_the_event_loop_free(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checking an image decodes all of it; done on the event loop, /health and every other
    request waited for it. The loop must keep turning while a (slow) check runs."""
    import asyncio

    from app.server import served_images

    def slow_check(data: bytes, field: str) -> str:
        time.sleep(0.3)  # a large photo being decoded
        return ".png"

    monkeypatch.setattr(served_images, "check_image", slow_check)

    async def scenario() -> tuple[str, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        suffix = await served_images.checked_image(b"...", "image")
        task.cancel()
        return suffix, ticks

    suffix, ticks = asyncio.run(scenario())
    assert suffix == ".png"
    assert ticks >= 5  # on the loop itself it would be 0
