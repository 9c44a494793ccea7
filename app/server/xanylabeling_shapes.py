"""X-AnyLabeling's remote-server shapes: one model entry per PaliGemma task preset, and
PaliDesk's objects as its ``shapes`` (rectangles as 4 corner points, masks as polygons).
Plain Python (no web stack)."""

from __future__ import annotations

from dataclasses import dataclass

from app.export.mask_polygons import mask_polygons
from app.tasks.parsing import DetectedObject


@dataclass(frozen=True)
class Preset:
    """A task as X-AnyLabeling lists it; ``needs_text`` presets take its text prompt."""

    model_id: str
    title: str
    task: str
    caption_style: str = "caption"
    needs_text: bool = False


PRESETS = (
    Preset("paligemma-caption", "Caption", "caption"),
    Preset("paligemma-detailed-caption", "Detailed caption", "caption", "describe"),
    Preset("paligemma-ocr", "OCR", "ocr"),
    Preset("paligemma-detect", "Detect (text prompt: cat;dog)", "detect", needs_text=True),
    Preset("paligemma-segment", "Segment (text prompt: car)", "segment", needs_text=True),
    Preset("paligemma-vqa", "Ask (text prompt: the question)", "ask", needs_text=True),
)


def preset_named(model_id: str) -> Preset | None:
    return next((p for p in PRESETS if p.model_id == model_id), None)


def models_listing(model_name: str) -> dict[str, object]:
    """``GET /v1/models``'s ``data``: one entry per preset."""
    data = {}
    for preset in PRESETS:
        widgets = ([{"name": "edit_text", "value": None}, {"name": "button_send", "value": None}]
                   if preset.needs_text else [{"name": "button_run", "value": None}])
        data[preset.model_id] = {
            "display_name": f"PaliGemma 2 {preset.title} · {model_name}",
            "widgets": widgets,
            "params": {"task": preset.task},
            "batch_processing_mode": "text_prompt" if preset.needs_text else "default",
        }
    return data


def _shape(label: str, shape_type: str, points: list[list[float]]) -> dict[str, object]:
    return {"label": label, "shape_type": shape_type, "points": points,
            "score": None,  # PaliGemma gives no confidence for its objects
            "attributes": {}, "description": None, "difficult": False, "direction": 0,
            "flags": None, "group_id": None, "kie_linking": []}


def object_shapes(objects: list[DetectedObject]) -> list[dict[str, object]]:
    """Each object's mask as a polygon (its largest outline), else its box as a rectangle."""
    shapes = []
    for obj in objects:
        if obj.mask is not None:
            polygons = mask_polygons(obj.mask.to_array())
            if polygons:
                points = [[round(float(x), 2), round(float(y), 2)] for x, y in polygons[0]]
                shapes.append(_shape(obj.label, "polygon", points))
                continue
        x0, y0, x1, y1 = (round(v, 2) for v in obj.box)
        shapes.append(_shape(obj.label, "rectangle", [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
    return shapes
