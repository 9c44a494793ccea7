"""X-AnyLabeling's remote-server protocol under /xanylabeling: an X-AnyLabeling–shaped
client (its requests, its Token header) against a real `palidesk serve`."""

from __future__ import annotations

import numpy as np
import pytest

from app.server.xanylabeling_shapes import object_shapes
from app.tasks.mask_rle import ObjectMask
from app.tasks.parsing import DetectedObject
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
    assert {"paligemma-caption", "paligemma-ocr", "paligemma-detect",
            "paligemma-segment", "paligemma-vqa"} <= set(models)
    assert {"name": "edit_text", "value": None} in models["paligemma-detect"]["widgets"]


def test_caption_comes_back_as_the_description(server: ServerProcess) -> None:
    status, body = predict(server, "paligemma-caption")
    assert status == 200 and body["success"] is True
    expected = server.request("POST", "/v1/run", {
        "image": image_b64(), "task": "caption", "max_tokens": 256},
        headers={"token": KEY})[2]
    assert body["data"]["shapes"] == []
    assert body["data"]["description"] == expected["text"].removesuffix("<eos>").strip()  # type: ignore[index]


def test_detect_gives_rectangles_as_four_corners(server: ServerProcess) -> None:
    status, body = predict(server, "paligemma-detect", "cat;dog")
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
        assert shape["points"] == [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def test_what_it_cannot_answer_is_said_in_its_error_shape(server: ServerProcess) -> None:
    status, body = predict(server, "yolo11n")
    assert status == 200 and body["error"]["code"] == "MODEL_NOT_FOUND"
    status, body = predict(server, "paligemma-detect")
    assert body["success"] is False and "text prompt" in body["error"]["message"]
    status, body = predict(server, "paligemma-caption", image="http://10.0.0.1/x.png")
    assert body["error"]["code"] == "INVALID_IMAGE"


def test_masks_become_polygons() -> None:
    mask = np.zeros((30, 40), bool)
    mask[5:15, 10:30] = True
    obj = DetectedObject(label="car", box=(10, 5, 30, 15), loc=(0, 0, 0, 0),
                         mask=ObjectMask.from_array(mask))
    [shape] = object_shapes([obj])
    assert shape["shape_type"] == "polygon"
    xs = [p[0] for p in shape["points"]]
    ys = [p[1] for p in shape["points"]]
    assert (min(xs), max(xs), min(ys), max(ys)) == pytest.approx((10, 30, 5, 15), abs=0.5)
