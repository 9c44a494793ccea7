"""The list of images waiting to be run: thumbnails, names, status, add/remove.

Thumbnails are decoded on a thread pool so that adding hundreds of images never blocks
the window; results come back through a queued signal, so item state only ever changes in
the GUI thread. The widget holds no model logic: the main window reads ``runnable_items``
and JobDisplay (job_display.py) reports each job's status back with ``set_status``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import (
    QCoreApplication,
    QItemSelectionModel,
    QObject,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    Signal,
)
from PySide6.QtGui import QColor, QIcon, QImage, QKeyEvent, QKeySequence, QPalette, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from app.engine.image_input import open_sized
from app.errors import ImageError
from app.file_digest import file_sha256
from app.ui.image_files import (
    SUPPORTED_SUFFIXES,
    expand_paths,
    qimage_from_pil,
    save_pasted_image,
)

# "error": the image cannot be read (never runnable); "failed": its last job failed, the
# reason is shown and it can be run again.
STATUSES = ("loading", "ready", "error", "running", "done", "failed")
_KEY_ROLE = Qt.ItemDataRole.UserRole
_MAX_NOTICE_LINES = 5


@dataclass
class QueueItem:
    """One queued image. Read-only for callers: change it through ``ImageQueue.set_status``.

    ``size`` is the original (width, height), known once the thumbnail has loaded;
    ``error`` the user-facing reason when ``status`` is "error"; ``note`` an optional
    short remark shown after the status (e.g. "3 objects").
    """

    key: str
    path: Path
    name: str
    status: str = "loading"
    error: str | None = None
    size: tuple[int, int] | None = None
    note: str = ""
    sha256: str = ""  # digest of the file's bytes, worked out with the thumbnail


@dataclass(frozen=True)
class _Thumbnail:
    image: QImage | None
    size: tuple[int, int] | None
    error: str | None
    sha256: str = ""


class _ThumbnailSignals(QObject):
    """Carries results out of the pool: a QRunnable cannot emit signals itself."""

    loaded = Signal(str, object)  # key, _Thumbnail


class _ThumbnailJob(QRunnable):
    """Decode one image in a pool thread and shrink it to a thumbnail."""

    def __init__(self, key: str, path: Path, side: int, signals: _ThumbnailSignals) -> None:
        super().__init__()
        self._key, self._path, self._side, self._signals = key, path, side, signals

    def run(self) -> None:
        """Emit exactly one result, whatever happens: an item must never stay "loading"."""
        try:
            image, size = open_sized(self._path, min_side=self._side)
            image.thumbnail((self._side, self._side))
            # Hashed here, off the UI thread: "already done" and the results list key on it.
            result = _Thumbnail(qimage_from_pil(image), size, None, file_sha256(self._path))
        except ImageError as exc:
            result = _Thumbnail(None, None, str(exc))
        except Exception as exc:  # a Pillow plugin bug must not leave the item hanging
            result = _Thumbnail(None, None, f"{self._path.name} cannot be read ({exc}).")
        self._signals.loaded.emit(self._key, result)


class _QueueList(QListWidget):
    """The list itself; Delete/Backspace ask for the selection to be removed."""

    delete_requested = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Turn Delete (and Backspace, the macOS delete key) into ``delete_requested``."""
        if event.matches(QKeySequence.StandardKey.Delete) or event.key() in (
            Qt.Key.Key_Delete,
            Qt.Key.Key_Backspace,
        ):
            self.delete_requested.emit()
            event.accept()
            return
        super().keyPressEvent(event)


class ImageQueue(QWidget):
    """Queued images with background thumbnails, an add-buttons row and a count label."""

    current_changed = Signal(object)  # QueueItem | None
    items_changed = Signal()  # items added/removed, or a status, size or thumbnail changed
    notice = Signal(str)  # a user-facing message: skipped files, unreadable images...

    def __init__(
        self,
        parent: QWidget | None = None,
        cache_dir: Path | None = None,
        thumbnail_size: int = 64,
    ) -> None:
        """``cache_dir`` receives pasted images (default: the user cache folder)."""
        super().__init__(parent)
        self._cache_dir = cache_dir
        # Decode at twice the shown size so thumbnails stay sharp on HiDPI screens.
        self._thumb_side = thumbnail_size * 2
        # Created before the signal carrier: Qt deletes children in creation order, and
        # the pool's destructor waits for running jobs, which still need the carrier.
        self._pool = QThreadPool(self)
        # A few threads: decoding is memory-heavy and the GUI thread must keep a core.
        cores = QThreadPool.globalInstance().maxThreadCount()
        self._pool.setMaxThreadCount(max(1, min(4, cores - 1)))
        # QWidget emits destroyed before deleting its children: drop the queued jobs then,
        # so closing the window waits only for the few decodes already running.
        self.destroyed.connect(self._pool.clear)
        self._signals = _ThumbnailSignals(self)
        self._signals.loaded.connect(self._on_thumbnail)

        self._items: dict[str, QueueItem] = {}
        self._rows: dict[str, QListWidgetItem] = {}
        self._keys_by_path: dict[Path, str] = {}
        self._resolved: dict[str, Path] = {}
        self._pending: set[str] = set()  # keys whose thumbnail is still being decoded
        self._next_id = 0
        self._last_current: str | None = None
        # Skipped files and unreadable images not yet reported: one notice once every
        # thumbnail of the drop is decoded, so many bad files give one message.
        self._failed: list[QueueItem] = []
        self._notes: list[str] = []
        self._last_dir = Path.home()
        self._placeholder = self._blank_icon(thumbnail_size)

        self._list = _QueueList(self)
        self._list.setIconSize(QSize(thumbnail_size, thumbnail_size))
        self._list.setViewMode(QListWidget.ViewMode.ListMode)
        self._list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        # No wrapping: a long name is elided in the middle (the end says which file it
        # is); the tooltip has the full path.
        self._list.setWordWrap(False)
        self._list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self._list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._list.setSpacing(2)
        self._list.currentItemChanged.connect(lambda *_: self._emit_current_if_changed())
        self._list.delete_requested.connect(self.remove_selected)

        add_files = QPushButton("Add Files…", self)
        add_files.clicked.connect(self.ask_add_files)
        add_folder = QPushButton("Add Folder…", self)
        add_folder.clicked.connect(self.ask_add_folder)
        self._count_label = QLabel(self)

        buttons = QHBoxLayout()
        buttons.addWidget(add_files)
        buttons.addWidget(add_folder)
        buttons.addStretch(1)
        buttons.addWidget(self._count_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self._list)
        self._update_count()

    # --- reading -------------------------------------------------------------------------

    @property
    def list_widget(self) -> QListWidget:
        """The list, for focus handling and tests."""
        return self._list

    def items(self) -> list[QueueItem]:
        """Every item, in list order."""
        rows = (self._list.item(row) for row in range(self._list.count()))
        return [self._items[self._key_of(row)] for row in rows]

    def runnable_items(self) -> list[QueueItem]:
        """Items that can be run: all but the unreadable ones, in list order."""
        return [item for item in self.items() if item.status != "error"]

    def item(self, key: str) -> QueueItem | None:
        """The item with ``key``, or None if it was removed (or never existed)."""
        return self._items.get(key)

    def current(self) -> QueueItem | None:
        """The item the user is looking at, or None."""
        row = self._list.currentItem()
        return None if row is None else self._items.get(self._key_of(row))

    # --- adding and removing -------------------------------------------------------------

    def add_paths(self, paths: Iterable[Path]) -> int:
        """Queue image files and folders (walked recursively); return how many were added.

        Paths already queued are skipped; anything skipped is reported through ``notice``.
        """
        images, notes = expand_paths(paths)
        had_current = self._list.currentItem() is not None
        added: list[str] = []
        duplicates = 0
        for path in images:
            resolved = path.resolve()
            if resolved in self._keys_by_path:
                duplicates += 1
                continue
            added.append(self._append(path, resolved))
        if duplicates:
            notes.append(
                "1 image was already in the queue."
                if duplicates == 1
                else f"{duplicates} images were already in the queue."
            )
        self._notes.extend(notes)
        if not self._pending:
            self._report_failures()
        if added:
            if not had_current:
                self.set_current(added[0])
            self._update_count()
            self.items_changed.emit()
        return len(added)

    def add_pasted(self, image: QImage) -> None:
        """Save a pasted image to the cache folder, queue it and make it current."""
        try:
            path = save_pasted_image(image, self._cache_dir)
        except ImageError as exc:
            self.notice.emit(str(exc))
            return
        self.add_paths([path])
        key = self._keys_by_path.get(path.resolve())
        if key is not None:
            self.set_current(key)

    def paste_clipboard(self) -> None:
        """Queue the clipboard's image (or image files); says so when it holds neither."""
        clipboard = QApplication.clipboard()
        image = clipboard.image()
        if not image.isNull():
            self.add_pasted(image)
            return
        paths = [Path(u.toLocalFile()) for u in clipboard.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.add_paths(paths)
        else:
            self.notice.emit("The clipboard holds no image.")

    def select_path(self, path: Path) -> bool:
        """Queue ``path`` if needed and make it current; False when it cannot be queued.
        An image already queued is just selected (no "already in the queue" notice)."""
        if path.exists() and path.resolve() not in self._keys_by_path:
            self.add_paths([path])
        key = self._keys_by_path.get(path.resolve())
        if key is not None:
            self.set_current(key)
        return key is not None

    def ask_add_files(self) -> None:
        """Show the file dialog and queue what the user picks (the "Add Files…" button)."""
        paths = self._ask_for_files()
        if paths:
            self._last_dir = paths[0].parent
            self.add_paths(paths)

    def ask_add_folder(self) -> None:
        """Show the folder dialog and queue its images (the "Add Folder…" button)."""
        folder = self._ask_for_folder()
        if folder is not None:
            self._last_dir = folder
            self.add_paths([folder])

    def remove_selected(self) -> int:
        """Remove the selected items; return how many were removed."""
        rows = sorted(self._list.row(row) for row in self._list.selectedItems())
        if not rows:
            return 0
        # One current_changed at the end, not one per removed row.
        self._list.blockSignals(True)
        try:
            for row in reversed(rows):
                self._forget(self._key_of(self._list.takeItem(row)))
            if self._list.count():
                self._list.setCurrentRow(min(rows[0], self._list.count() - 1))
        finally:
            self._list.blockSignals(False)
        self._update_count()
        self.items_changed.emit()
        self._emit_current_if_changed()
        return len(rows)

    def clear(self) -> None:
        """Remove every item (thumbnails still decoding are dropped)."""
        self._pool.clear()  # jobs not started yet; running ones finish and are ignored
        self._list.blockSignals(True)
        try:
            self._list.clear()
        finally:
            self._list.blockSignals(False)
        self._items.clear()
        self._rows.clear()
        self._keys_by_path.clear()
        self._resolved.clear()
        self._pending.clear()
        self._failed.clear()
        self._update_count()
        self.items_changed.emit()
        self._emit_current_if_changed()

    # --- status and selection ------------------------------------------------------------

    def set_status(self, key: str, status: str, note: str = "") -> None:
        """Set an item's status; for "error", ``note`` is the reason shown to the user."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; expected one of {STATUSES}")
        item = self._items.get(key)
        if item is None:
            return  # removed while it was running: nothing to show
        item.status = status
        item.error = (note or "This image cannot be used.") if status == "error" else None
        item.note = "" if status == "error" else note
        self._refresh_row(item)
        self._update_count()
        self.items_changed.emit()

    def set_current(self, key: str) -> None:
        """Make the item with ``key`` current (and the only selection)."""
        row = self._rows.get(key)
        if row is not None:
            # ClearAndSelect, explicitly: QListWidget's default in extended selection is
            # SelectCurrent, which replaces only the uncommitted part of the selection;
            # once rows are added (which commits it), the previous row stayed highlighted
            # beside the new one, and Delete removed both.
            self._list.setCurrentItem(row, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            self._list.scrollToItem(row)

    def select_next(self) -> None:
        """Move to the next item (the first if none is current); stays on the last."""
        self._step(+1)

    def select_previous(self) -> None:
        """Move to the previous item (the first if none is current); stays on the first."""
        self._step(-1)

    def wait_for_thumbnails(self, timeout_ms: int = 30_000) -> bool:
        """Block until every queued thumbnail is decoded and applied; False on timeout.

        For tests and shutdown; the window itself never needs to wait.
        """
        done = self._pool.waitForDone(timeout_ms)
        # Results are queued signals: deliver them now, then the batched notice.
        QCoreApplication.processEvents()
        self._report_failures()
        return done

    def shutdown(self) -> None:
        """Drop queued thumbnail jobs and wait for running ones; call before closing."""
        self._pool.clear()
        self._pool.waitForDone()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        for item in self._items.values():  # names are elided to the new width
            self._refresh_row(item)

    # --- internals -----------------------------------------------------------------------

    def _append(self, path: Path, resolved: Path) -> str:
        key = f"image-{self._next_id}"
        self._next_id += 1
        item = QueueItem(key=key, path=path, name=path.name)
        row = QListWidgetItem(self._placeholder, "")
        row.setData(_KEY_ROLE, key)
        self._items[key] = item
        self._rows[key] = row
        self._keys_by_path[resolved] = key
        self._resolved[key] = resolved
        self._pending.add(key)
        self._list.addItem(row)
        self._refresh_row(item)
        self._pool.start(_ThumbnailJob(key, path, self._thumb_side, self._signals))
        return key

    def _forget(self, key: str) -> None:
        self._items.pop(key, None)
        self._rows.pop(key, None)
        self._pending.discard(key)
        resolved = self._resolved.pop(key, None)
        if resolved is not None:
            self._keys_by_path.pop(resolved, None)

    def _on_thumbnail(self, key: str, result: _Thumbnail) -> None:
        self._pending.discard(key)
        item = self._items.get(key)
        if item is None:  # removed while decoding
            if not self._pending:
                self._report_failures()
            return
        row = self._rows[key]
        if result.error is not None:
            item.error = result.error
            if item.status == "loading":
                item.status = "error"
            warning = QStyle.StandardPixmap.SP_MessageBoxWarning
            row.setIcon(self.style().standardIcon(warning))
            self._failed.append(item)
        else:
            item.size = result.size
            item.sha256 = result.sha256
            if result.image is not None:
                row.setIcon(QIcon(QPixmap.fromImage(result.image)))
            if item.status == "loading":
                item.status = "ready"
        self._refresh_row(item)
        self._update_count()
        self.items_changed.emit()
        if not self._pending:
            self._report_failures()

    def _report_failures(self) -> None:
        failed = [item for item in self._failed if item.key in self._items]
        lines, self._notes, self._failed = self._notes, [], []
        if len(failed) == 1:
            lines.append(failed[0].error or f"{failed[0].name} cannot be read.")
        elif failed:
            names = ", ".join(item.name for item in failed[:3])
            more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
            lines.append(f"{len(failed)} images cannot be read ({names}{more}). "
                         "Hover over them in the list to see why.")
        if lines:
            self.notice.emit(_summarize(lines))

    def _refresh_row(self, item: QueueItem) -> None:
        row = self._rows[item.key]
        text = _status_text(item)
        # Elided here to the list's width (the view itself would scroll sideways): the
        # middle of a long name goes, so its start and its extension stay readable.
        metrics = self._list.fontMetrics()
        width = max(60, self._list.viewport().width() - self._list.iconSize().width() - 28)
        name = metrics.elidedText(item.name, Qt.TextElideMode.ElideMiddle, width)
        # The note gets a line of its own (a 64 px thumbnail leaves room for three), so
        # "re-run cancelled" is not cut to "· can…" after the size.
        lines = [name, *(metrics.elidedText(part, Qt.TextElideMode.ElideRight, width)
                         for part in _status_lines(item))]
        row.setText("\n".join(lines))
        row.setToolTip(f"{item.path}\n{text}")
        if item.status == "error":
            grey = self.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
            row.setForeground(grey)
        else:
            row.setData(Qt.ItemDataRole.ForegroundRole, None)
        font = row.font()
        font.setBold(item.status == "running")
        row.setFont(font)

    def _update_count(self) -> None:
        total = len(self._items)
        errors = sum(1 for item in self._items.values() if item.status == "error")
        text = "No images" if total == 0 else f"{total} image{'s' if total != 1 else ''}"
        if errors:
            text += f", {errors} unreadable"
        self._count_label.setText(text)

    def _emit_current_if_changed(self) -> None:
        current = self.current()
        key = None if current is None else current.key
        if key != self._last_current:
            self._last_current = key
            self.current_changed.emit(current)

    def _step(self, delta: int) -> None:
        count = self._list.count()
        if count == 0:
            return
        row = self._list.currentRow()
        target = 0 if row < 0 else min(max(row + delta, 0), count - 1)
        if target != row:
            self.set_current(self._key_of(self._list.item(target)))  # one row selected

    def _ask_for_files(self) -> list[Path]:
        """Ask for image files (a method of its own so tests can replace the dialog)."""
        # Both cases: on Linux the dialog's patterns are case-sensitive.
        suffixes = sorted(SUPPORTED_SUFFIXES)
        patterns = " ".join([f"*{s}" for s in suffixes] + [f"*{s.upper()}" for s in suffixes])
        files, _ = QFileDialog.getOpenFileNames(
            self, "Add Images", str(self._last_dir), f"Images ({patterns});;All files (*)"
        )
        return [Path(name) for name in files]

    def _ask_for_folder(self) -> Path | None:
        """Ask for a folder (a method of its own so tests can replace the dialog)."""
        folder = QFileDialog.getExistingDirectory(self, "Add Folder", str(self._last_dir))
        return Path(folder) if folder else None

    @staticmethod
    def _key_of(row: QListWidgetItem) -> str:
        return str(row.data(_KEY_ROLE))

    @staticmethod
    def _blank_icon(side: int) -> QIcon:
        # A same-sized placeholder keeps rows from jumping when thumbnails arrive.
        pixmap = QPixmap(side, side)
        pixmap.fill(QColor(128, 128, 128, 40))
        return QIcon(pixmap)


def _status_text(item: QueueItem) -> str:
    if item.status == "error":
        return item.error or "This image cannot be used."
    if item.status == "loading":
        text = "Loading…"
    elif item.status == "ready":
        text = "Ready" if item.size is None else f"Ready · {item.size[0]}×{item.size[1]}"
    elif item.status == "running":
        text = "Running…"
    elif item.status == "failed":
        text = "Failed"
    else:
        text = "Done"
    return f"{text} · {item.note}" if item.note else text


def _status_lines(item: QueueItem) -> list[str]:
    """The row's lines under the name: the status, then the note if there is one."""
    if item.status == "error" or not item.note:
        return [_status_text(item)]
    return [_status_text(QueueItem(item.key, item.path, item.name, item.status, item.error,
                                   item.size)), item.note]


def _summarize(lines: list[str]) -> str:
    if len(lines) <= _MAX_NOTICE_LINES:
        return "\n".join(lines)
    shown = lines[: _MAX_NOTICE_LINES - 1]
    return "\n".join([*shown, f"…and {len(lines) - len(shown)} more skipped."])
