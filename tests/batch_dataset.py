"""A small labelling dataset for the batch tests: nested folders, distinct images,
byte-identical duplicates, broken files and files that are not images at all."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import IMAGES


def make_dataset(root: Path, distinct: int = 6) -> dict[str, list[Path]]:
    """Write the dataset under ``root``; returns the paths by role."""
    good: list[Path] = []
    rng = np.random.default_rng(7)
    for index in range(distinct):
        folder = root / ("a" if index % 2 else "b") / ("deep" if index % 3 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        size = (40 + 7 * index, 30 + 5 * index)
        pixels = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
        path = folder / f"img{index:02d}.{'png' if index % 2 else 'jpg'}"
        Image.fromarray(pixels).save(path)
        good.append(path)
    fixture = root / "b" / "shapes.png"
    shutil.copy(IMAGES / "shapes_320x240.png", fixture)
    good.append(fixture)
    duplicates = [root / "a" / "copy_of_shapes.PNG", root / "a" / "deep" / "img00-again.jpg"]
    duplicates[1].parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(fixture, duplicates[0])
    shutil.copy(good[0], duplicates[1])
    bad = [root / "b" / "not_really.jpg", root / "a" / "truncated.png", root / "empty.webp"]
    bad[0].write_bytes(b"this is text, not a JPEG")
    bad[1].write_bytes(fixture.read_bytes()[:300])
    bad[2].write_bytes(b"")
    ignored = [root / "notes.txt", root / ".hidden.jpg", root / ".cache" / "x.png"]
    ignored[0].write_text("not an image and not listed\n")
    ignored[1].write_bytes(fixture.read_bytes())
    ignored[2].parent.mkdir()
    ignored[2].write_bytes(fixture.read_bytes())
    return {"good": good, "duplicates": duplicates, "bad": bad, "ignored": ignored}


def without_timings(record: dict) -> dict:
    """A record minus what legitimately differs between two runs of the same work."""
    return {key: value for key, value in record.items() if key != "timings"}
