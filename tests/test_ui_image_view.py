"""The image view: overlays in image pixels, stable colours, masks, zoom, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QWheelEvent
from PySide6.QtWidgets import QApplication

from app.tasks.mask_rle import ObjectMask
from app.tasks.parsing import DetectedObject
from app.ui.image_view import EMPTY_HINT, ImageView
from app.ui.label_colors import color_for_label, text_color_on

IMAGES = Path(__file__).parent / "fixtures" / "images"
WIDE = IMAGES / "shapes_320x240.png"


def _obj(label: str, box: tuple[float, float, float, float]) -> DetectedObject:
    return DetectedObject(label=label, box=box, loc=(0, 0, 0, 0))


def test_overlay_box_sits_at_its_image_pixels(image_view: ImageView) -> None:
    image_view.show_image(WIDE)
    assert image_view.has_image()
    assert image_view.sceneRect() == QRectF(0, 0, 320, 240)
    image_view.add_object(_obj("cat", (10.5, 20.0, 110.5, 70.0)))
    image_view.add_object(_obj("dog", (200.0, 0.0, 320.0, 240.0)))
    boxes = image_view.overlay_items()
    assert len(boxes) == 2
    assert boxes[0].mapRectToScene(boxes[0].rect()) == QRectF(10.5, 20.0, 100.0, 50.0)
    assert boxes[1].mapRectToScene(boxes[1].rect()) == QRectF(200.0, 0.0, 120.0, 240.0)
    assert boxes[0].pen().color() == color_for_label("cat")
    assert boxes[0].pen().isCosmetic()
    assert [obj.label for obj in image_view.objects()] == ["cat", "dog"]
    image_view.clear_overlays()
    assert image_view.overlay_items() == [] and image_view.objects() == []


def test_set_objects_replaces_and_a_new_image_clears(image_view: ImageView) -> None:
    image_view.show_image(WIDE)
    image_view.set_objects([_obj("a", (0, 0, 5, 5)), _obj("b", (5, 5, 9, 9))])
    image_view.set_objects([_obj("c", (1, 1, 2, 2))])
    assert [obj.label for obj in image_view.objects()] == ["c"]
    image_view.show_image(IMAGES / "noise_97x150.png")
    assert image_view.objects() == []
    assert image_view.sceneRect() == QRectF(0, 0, 97, 150)


def test_label_colours_are_stable_and_distinct() -> None:
    assert color_for_label("cat") == color_for_label("cat")
    assert color_for_label("cat") == color_for_label(" Cat ")
    # A fixed value: Python's salted hash() would change it from run to run.
    assert color_for_label("cat").name() == "#f22459"
    labels = ["cat", "dog", "person", "car", "bicycle", "bus"]
    assert len({color_for_label(label).name() for label in labels}) == len(labels)


def test_text_colour_contrasts_with_the_label_colour() -> None:
    assert text_color_on(QColor("yellow")) == QColor("black")
    assert text_color_on(QColor("navy")) == QColor("white")


def test_an_objects_mask_fills_its_pixels_under_the_box(image_view: ImageView) -> None:
    image_view.show_image(WIDE)
    pixels = np.zeros((240, 320), dtype=bool)
    pixels[30:90, 40:90] = True  # the left half of the box below
    person = DetectedObject(label="person", box=(40.0, 30.0, 140.0, 90.0), loc=(0, 0, 0, 0),
                            mask=ObjectMask.from_array(pixels))
    image_view.add_object(person)
    (item,) = image_view.mask_items()
    # Only the rectangle around the mask's pixels becomes a pixmap, at its image pixels.
    assert item.mapRectToScene(item.boundingRect()) == QRectF(40.0, 30.0, 50.0, 60.0)
    image = item.pixmap().toImage()
    inside, expected = image.pixelColor(10, 30), color_for_label("person")
    assert inside.alpha() == 90
    # The pixmap stores premultiplied alpha, so channels may round by a step or two.
    assert abs(inside.red() - expected.red()) <= 3
    assert abs(inside.green() - expected.green()) <= 3
    assert abs(inside.blue() - expected.blue()) <= 3
    image_view.set_objects([person])  # shown again (a result reopened): replaces, does not stack
    assert len(image_view.mask_items()) == 1 and len(image_view.overlay_items()) == 1


def test_an_empty_mask_leaves_the_box_alone(image_view: ImageView) -> None:
    image_view.show_image(WIDE)
    empty = ObjectMask.from_array(np.zeros((240, 320), dtype=bool))
    image_view.add_object(DetectedObject(label="tree", box=(0, 0, 10, 10), loc=(0, 0, 0, 0),
                                   mask=empty))
    assert len(image_view.overlay_items()) == 1 and image_view.mask_items() == []


def test_zoom_changes_the_transform_and_fit_resets_it(qtbot, image_view: ImageView) -> None:
    image_view.show_image(WIDE)
    fitted = image_view.zoom_factor()
    assert image_view.is_fitted() and fitted > 0
    image_view.zoom_in()
    assert image_view.zoom_factor() == pytest.approx(fitted * 1.25)
    assert not image_view.is_fitted()
    image_view.zoom_out()
    image_view.zoom_out()
    assert image_view.zoom_factor() == pytest.approx(fitted / 1.25)
    qtbot.keyClick(image_view, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert image_view.is_fitted() and image_view.zoom_factor() == pytest.approx(fitted)
    qtbot.keyClick(image_view, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert image_view.zoom_factor() > fitted
    image_view.fit_to_window()
    assert image_view.zoom_factor() == pytest.approx(fitted)


def test_wheel_zooms_and_double_click_fits(qtbot, image_view: ImageView) -> None:
    image_view.show_image(WIDE)
    fitted = image_view.zoom_factor()
    where = QPointF(100, 100)
    wheel = QWheelEvent(
        where,
        image_view.viewport().mapToGlobal(where),
        QPoint(0, 0),
        QPoint(0, 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(image_view.viewport(), wheel)
    assert image_view.zoom_factor() == pytest.approx(fitted * 1.25)
    qtbot.mouseDClick(image_view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(50, 50))
    assert image_view.zoom_factor() == pytest.approx(fitted)


def test_resizing_refits_until_the_user_zooms(qtbot, image_view: ImageView) -> None:
    image_view.show_image(WIDE)
    before = image_view.zoom_factor()
    image_view.resize(1000, 800)
    qtbot.waitUntil(lambda: image_view.zoom_factor() > before)
    image_view.zoom_in()
    zoomed = image_view.zoom_factor()
    image_view.resize(500, 400)
    QApplication.processEvents()
    assert image_view.zoom_factor() == pytest.approx(zoomed)


def test_missing_or_corrupt_image_shows_the_reason(qtbot, image_view: ImageView, tmp_path: Path):
    image_view.show_image(tmp_path / "gone.png")
    assert not image_view.has_image()
    assert "does not exist" in image_view.message()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    image_view.show_image(broken)
    assert "broken.png" in image_view.message()
    image_view.zoom_in()  # nothing to zoom: must not raise
    image_view.show_image(None)
    assert image_view.message() == EMPTY_HINT
    image_view.show_image(WIDE)
    assert image_view.has_image() and image_view.message() == ""


def test_label_tag_moves_inside_a_box_at_the_top_edge(image_view: ImageView) -> None:
    image_view.show_image(WIDE)
    image_view.add_object(_obj("top", (10, 0, 60, 40)))
    image_view.add_object(_obj("middle", (10, 120, 60, 160)))
    top_tag = image_view.overlay_items()[0].childItems()[0]
    middle_tag = image_view.overlay_items()[1].childItems()[0]
    assert top_tag.boundingRect().top() == 0  # inside the box
    assert middle_tag.boundingRect().bottom() == 0  # above the box
