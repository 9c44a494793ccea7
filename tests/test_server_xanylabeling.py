"""X-AnyLabeling's remote-server protocol under /xanylabeling: an X-AnyLabeling–shaped
client (its requests, its Token header) against a real `palidesk serve`. The shapes
themselves (polygons of masks, groups, holes) are app.labeltools' and tested in
tests/test_labeltools_xanylabeling.py."""

from __future__ import annotations

import pytest

from tests.server_process import ServerProcess, data_uri, image_b64

KEY = "x-anylabeling-key-0123456789"


@pytest.fixture(scope="module")
def server(converted, tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("fastapi")
    home = tmp_path_factory.mktemp("xal-home")
    (home / "key").write_text(KEY)
    process = ServerProcess(converted("pg2-tiny-224"), home, "--quant", "F32",
                            "--api-key-file", str(home / "key"))
    try:
        process.wait_ready()
        yield process
    finally:
        assert process.stop() == 0, process.log.read_text()


def predict(server: ServerProcess, model: str, text: str | None = None,
            image: str | None = None) -> tuple[int, dict]:
    """What X-AnyLabeling's RemoteServer.predict_shapes sends."""
    params: dict[str, object] = {"conf_threshold": 0.25, "iou_threshold": 0.45,
                                 "epsilon_factor": 0.001}
    if text:
        params["text_prompt"] = text
    status, _, body = server.request(
        "POST", "/xanylabeling/v1/predict",
        {"model": model, "image": image or data_uri(), "params": params},
        headers={"token": KEY})
    assert isinstance(body, dict)
    return status, body


def test_health_is_open_and_models_need_the_token(server: ServerProcess) -> None:
    status, _, body = server.request("GET", "/xanylabeling/health")
    assert status == 200 and body["status"] == "healthy"  # type: ignore[index]
    assert server.request("GET", "/xanylabeling/v1/models")[0] == 401
    status, _, body = server.request("GET", "/xanylabeling/v1/models",
                                     headers={"token": KEY})
    assert status == 200 and body["success"] is True  # type: ignore[index]
    models = body["data"]  # type: ignore[index]
    # One model per task preset of the window (app.tasks.presets).
    assert {"palidesk-caption", "palidesk-describe", "palidesk-ocr", "palidesk-detect",
            "palidesk-segment", "palidesk-ask"} <= set(models)
    assert {"name": "edit_text", "value": None} in models["palidesk-detect"]["widgets"]
    status, _, body = server.request("GET", "/xanylabeling/v1/models/palidesk-ocr/info",
                                     headers={"token": KEY})
    assert status == 200 and body["data"]["model_id"] == "palidesk-ocr"  # type: ignore[index]


def test_caption_comes_back_as_the_description(server: ServerProcess) -> None:
    status, body = predict(server, "palidesk-caption")
    assert status == 200 and body["success"] is True
    expected = server.request("POST", "/v1/run", {
        "image": image_b64(), "task": "caption", "max_tokens": 256},
        headers={"token": KEY})[2]
    assert body["data"]["shapes"] == []
    assert body["data"]["description"] == expected["text"].removesuffix("<eos>").strip()  # type: ignore[index]


def test_detect_gives_rectangles_as_four_corners(server: ServerProcess) -> None:
    status, body = predict(server, "palidesk-detect", "cat;dog")
    assert status == 200 and body["success"] is True
    expected = server.request("POST", "/v1/run", {
        "image": image_b64(), "task": "detect", "classes": "cat;dog", "max_tokens": 256},
        headers={"token": KEY})[2]
    objects = expected["objects"]  # type: ignore[index]
    assert objects, "the tiny model answers some object here"
    shapes = body["data"]["shapes"]
    assert [s["label"] for s in shapes] == [o["label"] for o in objects]
    for shape, obj in zip(shapes, objects, strict=True):
        x0, y0, x1, y1 = obj["box"]
        assert shape["shape_type"] == "rectangle"
        # run --json rounds boxes to 2 decimals; shapes keep the pixels' full precision.
        corners = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
        assert [p for point in shape["points"] for p in point] == pytest.approx(
            [p for point in corners for p in point], abs=0.005)


def test_what_it_cannot_answer_is_said_in_its_error_shape(server: ServerProcess) -> None:
    status, body = predict(server, "yolo11n")
    assert status == 200 and body["error"]["code"] == "MODEL_NOT_FOUND"
    status, body = predict(server, "palidesk-detect")
    assert body["success"] is False and "needs text" in body["error"]["message"]
    status, body = predict(server, "palidesk-caption", image="http://10.0.0.1/x.png")
    assert body["error"]["code"] == "INVALID_IMAGE"
