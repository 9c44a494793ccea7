"""Masks in exports: COCO RLE read back by pycocotools, PNGs re-read, YOLO-seg polygons."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from app.export import export_coco, export_mask_pngs, export_yolo_seg
from app.export.mask_polygons import mask_polygons
from app.history.history_record import HistoryRecord
from app.tasks.mask_rle import ObjectMask
from app.tasks.parsing import DetectedObject

WIDTH, HEIGHT = 160, 90


def _disc(cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def _masked(label: str, mask: np.ndarray) -> DetectedObject:
    ys, xs = np.nonzero(mask)
    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    return DetectedObject(label, box, (0, 0, 1, 1), tuple(range(16)), ObjectMask.from_array(mask))


CAT_MASK = _disc(40, 40, 25) | _disc(70, 45, 10)  # overlaps the dog below
DOG_MASK = _disc(75, 50, 15)
RING = _disc(120, 45, 30) & ~_disc(120, 45, 12)  # a hole: the outline has two rings
CAT, DOG, RING_OBJ = _masked("cat", CAT_MASK), _masked("dog", DOG_MASK), _masked("ring", RING)
BOX_ONLY = DetectedObject("bird", (10.0, 5.0, 30.0, 20.0), (57, 64, 228, 194), None)


def _record(path: str, objects: list[DetectedObject], task: str = "segment") -> HistoryRecord:
    return HistoryRecord(image_path=path, image_sha256="00" * 32, image_width=WIDTH,
                         image_height=HEIGHT, task=task, prompt=f"{task} cat", model="m",
                         quantization="Q4_K_M", text="", objects=objects,
                         created="2025-01-01T10:00:00+00:00")


RECORDS = [_record("/data/a/one.jpg", [CAT, DOG, BOX_ONLY]),
           _record("/data/b/one.png", [RING_OBJ])]


def test_coco_export_is_read_by_pycocotools_with_exact_masks(tmp_path: Path) -> None:
    target = tmp_path / "coco.json"
    export_coco(RECORDS, target)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco = COCO(str(target))
    anns = coco.loadAnns(coco.getAnnIds())
    by_label = {coco.loadCats(a["category_id"])[0]["name"]: a for a in anns}
    for label, mask in (("cat", CAT_MASK), ("dog", DOG_MASK), ("ring", RING)):
        ann = by_label[label]
        assert np.array_equal(coco.annToMask(ann).astype(bool), mask)
        assert ann["area"] == int(mask.sum())
    bird = by_label["bird"]
    assert "segmentation" not in bird and bird["area"] == 20 * 15


def test_coco_masks_score_perfectly_against_themselves(tmp_path: Path) -> None:
    target = tmp_path / "coco.json"
    export_coco([_record("/data/a/one.jpg", [CAT, DOG])], target)
    data = json.loads(target.read_text())
    results = [{"image_id": a["image_id"], "category_id": a["category_id"],
                "segmentation": a["segmentation"], "score": 1.0} for a in data["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(target))
        evaluation = COCOeval(truth, truth.loadRes(results), iouType="segm")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)  # segm AP@[.5:.95]


def test_png_masks_reread_equal_to_the_masks(tmp_path: Path) -> None:
    summary = export_mask_pngs(RECORDS, tmp_path / "masks")
    names = sorted(p.name for p in summary.written)
    # Two images named one.*: their stems get a hash of the path to stay apart.
    assert names == ["masks.json", "one-05e624cb-01-cat.png", "one-05e624cb-02-dog.png",
                     "one-d3629045-01-ring.png"]
    index = json.loads((tmp_path / "masks" / "masks.json").read_text())
    assert [entry["label"] for entry in index] == ["cat", "dog", "ring"]  # no bird: no mask
    for entry, mask in zip(index, (CAT_MASK, DOG_MASK, RING), strict=True):
        with Image.open(tmp_path / "masks" / entry["file"]) as png:
            assert png.mode == "L" and png.size == (WIDTH, HEIGHT)
            pixels = np.asarray(png)
        assert set(np.unique(pixels)) <= {0, 255}
        assert np.array_equal(pixels == 255, mask)  # overlaps kept: one file per object
        assert entry["area"] == int(mask.sum())


def _rasterize(values: list[float]) -> np.ndarray:
    points = [(x * WIDTH, y * HEIGHT) for x, y in zip(values[::2], values[1::2], strict=True)]
    canvas = Image.new("L", (WIDTH, HEIGHT))
    ImageDraw.Draw(canvas).polygon(points, fill=255)
    return np.asarray(canvas) == 255


def test_yolo_seg_polygons_outline_the_masks(tmp_path: Path) -> None:
    export_yolo_seg(RECORDS, tmp_path / "yolo")
    classes = (tmp_path / "yolo" / "classes.txt").read_text().split()
    assert classes == ["cat", "dog", "bird", "ring"]
    files = sorted((tmp_path / "yolo").glob("one*.txt"))
    lines = [line.split() for f in files for line in f.read_text().splitlines()]
    assert len(lines) == 4
    shapes = {"cat": CAT_MASK, "dog": DOG_MASK}
    for parts in lines:
        label = classes[int(parts[0])]
        values = [float(v) for v in parts[1:]]
        assert len(values) % 2 == 0 and all(0.0 <= v <= 1.0 for v in values)
        if label == "bird":  # no mask: its box's four corners
            assert values == pytest.approx([10 / 160, 5 / 90, 30 / 160, 5 / 90, 30 / 160,
                                            20 / 90, 10 / 160, 20 / 90], abs=1e-6)
        elif label in shapes:
            drawn, mask = _rasterize(values), shapes[label]
            assert (drawn & mask).sum() / (drawn | mask).sum() > 0.9
        else:  # the ring: its outer outline (YOLO-seg has one polygon per object)
            outer = _disc(120, 45, 30)
            drawn = _rasterize(values)
            assert (drawn & outer).sum() / (drawn | outer).sum() > 0.9


def test_polygons_of_odd_masks() -> None:
    single = np.zeros((5, 5), bool)
    single[0, 4] = True  # one pixel in a corner
    (polygon,) = mask_polygons(single)
    assert polygon[:, 0].min() >= 4 and polygon[:, 0].max() <= 5
    assert polygon[:, 1].min() >= 0 and polygon[:, 1].max() <= 1
    assert mask_polygons(np.zeros((3, 3), bool)) == []
    full = mask_polygons(np.ones((4, 6), bool))
    assert len(full) == 1 and full[0][:, 0].max() == 6 and full[0][:, 1].max() == 4


def test_history_keeps_masks(tmp_path: Path) -> None:
    from app.history import HistoryStore

    store = HistoryStore(tmp_path / "history.sqlite3")
    record_id = store.add(RECORDS[0])
    loaded = store.get(record_id)
    assert loaded is not None and loaded.objects == RECORDS[0].objects
    assert np.array_equal(loaded.objects[0].mask.to_array(), CAT_MASK)  # type: ignore[union-attr]
    assert loaded.objects[2].mask is None  # the bird: box only
    store.close()
