"""Masks as COCO compressed RLE: what --json, the history and the exports carry."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from app.history.history_record import object_from_dict
from app.tasks.mask_rle import ObjectMask
from app.tasks.object_masks import mask_area
from app.tasks.parsing import DetectedObject


def _blob(height: int = 37, width: int = 53) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    return ((yy - 15) ** 2 + (xx - 30) ** 2 < 120) | ((xx < 3) & (yy > 30))


def test_rle_round_trips_through_json_and_pycocotools() -> None:
    mask = _blob()
    data = json.loads(json.dumps(ObjectMask.from_array(mask).to_dict()))
    assert data["size"] == [37, 53] and isinstance(data["counts"], str)
    # Any COCO tool: pycocotools decodes the dict as it is (counts as bytes or str).
    decoded = coco_mask.decode({"size": data["size"], "counts": data["counts"].encode()})
    assert np.array_equal(decoded.astype(bool), mask)
    again = ObjectMask.from_dict(data)
    assert again is not None and np.array_equal(again.to_array(), mask)
    assert again.area == int(mask.sum())


def test_empty_and_full_masks_round_trip() -> None:
    for mask in (np.zeros((5, 7), bool), np.ones((5, 7), bool), np.zeros((1, 1), bool)):
        rle = ObjectMask.from_array(mask)
        assert np.array_equal(rle.to_array(), mask) and rle.area == mask.sum()


@pytest.mark.parametrize("bad", [{"size": [3]}, {"counts": "x"}, {"size": [2, 2], "counts": 5},
                                 "nope", {"size": [-1, 2], "counts": ""}])
def test_bad_rle_dicts_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        ObjectMask.from_dict(bad)  # type: ignore[arg-type]


def test_objects_with_masks_round_trip_through_their_dict() -> None:
    mask = ObjectMask.from_array(_blob())
    obj = DetectedObject("cat", (1.0, 2.0, 30.0, 20.0), (2, 1, 20, 30), tuple(range(16)), mask)
    data = json.loads(json.dumps(obj.to_dict()))
    assert data["mask"] == {"size": [37, 53], "counts": mask.counts}
    assert object_from_dict(data) == obj
    assert mask_area(obj) == int(_blob().sum())
    plain = DetectedObject("dog", (1.0, 2.0, 3.0, 4.0), (2, 1, 4, 3))
    assert plain.to_dict()["mask"] is None and object_from_dict(plain.to_dict()) == plain
    assert mask_area(plain) is None
    old = plain.to_dict()
    del old["mask"]  # records stored before masks existed
    assert object_from_dict(old) == plain
