"""The image queue: adding files and folders, skipped notes, errors, pastes, keys."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QColor, QImage

from app.ui.image_files import expand_paths, paths_from_mime, save_pasted_image
from app.ui.image_queue import ImageQueue

IMAGES = Path(__file__).parent / "fixtures" / "images"
FIXTURE_NAMES = ["noise_97x150.png", "shapes_320x240.png", "strokes_500x500.png"]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder: three good images, a text file, a corrupt PNG and a sub-folder."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in FIXTURE_NAMES:
        shutil.copy(IMAGES / name, folder / name)
    (folder / "notes.txt").write_text("not an image")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    (folder / "sub").mkdir()
    shutil.copy(IMAGES / "shapes_320x240.png", folder / "sub" / "again.png")
    return folder


@pytest.fixture
def queue(qtbot, tmp_path: Path):
    widget = ImageQueue(cache_dir=tmp_path / "cache")
    qtbot.addWidget(widget)
    yield widget
    widget.shutdown()  # never leave pool threads behind


def test_expand_paths_walks_folders_in_order_and_notes_skips(photos: Path) -> None:
    images, notes = expand_paths([photos, photos / "notes.txt", photos / "missing.png"])
    assert [p.name for p in images] == [
        "corrupt.png",
        *FIXTURE_NAMES,
        "again.png",  # sub-folder after the files of its parent, as sorted walk order
    ]
    assert "notes.txt is not an image file PaliDesk reads." in notes
    assert any("missing.png" in note for note in notes)


def test_expand_paths_summarises_a_folder_full_of_other_files(tmp_path: Path) -> None:
    for index in range(10):
        (tmp_path / f"sidecar{index}.xmp").write_text("x")
    images, notes = expand_paths([tmp_path])
    assert images == []
    assert any(note.startswith("10 files in") for note in notes)
    assert any("holds no images" in note for note in notes)


def test_add_folder_adds_images_and_reports_skipped(qtbot, queue: ImageQueue, photos: Path):
    with qtbot.waitSignal(queue.notice) as notice:
        added = queue.add_paths([photos])
    assert added == 5
    assert "notes.txt is not an image file PaliDesk reads" in notice.args[0]
    assert queue.wait_for_thumbnails(10_000)
    by_name = {item.name: item for item in queue.items()}
    assert by_name["shapes_320x240.png"].status == "ready"
    assert by_name["shapes_320x240.png"].size == (320, 240)
    assert by_name["noise_97x150.png"].size == (97, 150)
    assert queue.current() is not None  # the first added image becomes current


def test_adding_returns_before_thumbnails_load(queue: ImageQueue, tmp_path: Path) -> None:
    # Results arrive as queued signals, so nothing can finish inside add_paths: the UI
    # thread is never held up by decoding, however many images are added.
    for index in range(60):
        Image.new("RGB", (64 + index, 48), (index, 0, 0)).save(tmp_path / f"{index:03}.png")
    assert queue.add_paths([tmp_path]) == 60
    assert {item.status for item in queue.items()} == {"loading"}
    assert queue.wait_for_thumbnails(20_000)
    assert {item.status for item in queue.items()} == {"ready"}


def test_corrupt_image_becomes_an_error_item(qtbot, queue: ImageQueue, photos: Path) -> None:
    queue.add_paths([photos / "corrupt.png", photos / "shapes_320x240.png"])
    with qtbot.waitSignal(queue.notice) as notice:
        queue.wait_for_thumbnails(10_000)
    bad = next(item for item in queue.items() if item.name == "corrupt.png")
    assert bad.status == "error"
    assert bad.error is not None and "corrupt.png" in bad.error
    assert "corrupt.png" in notice.args[0]
    row = queue.list_widget.item(0)
    assert bad.error in row.text() and bad.error in row.toolTip()
    assert [item.name for item in queue.runnable_items()] == ["shapes_320x240.png"]


def test_too_large_image_becomes_an_error_item(
    queue: ImageQueue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.png"
    Image.new("RGB", (300, 200)).save(big)
    # 60 000 pixels is over twice the lowered limit: Pillow's decompression-bomb error.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    queue.add_paths([big])
    assert queue.wait_for_thumbnails(10_000)
    item = queue.items()[0]
    assert item.status == "error"
    assert "too large" in (item.error or "")


def test_duplicates_and_non_images_are_skipped_with_a_notice(
    qtbot, queue: ImageQueue, photos: Path
) -> None:
    queue.add_paths([photos / "shapes_320x240.png"])
    with qtbot.waitSignal(queue.notice) as notice:
        added = queue.add_paths([photos / "shapes_320x240.png", photos / "notes.txt"])
    assert added == 0
    assert "already in the queue" in notice.args[0]
    assert "notes.txt" in notice.args[0]
    assert len(queue.items()) == 1
    queue.wait_for_thumbnails(10_000)


def test_pasted_image_is_saved_in_the_cache_and_queued(queue: ImageQueue, tmp_path: Path):
    image = QImage(40, 30, QImage.Format.Format_RGB32)
    image.fill(QColor("orange"))
    queue.add_pasted(image)
    queue.wait_for_thumbnails(10_000)
    item = queue.current()
    assert item is not None
    assert item.path.parent == tmp_path / "cache" / "pasted"
    assert item.path.suffix == ".png"
    assert item.size == (40, 30)


def test_two_pastes_in_one_second_get_different_files(tmp_path: Path) -> None:
    image = QImage(8, 8, QImage.Format.Format_RGB32)
    image.fill(QColor("blue"))
    first = save_pasted_image(image, tmp_path)
    second = save_pasted_image(image, tmp_path)
    assert first != second and first.exists() and second.exists()


def test_delete_key_removes_selected(qtbot, queue: ImageQueue, photos: Path) -> None:
    queue.add_paths([photos / name for name in FIXTURE_NAMES])
    queue.wait_for_thumbnails(10_000)
    queue.set_current(queue.items()[1].key)
    with qtbot.waitSignal(queue.items_changed):
        qtbot.keyClick(queue.list_widget, Qt.Key.Key_Delete)
    assert [item.name for item in queue.items()] == [FIXTURE_NAMES[0], FIXTURE_NAMES[2]]
    assert queue.current() is not None and queue.current().name == FIXTURE_NAMES[2]
    # A removed path can be added again.
    assert queue.add_paths([photos / FIXTURE_NAMES[1]]) == 1
    queue.wait_for_thumbnails(10_000)


def test_next_and_previous_move_through_the_list(qtbot, queue: ImageQueue, photos: Path):
    queue.add_paths([photos / name for name in FIXTURE_NAMES])
    queue.wait_for_thumbnails(10_000)
    assert queue.current().name == FIXTURE_NAMES[0]
    with qtbot.waitSignal(queue.current_changed) as changed:
        queue.select_next()
    assert changed.args[0].name == FIXTURE_NAMES[1]
    queue.select_next()
    queue.select_next()  # stays on the last
    assert queue.current().name == FIXTURE_NAMES[2]
    queue.select_previous()
    assert queue.current().name == FIXTURE_NAMES[1]


def test_set_status_updates_the_row(qtbot, queue: ImageQueue, photos: Path) -> None:
    queue.add_paths([photos / "shapes_320x240.png"])
    queue.wait_for_thumbnails(10_000)
    key = queue.items()[0].key
    with qtbot.waitSignal(queue.items_changed):
        queue.set_status(key, "done", "3 objects")
    assert "Done · 3 objects" in queue.list_widget.item(0).text()
    queue.set_status(key, "error", "The model failed.")
    assert queue.item(key).error == "The model failed."
    assert queue.runnable_items() == []
    with pytest.raises(ValueError):
        queue.set_status(key, "bogus")


def test_clear_while_loading_drops_everything(queue: ImageQueue, photos: Path) -> None:
    queue.add_paths([photos])
    queue.clear()
    queue.wait_for_thumbnails(10_000)
    assert queue.items() == [] and queue.current() is None


def test_add_buttons_use_the_dialogs(
    queue: ImageQueue, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queue, "_ask_for_files", lambda: [photos / "noise_97x150.png"])
    monkeypatch.setattr(queue, "_ask_for_folder", lambda: photos / "sub")
    queue.ask_add_files()
    queue.ask_add_folder()
    queue.wait_for_thumbnails(10_000)
    assert [item.name for item in queue.items()] == ["noise_97x150.png", "again.png"]


def test_paths_from_mime_keeps_local_files_only(tmp_path: Path) -> None:
    mime = QMimeData()
    mime.setUrls(
        [
            QUrl.fromLocalFile(str(tmp_path / "a.png")),
            QUrl("https://example.com/b.png"),
            QUrl.fromLocalFile(str(tmp_path / "folder")),
        ]
    )
    assert paths_from_mime(mime) == [tmp_path / "a.png", tmp_path / "folder"]
    assert paths_from_mime(QMimeData()) == []
