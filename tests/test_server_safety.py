"""`palidesk serve` is safe by default (issue 19, item 8): each protection is tried
against a real server process, so each test fails on a server without it."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

from tests.server_process import ServerProcess, data_uri, image_b64, user_env

pytest.importorskip("fastapi")

KEY = "k3y-for-the-tests-0123456789"
ORIGIN = "http://localhost:3000"


@pytest.fixture(scope="module")
def model(converted) -> Path:
    return converted("pg2-tiny-224")


@pytest.fixture(scope="module")
def server(model: Path, tmp_path_factory: pytest.TempPathFactory):
    """No key, no CORS, automatic quantization: the defaults."""
    process = ServerProcess(model, tmp_path_factory.mktemp("safe-home"))
    try:
        process.wait_ready()
        yield process
    finally:
        assert process.stop() == 0, process.log.read_text()


@pytest.fixture(scope="module")
def keyed(model: Path, tmp_path_factory: pytest.TempPathFactory):
    """A key, one CORS origin, a queue of one, no history; F32, on which a caption of the
    shapes image runs the whole 2048 tokens (a job that keeps the engine busy)."""
    home = tmp_path_factory.mktemp("keyed-home")
    (home / "key.txt").write_text(KEY + "\n")
    process = ServerProcess(model, home, "--quant", "F32",
                            "--api-key-file", str(home / "key.txt"),
                            "--cors-origin", ORIGIN, "--queue", "1", "--no-history")
    try:
        process.wait_ready()
        yield process
    finally:
        assert process.stop() == 0, process.log.read_text()


def run_body(**more: object) -> dict[str, object]:
    return {"image": image_b64(), "task": "caption", "max_tokens": 4, **more}


def serve_command(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli.main", "serve", *args],
                          capture_output=True, text=True, env=user_env(home), timeout=timeout,
                          cwd=Path(__file__).parent.parent)


# --- binding and keys ------------------------------------------------------------------


def test_binds_loopback_by_default(server: ServerProcess) -> None:
    assert server.host == "127.0.0.1"
    assert "(default 127.0.0.1" in serve_command(server.home, "--help").stdout


def test_other_hosts_refuse_to_start_without_a_key(model: Path, tmp_path: Path) -> None:
    done = serve_command(tmp_path, "--model", str(model), "--host", "0.0.0.0", "--port", "0")
    assert done.returncode == 1
    assert "--api-key-file" in done.stderr
    assert "PaliDesk serving" not in done.stdout  # it never listened


def test_a_key_is_required_except_for_health(keyed: ServerProcess) -> None:
    assert keyed.request("GET", "/v1/models")[0] == 401
    assert keyed.request("POST", "/v1/run", run_body())[0] == 401
    wrong = {"authorization": "Bearer not-the-key-at-all"}
    assert keyed.request("GET", "/v1/models", headers=wrong)[0] == 401
    assert keyed.request("GET", "/health")[0] == 200
    assert keyed.request("GET", "/v1/models",
                         headers={"authorization": f"Bearer {KEY}"})[0] == 200
    # X-AnyLabeling sends its key as "Token:".
    status, _, record = keyed.request("POST", "/v1/run", run_body(), headers={"token": KEY})
    assert status == 200, record


# --- DNS rebinding and CORS --------------------------------------------------------------


def test_a_host_header_that_does_not_name_the_server_is_refused(server: ServerProcess) -> None:
    status, _, body = server.request("GET", "/v1/models", headers={"host": "evil.example:80"})
    assert status == 400
    assert "Host header" in body["error"]["message"]  # type: ignore[index]
    for name in (f"localhost:{server.port}", f"127.0.0.1:{server.port}"):
        assert server.request("GET", "/v1/models", headers={"host": name})[0] == 200


def _preflight(process: ServerProcess, origin: str) -> dict[str, str]:
    return process.request("OPTIONS", "/v1/chat/completions", headers={
        "origin": origin, "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,authorization"})[1]


def test_no_cors_unless_asked(server: ServerProcess, keyed: ServerProcess) -> None:
    assert "access-control-allow-origin" not in _preflight(server, ORIGIN)
    plain = server.request("GET", "/v1/models", headers={"origin": ORIGIN})[1]
    assert "access-control-allow-origin" not in plain
    assert _preflight(keyed, ORIGIN).get("access-control-allow-origin") == ORIGIN
    assert "access-control-allow-origin" not in _preflight(keyed, "http://evil.example")


def test_a_web_page_of_another_origin_cannot_make_the_server_work(
        server: ServerProcess, keyed: ServerProcess) -> None:
    """Without CORS a page cannot read the answer, but a "simple" cross-site POST (text/plain,
    no preflight) is still sent: without a key, any page the user opens could run jobs on
    the engine and fill the history. A browser names the page in Origin; only the
    --cors-origin ones get through."""
    status, _, body = server.request("POST", "/v1/run", run_body(), headers={
        "origin": "http://evil.example", "content-type": "text/plain"})
    assert status == 403, body
    assert "--cors-origin" in body["error"]["message"]  # type: ignore[index]
    assert server.request("GET", "/v1/models", headers={"origin": "null"})[0] == 403
    # As Ollama: pages served from this machine and desktop apps' own pages get through.
    for origin in ("http://localhost:5173", "http://127.0.0.1:3000", "app://chat"):
        assert server.request("GET", "/v1/models", headers={"origin": origin})[0] == 200
    assert server.request("GET", "/v1/models",
                          headers={"origin": "http://localhost.evil.example"})[0] == 403
    # /health stays open; clients that are not browsers send no Origin.
    assert server.request("GET", "/health", headers={"origin": "http://evil.example"})[0] == 200
    assert server.request("POST", "/v1/run", run_body())[0] == 200
    allowed = keyed.request("GET", "/v1/models",
                            headers={"origin": ORIGIN, "authorization": f"Bearer {KEY}"})
    assert allowed[0] == 200 and allowed[1].get("access-control-allow-origin") == ORIGIN


# --- sizes and numbers -------------------------------------------------------------------


def test_a_body_over_the_limit_is_refused_with_413(server: ServerProcess) -> None:
    connection = server.connection()
    connection.putrequest("POST", "/v1/run")
    connection.putheader("content-type", "application/json")
    connection.putheader("content-length", str(33 * 1024 * 1024))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413
    assert "32 MB" in json.loads(response.read())["error"]["message"]
    connection.close()


def _bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width`` x ``height`` pixels, with almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_refused_before_decoding(server: ServerProcess) -> None:
    import base64

    bomb = base64.b64encode(_bomb_png(20_000, 20_000)).decode()  # 400 megapixels
    started = time.monotonic()
    status, _, body = server.request("POST", "/v1/run", run_body(image=bomb))
    assert status == 413
    assert "megapixels" in body["error"]["message"]  # type: ignore[index]
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("path", ["/v1/run", "/v1/chat/completions", "/predict",
                                  "/xanylabeling/v1/predict"])
def test_a_deeply_nested_body_gets_a_sentence(server: ServerProcess, path: str) -> None:
    # json.loads raises RecursionError (not ValueError) past ~1,000 levels: a bare 500.
    status, _, body = server.request("POST", path, raw=b"[" * 100_000)
    assert isinstance(body, dict), body
    if path.startswith("/xanylabeling"):  # X-AnyLabeling's shape: 200, success false
        assert status == 200 and body["success"] is False, body
    else:
        assert status == 400, body
        assert "not valid JSON" in body["error"]["message"], body


@pytest.mark.parametrize(("field", "raw_value"), [
    ("temperature", "NaN"), ("temperature", "Infinity"), ("temperature", "-1"),
    ("top_p", "0"), ("top_p", "NaN"), ("max_tokens", "-5"), ("max_tokens", "100000000"),
    ("seed", "1e400"), ("seed", "99999999999999999999999"), ("top_k", "-1"),
])
def test_every_number_is_range_checked(server: ServerProcess, field: str,
                                       raw_value: str) -> None:
    # Raw JSON text: Python's json module writes NaN and Infinity, as some clients do.
    body = json.dumps(run_body()).rstrip("}") + f', "{field}": {raw_value}}}'
    status, _, answer = server.request("POST", "/v1/run", raw=body.encode())
    assert status == 400, answer
    assert answer["error"]["message"].startswith(f"{field}:")  # type: ignore[index]
    assert answer["error"]["param"] == field  # type: ignore[index]


@pytest.mark.parametrize(("field", "value"), [
    ("temperature", float("nan")), ("max_tokens", 0), ("max_tokens", 10**9),
    ("top_p", 5.0), ("seed", -2),
])
def test_chat_numbers_are_range_checked(server: ServerProcess, field: str,
                                        value: object) -> None:
    body = {"model": "pg2-tiny-224", field: value, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "caption en"},
        {"type": "image_url", "image_url": {"url": data_uri()}}]}]}
    status, _, answer = server.request("POST", "/v1/chat/completions",
                                       raw=json.dumps(body).encode())
    assert status == 400, answer
    assert answer["error"]["param"] == field  # type: ignore[index]


# --- images and models named by a request --------------------------------------------------


def test_a_jpeg_sent_as_raw_base64_is_not_taken_for_a_path(server: ServerProcess) -> None:
    # A JPEG's base64 starts with "/9j/" (its first byte is 0xFF): the path check must not
    # refuse it, or no JPEG could be sent as the base64 the docs offer.
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "blue").save(buffer, "JPEG")
    raw = base64.b64encode(buffer.getvalue()).decode()
    assert raw.startswith("/9j/")
    status, _, record = server.request("POST", "/v1/run", run_body(image=raw))
    assert status == 200, record
    assert record["image_size"] == [64, 48]  # type: ignore[index]


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/cat.png", "https://example.com/cat.png",
                                 "file:///etc/passwd", "/etc/passwd"])
def test_image_urls_and_paths_are_not_fetched(server: ServerProcess, url: str) -> None:
    body = {"model": "pg2-tiny-224", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "caption en"}, {"type": "image_url", "image_url": {"url": url}}]}]}
    # Refused as a URL or path, not merely because it is not base64.
    said = ("does not fetch images" if url.startswith("http") else "not a path or URL")
    status, _, answer = server.request("POST", "/v1/chat/completions", body)
    assert status == 400
    assert said in answer["error"]["message"]  # type: ignore[index]
    status, _, answer = server.request("POST", "/v1/run", run_body(image=url))
    assert status == 400
    assert said in answer["error"]["message"]  # type: ignore[index]


def test_a_model_named_by_a_request_is_never_loaded(server: ServerProcess, model: Path,
                                                     tmp_path: Path) -> None:
    other = tmp_path / "other-model"
    other.symlink_to(model, target_is_directory=True)
    for name in (str(other), str(model), "../../etc"):
        status, _, answer = server.request("POST", "/v1/run", run_body(model=name))
        assert status == 404, answer
        assert "does not load other models" in answer["error"]["message"]  # type: ignore[index]
    assert server.request("GET", "/health")[2]["model"] == "pg2-tiny-224"  # type: ignore[index]


# --- the queue ---------------------------------------------------------------------------


def test_a_full_queue_answers_503_with_retry_after(keyed: ServerProcess) -> None:
    key = {"authorization": f"Bearer {KEY}"}
    long_body = run_body(task="caption", max_tokens=2048)
    answers: list[int] = []

    def client() -> None:
        answers.append(keyed.request("POST", "/v1/run", long_body, headers=key)[0])

    running = threading.Thread(target=client)
    running.start()
    deadline = time.monotonic() + 30
    while keyed.request("GET", "/health")[2]["queued"] < 1 and time.monotonic() < deadline:  # type: ignore[index]
        time.sleep(0.01)
    waiting = threading.Thread(target=client)
    waiting.start()
    while keyed.request("GET", "/health")[2]["queued"] < 2 and time.monotonic() < deadline:  # type: ignore[index]
        time.sleep(0.01)
    status, headers, body = keyed.request("POST", "/v1/run", run_body(), headers=key)
    running.join(60)
    waiting.join(60)
    assert status == 503, body
    assert int(headers["retry-after"]) > 0
    assert answers == [200, 200]  # the running and the waiting request were both answered


def test_no_history_stores_nothing(keyed: ServerProcess) -> None:
    status, _, _ = keyed.request("POST", "/v1/run", run_body(), headers={"token": KEY})
    assert status == 200
    assert not (keyed.home / "data" / "PaliDesk" / "history.sqlite3").exists()
    assert not list((keyed.home / "data").rglob("served-images/*"))


def test_without_quant_the_model_loads_with_the_windows_automatic_choice(
        server: ServerProcess, model: Path) -> None:
    from app.models.fit_choice import load_choice

    expected = load_choice(model).quant  # the fit estimate's choice, as the window's
    status, _, body = server.request("POST", "/setup", {"project": "1"})
    assert status == 200
    assert body == {"model_version": f"pg2-tiny-224:{expected}"}
    assert "model loaded: pg2-tiny-224" in server.log.read_text()


def test_another_host_with_a_key_starts_and_every_request_needs_the_key(
        model: Path, tmp_path: Path) -> None:
    (tmp_path / "key.txt").write_text(KEY)
    process = ServerProcess(model, tmp_path, "--quant", "F32", "--host", "0.0.0.0",
                            "--api-key-file", str(tmp_path / "key.txt"))
    try:
        assert process.host == "0.0.0.0"
        process.host = "127.0.0.1"  # connect through loopback; the bind is every address
        process.wait_ready()
        assert process.request("GET", "/v1/models")[0] == 401
        assert process.request("GET", "/v1/models",
                               headers={"authorization": f"Bearer {KEY}"})[0] == 200
    finally:
        assert process.stop() == 0, process.log.read_text()


def test_a_short_key_is_refused(model: Path, tmp_path: Path) -> None:
    (tmp_path / "key.txt").write_text("short")
    done = serve_command(tmp_path, "--model", str(model), "--host", "0.0.0.0",
                         "--api-key-file", str(tmp_path / "key.txt"), "--port", "0")
    assert done.returncode == 1
    assert "at least 16 characters" in done.stderr
