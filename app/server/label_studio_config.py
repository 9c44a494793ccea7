"""A Label Studio project's labelling config, read for what PaliGemma can fill in, and
PaliDesk's results written as Label Studio results. Plain Python (no web stack).

- ``RectangleLabels`` → detect with the config's label names → ``rectanglelabels`` in
  percent of the original image;
- ``BrushLabels`` → segment → ``brushlabels`` in Label Studio's RLE (objects with a mask);
- ``TextArea`` → OCR when its name or placeholder speaks of OCR or transcription, an
  answer when the task's data holds a ``question``, else a caption.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

from app.server.label_studio_rle import mask_to_rle
from app.server.request_errors import RequestRefused
from app.tasks.parsing import DetectedObject

CONTROLS = ("RectangleLabels", "BrushLabels", "TextArea")


@dataclass(frozen=True)
class Control:
    """One control tag PaliGemma answers: its kind, names, labels and the image it labels."""

    kind: str  # one of CONTROLS
    from_name: str
    to_name: str
    data_key: str  # the task data field that holds the image URL ($image -> image)
    labels: tuple[str, ...] = ()
    hint: str = ""  # a TextArea's name and placeholder, lower case


def read_config(xml: str) -> list[Control]:
    """The controls of ``xml`` that PaliGemma can fill in; 400 when there are none."""
    if "<!DOCTYPE" in xml.upper() or "<!ENTITY" in xml.upper():
        raise RequestRefused(400, "label_config: a labelling config has no DOCTYPE or "
                                  "entities.", "label_config")
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise RequestRefused(400, f"label_config: this is not valid XML ({exc}).",
                             "label_config") from None
    images = {tag.get("name", ""): tag.get("value", "").lstrip("$")
              for tag in root.iter("Image")}
    controls = []
    for tag in root.iter():
        if tag.tag not in CONTROLS or tag.get("toName") not in images:
            continue
        labels = tuple(label.get("value", "") for label in tag.iter("Label")
                       if label.get("value"))
        hint = f"{tag.get('name', '')} {tag.get('placeholder', '')}".lower()
        controls.append(Control(tag.tag, tag.get("name", ""), tag.get("toName", ""),
                                images[tag.get("toName", "")], labels, hint))
    if not controls:
        raise RequestRefused(400, "label_config: PaliDesk fills in RectangleLabels, "
                                  "BrushLabels and TextArea on an Image; this config has "
                                  "none of them.", "label_config")
    return controls


def text_task(control: Control, data: dict[str, object]) -> tuple[str, str | None]:
    """(task, prompt) for a TextArea: ocr, ask (with the task's question) or caption."""
    if any(word in control.hint for word in ("ocr", "transcri")):
        return "ocr", None
    question = data.get("question")
    if isinstance(question, str) and question.strip():
        return "ask", question.strip()
    return "caption", None


def _base(control: Control, kind: str, size: tuple[int, int]) -> dict[str, object]:
    return {"id": uuid.uuid4().hex[:10], "from_name": control.from_name,
            "to_name": control.to_name, "type": kind, "original_width": size[0],
            "original_height": size[1], "image_rotation": 0}


def _config_label(control: Control, label: str) -> str | None:
    """The config's spelling of a label PaliGemma wrote; None when it is not one."""
    wanted = label.strip().lower()
    return next((name for name in control.labels if name.lower() == wanted), None)


def rectangle_results(control: Control, objects: list[DetectedObject],
                      size: tuple[int, int]) -> list[dict[str, object]]:
    """Boxes as percent of the original image, for the config's labels only."""
    width, height = size
    results = []
    for obj in objects:
        label = _config_label(control, obj.label)
        if label is None or width <= 0 or height <= 0:
            continue
        x0, y0, x1, y1 = obj.box
        results.append({**_base(control, "rectanglelabels", size), "value": {
            "x": 100 * x0 / width, "y": 100 * y0 / height,
            "width": 100 * (x1 - x0) / width, "height": 100 * (y1 - y0) / height,
            "rotation": 0, "rectanglelabels": [label]}})
    return results


def brush_results(control: Control, objects: list[DetectedObject],
                  size: tuple[int, int]) -> list[dict[str, object]]:
    """Masks in Label Studio's RLE; objects without a mask (no decoder) are left out."""
    results = []
    for obj in objects:
        label = _config_label(control, obj.label)
        if label is None or obj.mask is None:
            continue
        results.append({**_base(control, "brushlabels", size), "value": {
            "format": "rle", "rle": mask_to_rle(obj.mask.to_array()),
            "brushlabels": [label]}})
    return results


def text_result(control: Control, text: str, size: tuple[int, int]) -> dict[str, object]:
    return {**_base(control, "textarea", size), "value": {"text": [text]}}
