"""X-AnyLabeling remote-server translation: the model list, predict requests, shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.errors import TaskError
from app.labeltools.errors import LabelToolError
from app.labeltools.xany_models import (
    PRESETS,
    list_models,
    model_info,
    models_response,
    request_for_predict,
)
from app.labeltools.xany_shapes import (
    error_response,
    object_shapes,
    predict_data,
    predict_response,
    rectangle_points,
)
from app.tasks.mask_rle import ObjectMask
from app.tasks.parsing import DetectedObject, parse_objects
from app.tasks.prompts import build_prompt

# X-AnyLabeling-Server's Shape schema (app/schemas/shape.py): what its client accepts.
SHAPE_TYPES = {"polygon", "rectangle", "rotation", "point", "line", "circle", "linestrip",
               "quadrilateral"}


def _check_shape_schema(shape: dict) -> None:
    assert isinstance(shape["label"], str) and shape["label"]
    assert shape["shape_type"] in SHAPE_TYPES
    assert all(len(point) == 2 and all(isinstance(v, float) for v in point)
               for point in shape["points"])
    assert shape["score"] is None or 0.0 <= shape["score"] <= 1.0
    assert 0 <= shape["direction"] <= 2 * math.pi
    assert shape["group_id"] is None or shape["group_id"] > 0


# --- models ----------------------------------------------------------------------------


def test_one_model_per_window_task_preset() -> None:
    from app.tasks.presets import PRESETS as WINDOW_PRESETS  # the window's list

    assert [(p.key, p.kind, p.caption_style, p.field) for p in PRESETS] == [
        (p.key, p.kind, p.caption_style, p.field) for p in WINDOW_PRESETS]
    models = list_models("paligemma2-3b-mix-448 Q4_K_M")
    assert list(models) == [f"palidesk-{p.key}" for p in WINDOW_PRESETS]


def test_model_entries_have_x_anylabeling_server_shape() -> None:
    response = models_response("pg Q8_0")
    assert response["success"] is True
    detect = response["data"]["palidesk-detect"]
    caption = response["data"]["palidesk-caption"]
    for entry in response["data"].values():
        assert set(entry) >= {"display_name", "widgets", "params", "capabilities",
                              "batch_processing_mode"}
        assert "(pg Q8_0)" in entry["display_name"]
        assert all(set(widget) == {"name", "value"} for widget in entry["widgets"])
    # Presets that need text show the text box; the others a Run button.
    assert detect["batch_processing_mode"] == "text_prompt"
    assert {w["name"] for w in detect["widgets"]} >= {"edit_text", "button_send"}
    assert caption["batch_processing_mode"] == "default"
    assert {w["name"] for w in caption["widgets"]} >= {"button_run"}
    assert "edit_text" not in {w["name"] for w in caption["widgets"]}


@pytest.mark.parametrize(
    ("model", "params", "prompt"),
    [
        ("palidesk-detect", {"text_prompt": "cat, dog. cat ; red car",
                             "conf_threshold": 0.25}, "detect cat ; dog ; red car"),
        ("palidesk-segment", {"text_prompt": "person"}, "segment person"),
        ("palidesk-cap", {}, "cap en"),
        ("palidesk-describe", {"lang": "de"}, "describe de"),
        ("palidesk-ocr", None, "ocr"),
        ("palidesk-ask", {"text_prompt": " What is on the table? "},
         "answer en What is on the table?"),
        ("palidesk-question", {"text_prompt": "a red umbrella", "lang": "fr"},
         "question fr a red umbrella"),
        ("palidesk-custom", {"text_prompt": "caption  es"}, "caption  es"),
    ],
)
def test_predict_params_become_the_palidesk_prompt(
    model: str, params: dict | None, prompt: str
) -> None:
    assert build_prompt(request_for_predict(model, params)) == prompt


def test_bad_predict_requests_get_a_sentence() -> None:
    with pytest.raises(LabelToolError, match='no model "yolo"'):
        request_for_predict("yolo", {})
    with pytest.raises(LabelToolError, match="needs text"):
        request_for_predict("palidesk-detect", {"text_prompt": "  "})
    with pytest.raises(LabelToolError, match="needs text"):
        request_for_predict("palidesk-ask", {"text_prompt": 3})
    with pytest.raises(TaskError, match="at least one object"):
        request_for_predict("palidesk-detect", {"text_prompt": " ; , ."})
    with pytest.raises(TaskError, match="line break"):
        request_for_predict("palidesk-ask", {"text_prompt": "what?\nanswer en no"})
    with pytest.raises(TaskError, match="language"):
        request_for_predict("palidesk-caption", {"lang": "xx"})


def test_model_info_and_unknown_models() -> None:
    info = model_info("palidesk-ocr", "pg Q8_0")
    assert info["model_id"] == "palidesk-ocr" and "Read text" in info["display_name"]
    with pytest.raises(LabelToolError, match="palidesk-caption"):
        model_info("sam2", "pg")
    with pytest.raises(LabelToolError, match="JSON object"):
        request_for_predict("palidesk-ocr", ["text_prompt"])  # type: ignore[arg-type]


# --- shapes ----------------------------------------------------------------------------


def test_rectangles_are_four_corners_in_original_pixels() -> None:
    width, height = 800, 200
    (cat,) = parse_objects("<loc0256><loc0512><loc0768><loc1023> cat", (width, height))
    (shape,) = object_shapes([cat])
    _check_shape_schema(shape)
    assert shape["shape_type"] == "rectangle" and shape["label"] == "cat"
    x1, y1 = 512 / 1023 * width, 256 / 1023 * height
    x2, y2 = float(width), 768 / 1023 * height
    expected = [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]
    assert np.allclose(shape["points"], expected)
    assert shape["score"] is None  # PaliGemma gives no confidence
    assert rectangle_points((1, 2, 3, 4)) == [[1.0, 2.0], [3.0, 2.0], [3.0, 4.0], [1.0, 4.0]]


def _rasterize(polygons: list[list[list[float]]], size: tuple[int, int]) -> np.ndarray:
    canvas = Image.new("1", size, 0)
    draw = ImageDraw.Draw(canvas)
    for points in polygons:
        draw.polygon([(x - 0.5, y - 0.5) for x, y in points], fill=1)  # corners → centres
    return np.array(canvas, dtype=bool)


def test_mask_becomes_a_polygon_that_covers_it() -> None:
    width, height = 120, 80
    yy, xx = np.mgrid[:height, :width]
    mask = (yy - 40) ** 2 / 25**2 + (xx - 70) ** 2 / 40**2 <= 1
    obj = DetectedObject("dog", (30, 15, 110, 65), (0, 0, 1, 1), (0,) * 16,
                         ObjectMask.from_array(mask))
    (shape,) = object_shapes([obj], scores=[0.75])
    _check_shape_schema(shape)
    assert shape["shape_type"] == "polygon" and shape["score"] == 0.75
    drawn = _rasterize([shape["points"]], (width, height))
    iou = (drawn & mask).sum() / (drawn | mask).sum()
    assert iou > 0.95, iou


def test_holes_are_dropped_and_parts_share_a_group() -> None:
    ring = np.zeros((40, 60), bool)
    ring[5:35, 5:35] = True
    ring[12:28, 12:28] = False  # a hole: no polygon of its own (it would fill the hole)
    ring[10:20, 45:55] = True  # a second part of the same object
    two_parts = DetectedObject("donut", (5, 5, 55, 35), (0, 0, 1, 1), (0,) * 16,
                               ObjectMask.from_array(ring))
    single = np.zeros((40, 60), bool)
    single[1:4, 1:4] = True
    other = DetectedObject("crumb", (1, 1, 4, 4), (0, 0, 1, 1), (0,) * 16,
                           ObjectMask.from_array(single))
    shapes = object_shapes([two_parts, other])
    for shape in shapes:
        _check_shape_schema(shape)
    assert [s["label"] for s in shapes] == ["donut", "donut", "crumb"]
    assert shapes[0]["group_id"] == shapes[1]["group_id"] == 1
    assert shapes[2]["group_id"] is None
    big = np.array(shapes[0]["points"])
    assert big[:, 0].min() == pytest.approx(5, abs=0.5)
    assert big[:, 0].max() == pytest.approx(35, abs=0.5)


def test_segment_object_without_a_mask_keeps_its_box() -> None:
    (obj,) = parse_objects("<loc0000><loc0000><loc0511><loc0511> car", (100, 50),
                           segmentation=True)  # no mask codes: no mask
    (shape,) = object_shapes([obj])
    assert shape["shape_type"] == "rectangle"
    assert np.allclose(shape["points"][2], [511 / 1023 * 100, 511 / 1023 * 50])


def test_text_tasks_answer_with_a_description() -> None:
    data = predict_data(description=" A cat sleeps on a sofa. ")
    assert data == {"shapes": [], "description": "A cat sleeps on a sofa."}
    assert predict_response(data) == {"success": True, "data": data}
    assert error_response("MODEL_NOT_FOUND", "no model") == {
        "success": False, "error": {"code": "MODEL_NOT_FOUND", "message": "no model"}}
