"""`palidesk serve` against a real server process on a free port: the same answer as
`palidesk run --json`, the official openai client, the queue, and the history."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.server_process import IMAGES, ServerProcess, data_uri, image_b64, user_env

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")

LONG = 2048  # new tokens: about 2 s on the tiny model, long enough to watch a job run


@pytest.fixture(scope="module")
def model(converted) -> Path:
    return converted("pg2-tiny-224")


@pytest.fixture(scope="module")
def server(model: Path, tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("serve-home")
    process = ServerProcess(model, home, "--quant", "F32")
    try:
        process.wait_ready()
        yield process
    finally:
        assert process.stop() == 0, process.log.read_text()


def history_rows(server: ServerProcess) -> list[sqlite3.Row]:
    path = server.home / "data" / "PaliDesk" / "history.sqlite3"
    if not path.exists():
        return []
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute("SELECT * FROM results ORDER BY id").fetchall()
    finally:
        connection.close()


def chat_body(prompt: str, max_tokens: int = 12, **more: object) -> dict[str, object]:
    return {"model": "pg2-tiny-224", "max_tokens": max_tokens, **more, "messages": [
        {"role": "user", "content": [{"type": "text", "text": prompt},
                                     {"type": "image_url", "image_url": {"url": data_uri()}}]}]}


def run_json(model: Path, home: Path, *options: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "run", str(IMAGES / "shapes_320x240.png"),
         "--model", str(model), "--quant", "F32", "--threads", "1", "--json", *options],
        capture_output=True, text=True, env=user_env(home), check=True,
        cwd=Path(__file__).parent.parent)
    return json.loads(done.stdout)


def test_banner_names_the_address_and_every_endpoint(server: ServerProcess) -> None:
    banner = "".join(server.banner)
    for path in ("/health", "/v1/models", "/v1/chat/completions", "/v1/run"):
        assert f"{server.base}{path}" in banner
    assert server.host == "127.0.0.1"


@pytest.mark.parametrize("options", [
    ("--task", "detect", "--classes", "cat;dog", "--max-tokens", "20"),
    ("--task", "caption", "--lang", "fr", "--max-tokens", "16"),
    ("--task", "segment", "--classes", "cat", "--max-tokens", "24"),
    ("--task", "ask", "--prompt", "what is here?", "--max-tokens", "8", "--temperature",
     "0.7", "--seed", "5", "--top-k", "40", "--top-p", "0.9"),
])
def test_run_answers_what_palidesk_run_json_answers(server: ServerProcess, model: Path,
                                                   options: tuple[str, ...]) -> None:
    expected = run_json(model, server.home, *options)
    body: dict[str, object] = {"image": image_b64(), "image_name": "shapes_320x240.png"}
    for flag, value in zip(options[::2], options[1::2], strict=True):
        body[flag[2:].replace("-", "_")] = value
    status, _, record = server.request("POST", "/v1/run", body)
    assert status == 200, record
    assert isinstance(record, dict)
    assert list(record) == list(expected)  # the same keys, in the same order
    for key in ("task", "prompt", "tokens", "text", "objects", "stop_reason", "image_size"):
        assert record[key] == expected[key], key
    assert record["image"] == "shapes_320x240.png"


def test_run_takes_a_multipart_upload(server: ServerProcess) -> None:
    boundary = "palidesk-test-boundary"
    parts = [("task", "detect"), ("classes", "cat ; dog"), ("max_tokens", "20")]
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        .encode() for name, value in parts)
    body += (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
             f'filename="shapes.png"\r\nContent-Type: image/png\r\n\r\n').encode()
    body += (IMAGES / "shapes_320x240.png").read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    status, _, record = server.request(
        "POST", "/v1/run", raw=body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    status_json, _, from_json = server.request("POST", "/v1/run", {
        "image": image_b64(), "task": "detect", "classes": "cat;dog", "max_tokens": 20})
    assert status == status_json == 200, record
    assert isinstance(record, dict) and isinstance(from_json, dict)
    assert record["tokens"] == from_json["tokens"]
    assert record["image"] == "shapes.png"


def test_each_result_is_stored_once_and_marked_as_served(server: ServerProcess) -> None:
    before = len(history_rows(server))
    status, _, record = server.request("POST", "/v1/run", {
        "image": image_b64("noise_97x150.png"), "task": "ocr", "max_tokens": 5})
    assert status == 200, record
    rows = history_rows(server)
    assert len(rows) == before + 1
    stored = rows[-1]
    assert json.loads(stored["tokens"]) == record["tokens"]  # type: ignore[index]
    # Served images are kept beside the history, named by their digest: the mark.
    assert Path(stored["image_path"]).parent.name == "served-images"
    assert Path(stored["image_path"]).read_bytes() == (IMAGES / "noise_97x150.png").read_bytes()


def test_a_sampled_chat_without_a_seed_differs_from_call_to_call(server: ServerProcess) -> None:
    """As with OpenAI: no seed means a new random one (it was always seed 0, so every
    "random" answer repeated); the same seed gives the same answer."""
    client = openai.OpenAI(base_url=f"{server.base}/v1", api_key="unused")
    messages = chat_body("caption en", 20)["messages"]

    def answer(**seed: int) -> str:
        completion = client.chat.completions.create(
            model="pg2-tiny-224", messages=messages, max_tokens=20, temperature=1.0, **seed)
        return completion.choices[0].message.content or ""

    unseeded = {answer() for _ in range(3)}
    assert len(unseeded) > 1  # 20 tokens sampled at temperature 1 by a random model
    assert answer(seed=7) == answer(seed=7)


def test_openai_client_non_streaming_and_streaming(server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{server.base}/v1", api_key="unused")
    messages = chat_body("detect cat ; dog", 20)["messages"]
    completion = client.chat.completions.create(model="pg2-tiny-224", messages=messages,
                                                max_tokens=20, seed=1)
    expected = server.request("POST", "/v1/run", {
        "image": image_b64(), "task": "detect", "classes": "cat;dog", "max_tokens": 20})[2]
    assert isinstance(expected, dict)
    text = completion.choices[0].message.content
    assert text == expected["text"].removesuffix("<eos>")
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage is not None and completion.usage.completion_tokens == 20
    extra = completion.model_extra or {}
    assert extra["palidesk"]["objects"] == expected["objects"]  # boxes in original pixels
    assert extra["timings"]["prefix_tokens"] > 0

    chunks = list(client.chat.completions.create(
        model="pg2-tiny-224", messages=messages, max_tokens=20, stream=True,
        stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 20


def test_stream_ends_with_done(server: ServerProcess) -> None:
    connection = server.connection()
    connection.request("POST", "/v1/chat/completions",
                       json.dumps(chat_body("caption en", 4, stream=True)),
                       {"content-type": "application/json"})
    response = connection.getresponse()
    text = response.read().decode()
    connection.close()
    assert response.getheader("content-type", "").startswith("text/event-stream")
    events = [line for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[-2][6:])["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(("change", "words"), [
    (lambda b: b["messages"][0]["content"].append(
        {"type": "image_url", "image_url": {"url": data_uri()}}), "2 images"),
    (lambda b: b["messages"].extend([{"role": "assistant", "content": "a cat"},
                                     {"role": "user", "content": "and?"}]),
     "no conversation"),
    (lambda b: b.update(tools=[{"type": "function", "function": {"name": "f"}}]),
     "does not call tools"),
    (lambda b: b["messages"].insert(0, {"role": "system", "content": "Be nice."}),
     "no system prompt"),
    (lambda b: b["messages"][0].update(content="caption en"), "no image"),
])
def test_chat_refuses_what_paligemma_cannot_do(server: ServerProcess, change, words) -> None:
    body = chat_body("caption en")
    change(body)
    status, _, answer = server.request("POST", "/v1/chat/completions", body)
    assert status == 400
    assert words in answer["error"]["message"]  # type: ignore[index]
    assert "PaliGemma" in answer["error"]["message"]  # type: ignore[index]


def test_models_lists_the_served_model_as_loaded(server: ServerProcess) -> None:
    status, _, answer = server.request("GET", "/v1/models")
    assert status == 200
    assert {"id": "pg2-tiny-224", "object": "model", "created": 0, "owned_by": "palidesk",
            "loaded": True} in answer["data"]  # type: ignore[index]


def _stream_long(server: ServerProcess, started: threading.Event, stop: threading.Event,
                 outcome: dict) -> None:
    connection = server.connection()
    connection.request("POST", "/v1/chat/completions",
                       json.dumps(chat_body("caption en", LONG, stream=True)),
                       {"content-type": "application/json"})
    response = connection.getresponse()
    outcome["status"] = response.status
    response.readline()  # the role chunk: the job is queued
    while not stop.is_set():
        line = response.readline()
        if b'"content"' in line:
            started.set()  # tokens flow: the engine is busy
        if not line or line.startswith(b"data: [DONE]"):
            outcome["finished"] = True
            break
    connection.sock.close()  # the client goes away mid-answer
    connection.close()


def test_health_answers_at_once_while_a_generation_runs(server: ServerProcess) -> None:
    started, stop, outcome = threading.Event(), threading.Event(), {}
    client = threading.Thread(target=_stream_long, args=(server, started, stop, outcome))
    client.start()
    try:
        assert started.wait(30)
        times = []
        for _ in range(10):
            t0 = time.perf_counter()
            status, _, body = server.request("GET", "/health")
            times.append(time.perf_counter() - t0)
            assert status == 200
            # The keys, and Label Studio's ("UP", model_class): one /health for both.
            assert body == {"status": "UP", "model_class": "PaliDesk",
                            "model": "pg2-tiny-224", "queued": 1}
        assert max(times) < 0.5, times  # Label Studio allows 1 s
        assert not outcome.get("finished")  # it was measured while generating
    finally:
        stop.set()
        client.join(30)


def _settled(server: ServerProcess) -> None:
    """Wait until no request is queued or running: an earlier test's cancelled job is
    stored by then, so the history rows counted next are this test's alone."""
    deadline = time.monotonic() + 10
    while server.request("GET", "/health")[2]["queued"] and time.monotonic() < deadline:  # type: ignore[index]
        time.sleep(0.02)


def test_a_client_that_disconnects_cancels_its_job(server: ServerProcess) -> None:
    _settled(server)
    before = len(history_rows(server))
    started, stop, outcome = threading.Event(), threading.Event(), {}
    client = threading.Thread(target=_stream_long, args=(server, started, stop, outcome))
    client.start()
    assert started.wait(30)
    stop.set()
    client.join(30)
    deadline = time.monotonic() + 5
    while server.request("GET", "/health")[2]["queued"] and time.monotonic() < deadline:  # type: ignore[index]
        time.sleep(0.02)
    assert server.request("GET", "/health")[2]["queued"] == 0  # type: ignore[index]
    rows = history_rows(server)
    assert len(rows) == before + 1  # the partial answer is kept once, as the window keeps it
    assert rows[-1]["stop_reason"] == "cancelled"
    assert len(json.loads(rows[-1]["tokens"])) < LONG


def test_a_client_that_leaves_a_plain_request_cancels_its_job(server: ServerProcess) -> None:
    """Without streaming too: the server notices the closed connection while tokens flow."""
    _settled(server)
    before = len(history_rows(server))
    connection = server.connection(timeout=0.5)
    connection.request("POST", "/v1/run", json.dumps({
        "image": image_b64(), "task": "caption", "max_tokens": LONG}),
        {"content-type": "application/json"})
    deadline = time.monotonic() + 10
    while server.request("GET", "/health")[2]["queued"] == 0 and time.monotonic() < deadline:  # type: ignore[index]
        time.sleep(0.01)
    connection.sock.close()  # gone before the answer
    connection.close()
    deadline = time.monotonic() + 5
    while server.request("GET", "/health")[2]["queued"] and time.monotonic() < deadline:  # type: ignore[index]
        time.sleep(0.02)
    assert server.request("GET", "/health")[2]["queued"] == 0  # type: ignore[index]
    rows = history_rows(server)
    assert len(rows) == before + 1
    assert rows[-1]["stop_reason"] == "cancelled"
    assert len(json.loads(rows[-1]["tokens"])) < LONG
