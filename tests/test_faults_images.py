"""Fault injection against image inputs: phone photos with an EXIF orientation, very
large photos, and paths that are not image files at all (issue 10)."""

from __future__ import annotations

import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.engine.image_input import open_image, prepare_image
from app.errors import ImageError
from conftest import IMAGES

SOURCE = IMAGES / "shapes_320x240.png"
ORIENTATION = 0x0112


def _with_orientation(tmp_path: Path, suffix: str, orientation: int) -> tuple[Path, Image.Image]:
    """A file storing the fixture turned so that ``orientation`` shows it upright again;
    returns (file, the upright image a viewer would show)."""
    upright = Image.open(SOURCE).convert("RGB")
    # Orientation 6: the viewer turns the stored pixels 90° clockwise to show them.
    stored = upright.transpose(Image.Transpose.ROTATE_90) if orientation == 6 else upright
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    path = tmp_path / f"phone{suffix}"
    options = {"quality": 100, "subsampling": 0} if suffix == ".jpg" else {}
    stored.save(path, exif=exif, **options)
    return path, upright


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_orientation_is_applied_for_the_model(tmp_path: Path, suffix: str) -> None:
    path, upright = _with_orientation(tmp_path, suffix, 6)
    assert Image.open(path).size == (240, 320)  # stored on its side
    image = open_image(path)
    assert image.size == (320, 240)
    difference = np.abs(np.asarray(image, np.int16) - np.asarray(upright, np.int16))
    assert difference.mean() < 2  # the same picture (JPEG rounding aside)
    prepared = prepare_image(path, 224)
    assert prepared.original_size == (320, 240)  # boxes map onto the upright image
    assert prepared.digest == prepare_image(upright, 224).digest or suffix == ".jpg"


def test_boxes_come_back_on_the_upright_image(tmp_path: Path, converted) -> None:
    from app.engine.engine import Engine
    from app.model_files.model_folder import ModelFolder
    from app.tasks import TaskKind, TaskRequest
    from app.tasks.task_runner import TaskResult, run_task

    path, _ = _with_orientation(tmp_path, ".png", 6)
    engine = Engine()
    engine.load(ModelFolder(converted("pg2-tiny-224")).resolve("F16"))
    try:
        request = TaskRequest(kind=TaskKind.DETECT, classes=["cat"])
        results = [e for e in run_task(engine, path, request) if isinstance(e, TaskResult)]
    finally:
        engine.close()
    assert results[0].result.image_size == (320, 240)
    for obj in results[0].objects:
        x0, y0, x1, y1 = obj.box
        assert 0 <= x0 <= x1 <= 320 and 0 <= y0 <= y1 <= 240


def test_thumbnails_and_the_view_show_the_photo_upright(qtbot, tmp_path: Path) -> None:
    from app.ui.image_queue import ImageQueue
    from app.ui.image_view import ImageView

    path, _ = _with_orientation(tmp_path, ".jpg", 6)
    queue = ImageQueue(cache_dir=tmp_path / "cache")
    qtbot.addWidget(queue)
    try:
        queue.add_paths([path])
        assert queue.wait_for_thumbnails(10_000)
        assert queue.items()[0].size == (320, 240)
    finally:
        queue.shutdown()
    view = ImageView()
    qtbot.addWidget(view)
    view.show_image(path)
    assert view.scene().sceneRect().size().toSize().toTuple() == (320, 240)


# --- large photos ---------------------------------------------------------------------------


def test_a_108_megapixel_photo_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "phone-108mp.jpg"
    Image.new("RGB", (12000, 9000), (180, 40, 40)).save(path, quality=60)
    prepared = prepare_image(path, 224)
    assert prepared.original_size == (12000, 9000)
    pixel = prepared.rgb[:3]
    assert abs(pixel[0] - 180) < 8 and abs(pixel[1] - 40) < 8


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that declares its size but holds no pixels (enough to be refused)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


@pytest.mark.parametrize("size", [(20000, 15000), (40000, 40000)])
def test_larger_than_250_megapixels_is_refused_in_words(tmp_path: Path,
                                                        size: tuple[int, int]) -> None:
    path = tmp_path / "huge.png"
    _png_header_only(path, *size)
    with pytest.raises(ImageError) as info:
        open_image(path)
    message = str(info.value)
    assert "up to 250 megapixels" in message
    assert f"{size[0] * size[1] // 1_000_000} megapixels" in message
    assert "decompression bomb" not in message.lower()


# --- paths that are not image files ---------------------------------------------------------


def test_a_named_pipe_called_photo_jpg_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []
    worker = threading.Thread(target=lambda: _capture(outcome, fifo), daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():  # it would wait for a writer forever: open one to free it
        with open(fifo, "wb"):
            pass
        worker.join(5)
        pytest.fail("opening a named pipe waited for a writer")
    assert isinstance(outcome[0], ImageError)
    assert "not a regular file" in str(outcome[0])


def _capture(outcome: list[BaseException], path: Path) -> None:
    try:
        open_image(path)
    except BaseException as exc:  # handed to the test
        outcome.append(exc)


def test_a_folder_given_as_an_image_is_called_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "holiday.jpg"
    folder.mkdir()
    with pytest.raises(ImageError, match="is a folder, not an image"):
        open_image(folder)


def test_a_symlink_loop_is_called_a_loop(tmp_path: Path) -> None:
    loop = tmp_path / "loop.jpg"
    loop.symlink_to(loop)
    with pytest.raises(ImageError, match="leads back to itself"):
        open_image(loop)
    dangling = tmp_path / "gone.jpg"
    dangling.symlink_to(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="link to a file that does not exist"):
        open_image(dangling)


def test_dropping_a_symlink_loop_says_what_it_is(tmp_path: Path) -> None:
    from app.ui.image_files import expand_paths

    loop = tmp_path / "loop.jpg"
    loop.symlink_to(loop)
    images, notes = expand_paths([loop])
    assert images == [] and notes == ["loop.jpg is a symbolic link that leads back to itself "
                                      "(a loop)."]


def test_an_unreadable_image_is_a_permission_problem_not_damage(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    path = tmp_path / "private.png"
    Image.new("RGB", (4, 4)).save(path)
    path.chmod(0)
    with pytest.raises(ImageError, match="not allowed to read"):
        open_image(path)
