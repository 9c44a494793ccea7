"""Masks drawn live: a scripted segment stream through run_task into the image view."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint, QPointF
from scripted_engine import ScriptedEngine
from test_task_masks import IMAGE, SEGMENT, TEXT

from app.tasks.task_runner import ObjectEvent, TaskResult, run_task
from app.ui.image_view import ImageView
from app.ui.label_colors import color_for_label


def _screen_rgb(image_view: ImageView, image_xy: tuple[int, int]) -> tuple[int, int, int]:
    """The colour on screen at the centre of an image pixel."""
    shot = image_view.viewport().grab().toImage()
    at = image_view.mapFromScene(QPointF(image_xy[0] + 0.5, image_xy[1] + 0.5))
    color = shot.pixelColor(QPoint(at.x(), at.y()))
    return color.red(), color.green(), color.blue()


def test_masks_appear_as_objects_stream_in(image_view: ImageView, mask_decoder_weights: Path,
                                           qtbot) -> None:
    image_view.show_image(IMAGE)
    engine = ScriptedEngine(TEXT)
    counts = []
    result = None
    for event in run_task(engine, str(IMAGE), SEGMENT, mask_decoder=mask_decoder_weights):  # type: ignore[arg-type]
        if isinstance(event, ObjectEvent):
            image_view.add_object(event.obj)
            shown = len(image_view.mask_items())
            counts.append((event.obj.label, shown, len("".join(engine.seen))))
        elif isinstance(event, TaskResult):
            result = event
    assert result is not None
    # cat and sky get a mask each the moment they complete; dog (10 codes) only a box.
    assert [(label, masks) for label, masks, _ in counts] == [("cat", 1), ("sky", 2),
                                                               ("dog", 2)]
    assert counts[0][2] < len(TEXT)  # the first mask was drawn mid-stream
    assert len(image_view.overlay_items()) == 3

    cat = result.objects[0]
    mask = cat.mask.to_array()  # type: ignore[union-attr]
    item = image_view.mask_items()[0]
    ys, xs = np.nonzero(mask)
    # The item covers exactly the mask's pixels, in image coordinates, under the box.
    assert item.mapRectToScene(item.boundingRect()).toRect().getCoords()[:2] == (
        xs.min(), ys.min())
    assert item.zValue() < image_view.overlay_items()[0].zValue()
    pixmap = item.pixmap().toImage()
    inside = pixmap.pixelColor(int(xs[0] - xs.min()), int(ys[0] - ys.min()))
    colour = color_for_label("cat")
    # Within rounding: the pixmap stores premultiplied alpha.
    assert abs(inside.red() - colour.red()) <= 2 and abs(inside.green() - colour.green()) <= 2
    assert abs(inside.blue() - colour.blue()) <= 2
    assert 0 < inside.alpha() < 255  # translucent: the image shows through
    hole = np.argwhere(~mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1])
    if len(hole):
        y, x = hole[0]
        assert pixmap.pixelColor(int(x), int(y)).alpha() == 0


def test_masks_tint_the_screen_and_go_with_the_overlays(
    image_view: ImageView, mask_decoder_weights: Path
) -> None:
    image_view.show_image(IMAGE)
    engine = ScriptedEngine(TEXT)
    events = list(run_task(engine, str(IMAGE), SEGMENT,  # type: ignore[arg-type]
                           mask_decoder=mask_decoder_weights))
    cat = events[-1].objects[0]
    mask = cat.mask.to_array()
    # A mask pixel away from every box edge, so only the fill can change it.
    y1, x1 = int(cat.box[1]) + 3, int(cat.box[0]) + 3
    y2, x2 = int(cat.box[3]) - 3, int(cat.box[2]) - 3
    candidates = np.argwhere(mask[y1:y2, x1:x2]) + np.array([y1, x1])
    y, x = candidates[len(candidates) // 2]
    bare = _screen_rgb(image_view, (x, y))
    image_view.set_objects([cat])  # as results reloaded from the history are shown
    tinted = _screen_rgb(image_view, (x, y))
    assert tinted != bare
    image_view.clear_overlays()
    assert image_view.mask_items() == [] and _screen_rgb(image_view, (x, y)) == bare
