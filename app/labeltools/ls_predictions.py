"""PaliDesk's results as Label Studio predictions (the ML backend's ``/predict`` answer).

One prediction per Label Studio task: ``{"result": [...], "model_version": ..., "score":
...}``; the route answers ``{"results": [prediction, ...]}`` in the tasks' order.

- detect objects → ``rectanglelabels``: x, y, width, height in percent of the original
  image (Label Studio's unit), rotation 0, with ``original_width``/``original_height``;
- segment objects → ``brushlabels`` with ``format: "rle"`` in Label Studio's own RLE
  (app/labeltools/ls_rle.py); an object without a mask (no mask decoder installed, or
  mask codes missing) has no brush to give and is left out;
- text → ``textarea`` with ``{"text": [text]}``.

Boxes come as PaliDesk's objects carry them: pixels of the original image
(``DetectedObject.box``, from app.tasks.parsing's ``loc_to_box``, the same box the COCO
export writes). PaliGemma gives no confidence, so ``score`` is written only when the
caller has one: PaliDesk does not invent it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.labeltools.ls_config import BRUSH, RECTANGLE, TEXTAREA, ControlTask
from app.labeltools.ls_rle import mask_to_ls_rle
from app.tasks.parsing import DetectedObject


@dataclass(frozen=True)
class ControlOutput:
    """What PaliDesk produced for one control of one task: objects, or text."""

    control: ControlTask
    objects: Sequence[DetectedObject] = ()
    text: str | None = None


def model_version(model_name: str, quantization: str) -> str:
    """``"paligemma2-3b-mix-448:Q4_K_M"``: the model and its quantization, as Label Studio
    shows it beside each prediction."""
    return f"{model_name}:{quantization}" if quantization else model_name


def build_prediction(
    outputs: Sequence[ControlOutput],
    image_size: tuple[int, int],
    version: str,
    score: float | None = None,
) -> dict[str, object]:
    """One Label Studio prediction for one task from the outputs of its controls.

    ``image_size`` is the original image's (width, height). Objects whose label is not one
    of the control's labels (the model wrote something else) are left out: Label Studio
    rejects a label its config lacks.
    """
    width, height = image_size
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {image_size!r}")
    results: list[dict[str, object]] = []
    for output in outputs:
        control = output.control
        if control.result_type == TEXTAREA:
            if output.text is not None and output.text.strip():
                results.append(textarea_result(output.text, control, image_size,
                                               f"{control.from_name}_{len(results)}"))
            continue
        for obj in output.objects:
            label = match_label(obj.label, control.labels)
            if label is None:
                continue
            result_id = f"{control.from_name}_{len(results)}"
            if control.result_type == RECTANGLE:
                results.append(rectangle_result(obj, label, control, image_size, result_id))
            elif control.result_type == BRUSH and obj.mask is not None:
                results.append(brush_result(obj, label, control, image_size, result_id))
    prediction: dict[str, object] = {"result": results, "model_version": version}
    if score is not None:
        prediction["score"] = score
    return prediction


def match_label(label: str, labels: Sequence[str]) -> str | None:
    """The config label the model's ``label`` names (exactly, else ignoring case and
    spacing), or None. PaliGemma echoes the prompt's class names, sometimes re-cased."""
    if label in labels:
        return label
    wanted = " ".join(label.split()).casefold()
    for candidate in labels:
        if " ".join(candidate.split()).casefold() == wanted:
            return candidate
    return None


def rectangle_result(
    obj: DetectedObject, label: str, control: ControlTask, image_size: tuple[int, int],
    result_id: str,
) -> dict[str, object]:
    """A ``rectanglelabels`` result: the object's pixel box in percent of the image."""
    width, height = image_size
    x_min, y_min, x_max, y_max = obj.box
    return {
        **_common(control, RECTANGLE, image_size, result_id),
        "value": {
            "x": x_min / width * 100.0,
            "y": y_min / height * 100.0,
            "width": (x_max - x_min) / width * 100.0,
            "height": (y_max - y_min) / height * 100.0,
            "rotation": 0,
            RECTANGLE: [label],
        },
    }


def brush_result(
    obj: DetectedObject, label: str, control: ControlTask, image_size: tuple[int, int],
    result_id: str,
) -> dict[str, object]:
    """A ``brushlabels`` result: the object's mask in Label Studio's RLE.

    Raises ``ValueError`` when the object has no mask or its mask is not the image's size.
    """
    if obj.mask is None:
        raise ValueError(f'the object "{obj.label}" has no mask to paint')
    width, height = image_size
    if tuple(obj.mask.size) != (height, width):
        raise ValueError(f"the mask is {obj.mask.size[1]}×{obj.mask.size[0]} pixels but the "
                         f"image is {width}×{height}")
    return {
        **_common(control, BRUSH, image_size, result_id),
        "value": {"format": "rle", "rle": mask_to_ls_rle(obj.mask.to_array()), BRUSH: [label]},
    }


def textarea_result(
    text: str, control: ControlTask, image_size: tuple[int, int], result_id: str
) -> dict[str, object]:
    """A ``textarea`` result holding the model's text for the whole image."""
    return {**_common(control, TEXTAREA, image_size, result_id),
            "value": {"text": [text.strip()]}}


def _common(
    control: ControlTask, kind: str, image_size: tuple[int, int], result_id: str
) -> dict[str, object]:
    width, height = image_size
    return {
        "id": result_id,
        "from_name": control.from_name,
        "to_name": control.to_name,
        "type": kind,
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
    }
