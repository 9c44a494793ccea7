"""The central image: zoom and pan, with detection boxes, label tags and masks on top.

The scene is the image at its natural size, so overlays are placed in ORIGINAL image
pixels (the coordinates the parser reports) and follow every zoom for free. The image is
opened with the same ``open_image`` the engine uses, so what is shown is exactly what the
model saw (no EXIF rotation on one side only) and the boxes line up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSizeF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QImage,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPalette,
    QPen,
    QPixmap,
    QResizeEvent,
    QShowEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsView,
    QStyleOptionGraphicsItem,
    QWidget,
)

from app.engine.image_input import open_image
from app.errors import ImageError
from app.tasks.parsing import DetectedObject
from app.ui.image_files import qimage_from_pil
from app.ui.label_colors import color_for_label, text_color_on

EMPTY_HINT = "Drop images here, or paste one with Ctrl+V"
_ZOOM_STEP = 1.25
_MIN_ZOOM, _MAX_ZOOM = 0.02, 64.0
_MASK_ALPHA = 90
_BOX_PEN_PX = 2
_TAG_MAX_PX = 240  # longer labels are elided so a tag never hides half the image
# Stacking order: image, masks, boxes (tags are children of their box).
_Z_MASK, _Z_BOX = 1.0, 2.0


class _LabelTag(QGraphicsItem):
    """A filled tag with the label text, the same size on screen at any zoom."""

    _PAD_X, _PAD_Y = 4.0, 1.0

    def __init__(self, text: str, color: QColor, parent: QGraphicsItem) -> None:
        super().__init__(parent)
        # Local units are screen pixels from here on: the tag stays readable when zoomed out.
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self._font = QFont()
        metrics = QFontMetricsF(self._font)
        self._text = metrics.elidedText(text, Qt.TextElideMode.ElideRight, _TAG_MAX_PX)
        self._color = color
        self._size = QSizeF(
            metrics.horizontalAdvance(self._text) + 2 * self._PAD_X,
            metrics.height() + 2 * self._PAD_Y,
        )
        self._above = True

    @property
    def height(self) -> float:
        """Height in screen pixels."""
        return self._size.height()

    def set_above(self, above: bool) -> None:
        """Sit just above the box's top edge, or just inside it when there is no room."""
        if above != self._above:
            self.prepareGeometryChange()
            self._above = above

    def boundingRect(self) -> QRectF:
        """The tag rectangle, anchored at the box's top-left corner."""
        # Start one pixel left so the tag lines up with the outer edge of the 2-px pen.
        top = -self._size.height() if self._above else 0.0
        return QRectF(QPointF(-_BOX_PEN_PX / 2, top), self._size)

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionGraphicsItem,
        widget: QWidget | None = None,
    ) -> None:
        """Fill with the label colour and write the label in black or white."""
        rect = self.boundingRect()
        painter.fillRect(rect, self._color)
        painter.setFont(self._font)
        painter.setPen(text_color_on(self._color))
        text_rect = rect.adjusted(self._PAD_X, 0, -self._PAD_X, 0)
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignVCenter, self._text)


@dataclass
class _Overlay:
    obj: DetectedObject
    box: QGraphicsRectItem
    tag: _LabelTag
    mask: QGraphicsPixmapItem | None = None


class ImageView(QGraphicsView):
    """Shows one image; mouse wheel zooms, dragging pans, double-click or Ctrl+0 fits."""

    zoom_changed = Signal(float)  # the new scale (1.0 = one image pixel per screen pixel)

    def __init__(self, parent: QWidget | None = None) -> None:
        """An empty view showing the drop hint."""
        super().__init__(parent)
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self._image_item = QGraphicsPixmapItem()
        self._image_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._image_item.setVisible(False)
        self._scene.addItem(self._image_item)
        self._overlays: list[_Overlay] = []
        self._message = EMPTY_HINT
        self._shown: tuple[Path, int, int] | None = None  # (path, mtime_ns, size) on screen
        self._fit_mode = True  # refit on resize until the user zooms

        self.setRenderHints(
            QPainter.RenderHint.Antialiasing
            | QPainter.RenderHint.SmoothPixmapTransform
            | QPainter.RenderHint.TextAntialiasing
        )
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        # Drops belong to the main window: refusing them here lets them reach it.
        self.setAcceptDrops(False)
        self.viewport().setAcceptDrops(False)
        self._scene.setSceneRect(QRectF(0, 0, 1, 1))

    # --- the image -----------------------------------------------------------------------

    def show_image(self, path: Path | None) -> None:
        """Show the image at ``path`` fitted to the window (None: the drop hint).

        Overlays are cleared. An image that cannot be read shows the reason instead (the
        queue reports unreadable files once); this never raises for a bad file.
        """
        self.clear_overlays()
        if path is None:
            self._show_message(EMPTY_HINT)
            return
        path = Path(path)
        stamp = _file_stamp(path)
        if stamp is not None and stamp == self._shown:
            return  # the same unchanged file: keep the user's zoom and position
        try:
            pixmap = QPixmap.fromImage(qimage_from_pil(open_image(path)))
        except ImageError as exc:
            self._show_message(str(exc))
            return
        except MemoryError:
            message = f"{path.name} is too large to show with the memory available."
            self._show_message(message)
            return
        self._image_item.setPixmap(pixmap)
        self._image_item.setVisible(True)
        self._scene.setSceneRect(QRectF(0, 0, pixmap.width(), pixmap.height()))
        self._message = ""
        self._shown = stamp
        self.fit_to_window()

    def has_image(self) -> bool:
        """True when an image is on screen (not the hint or an error)."""
        return self._image_item.isVisible()

    def message(self) -> str:
        """The text shown instead of an image ("" while an image is shown)."""
        return self._message

    def _show_message(self, text: str) -> None:
        self._image_item.setPixmap(QPixmap())
        self._image_item.setVisible(False)
        self._scene.setSceneRect(QRectF(0, 0, 1, 1))
        self._shown = None
        self._message = text
        self.resetTransform()
        self._fit_mode = True
        self.viewport().update()

    # --- zoom ----------------------------------------------------------------------------

    def zoom_factor(self) -> float:
        """Screen pixels per image pixel."""
        return self.transform().m11()

    def is_fitted(self) -> bool:
        """True while the image follows the window size (until the user zooms)."""
        return self._fit_mode

    def zoom_in(self) -> None:
        """Zoom in one step around the centre."""
        self.zoom_by(_ZOOM_STEP)

    def zoom_out(self) -> None:
        """Zoom out one step around the centre."""
        self.zoom_by(1 / _ZOOM_STEP)

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """Scale by ``factor``, keeping the image point under ``anchor`` (viewport
        coordinates; default the centre) where it is."""
        if not self.has_image() or factor <= 0:
            return
        current = self.zoom_factor()
        target = min(max(current * factor, _MIN_ZOOM), _MAX_ZOOM)
        if target == current:
            return
        self._fit_mode = False
        if anchor is None:
            anchor = QPointF(self.viewport().rect().center())
        fixed = self.mapToScene(anchor.toPoint())
        self.scale(target / current, target / current)
        # Scroll back so the point under the anchor has not moved; done by hand because
        # AnchorUnderMouse needs a prior mouse move over the view, which a wheel lacks.
        moved = self.mapFromScene(fixed) - anchor.toPoint()
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + moved.x())
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + moved.y())
        self._place_tags()
        self.zoom_changed.emit(target)

    def fit_to_window(self) -> None:
        """Fit the whole image in the window, and keep it fitted when the window resizes."""
        self._fit_mode = True
        self._apply_fit()

    def _apply_fit(self) -> None:
        if not self.has_image():
            self.resetTransform()
            return
        self.fitInView(self.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
        self._place_tags()
        self.zoom_changed.emit(self.zoom_factor())

    # --- overlays ------------------------------------------------------------------------

    def add_object(self, obj: DetectedObject) -> None:
        """Draw ``obj``'s box in its label colour, with a label tag at its top-left, and
        its mask (when it has one) filled translucent in the same colour under the box."""
        overlay = self._add_overlay(obj)
        if obj.mask is not None:
            self._draw_full_mask(overlay, obj.mask.to_array())

    def set_objects(self, objs: list[DetectedObject]) -> None:
        """Replace every overlay with ``objs`` (boxes, tags and masks)."""
        self.clear_overlays()
        for obj in objs:
            self.add_object(obj)

    def clear_overlays(self) -> None:
        """Remove every box, tag and mask (the image stays)."""
        for overlay in self._overlays:
            self._scene.removeItem(overlay.box)  # the tag goes with its box
            if overlay.mask is not None:
                self._scene.removeItem(overlay.mask)
        self._overlays.clear()

    def objects(self) -> list[DetectedObject]:
        """The objects drawn, in the order they were added."""
        return [overlay.obj for overlay in self._overlays]

    def overlay_items(self) -> list[QGraphicsItem]:
        """The box items, one per object, in order."""
        return [overlay.box for overlay in self._overlays]

    def mask_items(self) -> list[QGraphicsItem]:
        """The mask items, one per object that has a mask."""
        return [overlay.mask for overlay in self._overlays if overlay.mask is not None]

    def _draw_full_mask(self, overlay: _Overlay, mask: np.ndarray) -> None:
        """Fill the True pixels of an image-sized bool ``mask`` in the label's colour.

        Only the rectangle around the mask's pixels becomes a pixmap: a full-size RGBA
        copy of a 12-megapixel photo per object would cost 48 MB each.
        """
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            return  # an empty mask: the box alone says where the object is
        top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        # Nearest-pixel scaling: the mask is exact per image pixel, so keep its edges crisp.
        self._place_mask(overlay, mask[top:bottom, left:right], float(left), float(top))

    def _place_mask(self, overlay: _Overlay, inside: np.ndarray, x: float,
                    y: float) -> QGraphicsPixmapItem:
        """Show the True pixels of ``inside`` in the label's colour with its top-left corner
        at (x, y) in image pixels, under the box, replacing the overlay's previous mask."""
        color = color_for_label(overlay.obj.label)
        height, width = inside.shape
        rgba = np.zeros((height, width, 4), dtype=np.uint8)
        rgba[inside] = (color.red(), color.green(), color.blue(), _MASK_ALPHA)
        image = QImage(rgba.tobytes(), width, height, width * 4, QImage.Format.Format_RGBA8888)
        item = QGraphicsPixmapItem(QPixmap.fromImage(image.copy()))
        item.setTransformationMode(Qt.TransformationMode.FastTransformation)
        item.setPos(x, y)
        item.setZValue(_Z_MASK)
        if overlay.mask is not None:
            self._scene.removeItem(overlay.mask)
        self._scene.addItem(item)
        overlay.mask = item
        return item

    def _add_overlay(self, obj: DetectedObject) -> _Overlay:
        x_min, y_min, x_max, y_max = obj.box
        color = color_for_label(obj.label)
        pen = QPen(color, _BOX_PEN_PX)
        pen.setCosmetic(True)  # 2 screen pixels at every zoom
        pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        box = QGraphicsRectItem(QRectF(x_min, y_min, x_max - x_min, y_max - y_min))
        box.setPen(pen)
        box.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        box.setZValue(_Z_BOX)
        box.setToolTip(
            f"{obj.label}\n({x_min:.0f}, {y_min:.0f}) – ({x_max:.0f}, {y_max:.0f})"
        )
        tag = _LabelTag(obj.label, color, box)
        tag.setPos(x_min, y_min)
        self._scene.addItem(box)
        overlay = _Overlay(obj, box, tag)
        self._overlays.append(overlay)
        self._place_tag(overlay)
        return overlay

    def _place_tags(self) -> None:
        for overlay in self._overlays:
            self._place_tag(overlay)

    def _place_tag(self, overlay: _Overlay) -> None:
        # Above the box when there is room in the image, else inside it, so a box at
        # the top edge does not push its tag out of view.
        scale = self.zoom_factor() or 1.0
        room = overlay.box.rect().top() - self.sceneRect().top()
        overlay.tag.set_above(room * scale >= overlay.tag.height)

    # --- Qt events -----------------------------------------------------------------------

    def wheelEvent(self, event: QWheelEvent) -> None:
        """Zoom around the cursor; 120 units (one notch) is about one zoom step."""
        delta = event.angleDelta().y()
        if delta == 0 or not self.has_image():
            super().wheelEvent(event)
            return
        self.zoom_by(_ZOOM_STEP ** (delta / 120), event.position())
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Ctrl++ / Ctrl+= zoom in, Ctrl+- zoom out, Ctrl+0 fit."""
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        key = event.key()
        if event.matches(QKeySequence.StandardKey.ZoomIn) or (
            ctrl and key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal)
        ):
            self.zoom_in()
        elif event.matches(QKeySequence.StandardKey.ZoomOut) or (ctrl and key == Qt.Key.Key_Minus):
            self.zoom_out()
        elif ctrl and key == Qt.Key.Key_0:
            self.fit_to_window()
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        """Double-click fits the image to the window."""
        self.fit_to_window()
        event.accept()

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Keep the image fitted while the user has not zoomed."""
        super().resizeEvent(event)
        if self._fit_mode:
            self._apply_fit()

    def showEvent(self, event: QShowEvent) -> None:
        """Fit once the final size is known."""
        super().showEvent(event)
        if self._fit_mode:
            self._apply_fit()

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:
        """Draw the hint or error text, centred in the window, when there is no image."""
        super().drawBackground(painter, rect)
        if not self._message:
            return
        painter.save()
        painter.resetTransform()  # viewport pixels: centred whatever the transform
        painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
        area = self.viewport().rect().adjusted(24, 24, -24, -24)
        flags = Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap
        painter.drawText(area, int(flags), self._message)
        painter.restore()


def _file_stamp(path: Path) -> tuple[Path, int, int] | None:
    """(resolved path, mtime, size): equal only for the same unchanged file."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (path.resolve(), stat.st_mtime_ns, stat.st_size)
