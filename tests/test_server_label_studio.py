"""Label Studio's ML backend protocol: a Label Studio–shaped client against a real
`palidesk serve`, images fetched only from the configured Label Studio.

The translation is app.labeltools' (tests/test_labeltools_label_studio.py): brush masks in
Label Studio's own RLE are proven byte-equal to label-studio-sdk there, by the recorded
vectors of tests/fixtures/ls_rle_vectors.json (and by the sdk itself when installed)."""

from __future__ import annotations

import http.server
import shutil
import threading

import pytest

from tests.server_process import IMAGES, ServerProcess, image_b64

LS_KEY = "label-studio-token-for-tests"
CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="IPT"/><Label value="hat"/>
  </RectangleLabels>
  <TextArea name="caption" toName="image" placeholder="Describe the image"/>
</View>"""


class FakeLabelStudio(http.server.ThreadingHTTPServer):
    """Serves /data/upload/1/strokes.png to requests with the API key; records requests."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.seen.append((self.path, self.headers.get("authorization")))
                if self.headers.get("authorization") != f"Token {LS_KEY}":
                    self.send_error(401)
                    return
                if self.path != "/data/upload/1/strokes.png":
                    self.send_error(404)
                    return
                data = (IMAGES / "strokes_500x500.png").read_bytes()
                self.send_response(200)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(10)


@pytest.fixture(scope="module")
def studio():
    fake = FakeLabelStudio()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def server(converted, studio: FakeLabelStudio, tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("ls-home")
    (home / "ls-key").write_text(LS_KEY)
    files = home / "files"
    (files / "sub").mkdir(parents=True)
    shutil.copy(IMAGES / "strokes_500x500.png", files / "sub" / "strokes.png")
    (home / "secret.png").write_bytes((IMAGES / "shapes_320x240.png").read_bytes())
    process = ServerProcess(converted("pg2-tiny-224"), home, "--quant", "Q8_0",
                            "--label-studio-url", studio.url,
                            "--label-studio-api-key-file", str(home / "ls-key"),
                            "--label-studio-files", str(files))
    try:
        process.wait_ready()
        yield process
    finally:
        assert process.stop() == 0, process.log.read_text()


def test_setup_answers_the_model_version(server: ServerProcess) -> None:
    status, _, body = server.request("POST", "/setup", {
        "project": "7.1700000000", "schema": CONFIG, "hostname": "http://evil.example",
        "access_token": "x"})
    assert status == 200
    assert body == {"model_version": "pg2-tiny-224:Q8_0"}


def _labels_the_model_finds(server: ServerProcess) -> tuple[list[str], list[dict]]:
    """Two label names for which the tiny random model answers at least one object
    labelled with one of them (it writes mostly other words), and those objects."""
    words = ["hat", "dog", "cat", "bus", "field", "IPT", "M", "orange", "tola", "there"]
    pairs = [(a, b) for i, a in enumerate(words) for b in words[i + 1:]]
    for pair in pairs:
        record = server.request("POST", "/v1/run", {
            "image": image_b64("strokes_500x500.png"), "task": "detect",
            "classes": ";".join(pair), "max_tokens": 256})[2]
        found = [o for o in record["objects"] if o["label"] in pair]  # type: ignore[index]
        if found:
            return list(pair), found
    raise AssertionError("the tiny model named none of the labels it was asked for")


def test_predict_gives_rectangles_and_text_like_run(server: ServerProcess,
                                                    studio: FakeLabelStudio) -> None:
    labels, expected = _labels_the_model_finds(server)
    config = CONFIG.replace('<Label value="IPT"/><Label value="hat"/>',
                            "".join(f'<Label value="{name}"/>' for name in labels))
    server.request("POST", "/setup", {"project": "7.1700000000", "schema": config})
    status, _, body = server.request("POST", "/predict", {
        "project": "7.1700000000",
        "tasks": [{"id": 1, "data": {"image": "/data/upload/1/strokes.png"}}]})
    assert status == 200, body
    assert studio.seen[-1] == ("/data/upload/1/strokes.png", f"Token {LS_KEY}")
    [prediction] = body["results"]  # type: ignore[index]
    assert prediction["model_version"] == "pg2-tiny-224:Q8_0"
    rectangles = [r for r in prediction["result"] if r["type"] == "rectanglelabels"]
    texts = [r for r in prediction["result"] if r["type"] == "textarea"]
    assert len(rectangles) == len(expected)
    for result, obj in zip(rectangles, expected, strict=True):
        x0, y0, x1, y1 = obj["box"]
        assert result["value"]["rectanglelabels"] == [obj["label"]]
        assert result["value"]["x"] == pytest.approx(100 * x0 / 500, abs=0.01)
        assert result["value"]["y"] == pytest.approx(100 * y0 / 500, abs=0.01)
        assert result["value"]["width"] == pytest.approx(100 * (x1 - x0) / 500, abs=0.01)
        assert result["value"]["height"] == pytest.approx(100 * (y1 - y0) / 500, abs=0.01)
        assert (result["original_width"], result["original_height"]) == (500, 500)
        assert (result["from_name"], result["to_name"]) == ("label", "image")
    caption = server.request("POST", "/v1/run", {
        "image": image_b64("strokes_500x500.png"), "task": "caption", "max_tokens": 256})[2]
    assert [t["value"]["text"] for t in texts] == [
        [caption["text"].removesuffix("<eos>").strip()]]  # type: ignore[index]


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:9/x.png",
    "https://example.com/cat.png", "file:///etc/passwd", "/data/local-files/?d=../secret.png",
])
def test_images_come_only_from_the_configured_label_studio(server: ServerProcess,
                                                          studio: FakeLabelStudio,
                                                          url: str) -> None:
    seen = len(studio.seen)
    status, _, body = server.request("POST", "/predict", {
        "label_config": CONFIG, "tasks": [{"id": 2, "data": {"image": url}}]})
    assert status == 400, body  # nothing could run: the reason, not an empty answer
    assert body["error"]["message"].startswith("tasks.0: ")  # type: ignore[index]
    assert len(studio.seen) == seen


def test_a_refused_image_does_not_sink_the_other_tasks(server: ServerProcess,
                                                      studio: FakeLabelStudio) -> None:
    seen = len(studio.seen)
    status, _, body = server.request("POST", "/predict", {
        "label_config": CONFIG, "tasks": [
            {"id": 4, "data": {"image": "https://example.com/cat.png"}},
            {"id": 5, "data": {"image": "/data/upload/1/strokes.png"}}]})
    assert status == 200, body
    refused, fetched = body["results"]  # type: ignore[index]
    assert refused["result"] == []
    assert any(r["type"] == "textarea" for r in fetched["result"])
    assert [path for path, _ in studio.seen[seen:]] == ["/data/upload/1/strokes.png"]


def test_local_files_are_read_from_the_allowed_folder(server: ServerProcess) -> None:
    status, _, body = server.request("POST", "/predict", {
        "label_config": CONFIG,
        "tasks": [{"id": 3, "data": {"image": "/data/local-files/?d=sub/strokes.png"}}]})
    assert status == 200, body
    assert any(r["type"] == "textarea" for r in body["results"][0]["result"])  # type: ignore[index]


def test_webhook_is_accepted_and_ignored(server: ServerProcess) -> None:
    status, _, _ = server.request("POST", "/webhook", {"action": "ANNOTATION_CREATED"})
    assert status == 201


def test_a_config_without_anything_paligemma_fills_is_refused(server: ServerProcess) -> None:
    config = '<View><Image name="i" value="$image"/><Choices name="c" toName="i"/></View>'
    status, _, body = server.request("POST", "/setup", {"project": "1", "schema": config})
    assert status == 400
    assert "RectangleLabels" in body["error"]["message"]  # type: ignore[index]

