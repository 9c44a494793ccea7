"""Segment masks through run_task: decoded per object as the stream goes, in --json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco_mask
from scripted_engine import ScriptedEngine

from app.errors import MaskDecoderError
from app.tasks.masks import decode_masks, paste_mask, pixel_box
from app.tasks.prompts import TaskKind, TaskRequest
from app.tasks.task_runner import ObjectEvent, TaskResult, run_task

IMAGE = Path(__file__).parent / "fixtures" / "images" / "shapes_320x240.png"
SIZE = (320, 240)
CODES_A = (5, 17, 99, 3, 64, 127, 0, 45, 81, 12, 33, 76, 120, 8, 59, 101)
CODES_B = tuple(range(100, 116))


def locs(*values: int) -> str:
    return "".join(f"<loc{v:04d}>" for v in values)


def segs(codes) -> str:
    return "".join(f"<seg{c:03d}>" for c in codes)


# Two complete objects, then one whose codes stop after ten (it keeps its box).
TEXT = (locs(100, 50, 700, 600) + segs(CODES_A) + " cat ; "
        + locs(0, 0, 1023, 1023) + segs(CODES_B) + " sky ; "
        + locs(300, 300, 900, 1000) + segs(CODES_A[:10]) + " dog<eos>")
SEGMENT = TaskRequest(kind=TaskKind.SEGMENT, classes=("cat", "sky", "dog"))


def _run(engine: ScriptedEngine, request: TaskRequest = SEGMENT, decoder: Path | None = None):
    return list(run_task(engine, str(IMAGE), request, mask_decoder=decoder))  # type: ignore[arg-type]


def test_each_complete_object_gets_its_decoded_mask(mask_decoder_weights: Path) -> None:
    events = _run(ScriptedEngine(TEXT), decoder=mask_decoder_weights)
    objects = [e.obj for e in events if isinstance(e, ObjectEvent)]
    result = events[-1]
    assert isinstance(result, TaskResult) and result.objects == objects
    cat, sky, dog = objects
    for obj, codes in ((cat, CODES_A), (sky, CODES_B)):
        expected = paste_mask(decode_masks(mask_decoder_weights, np.array([codes]))[0],
                              pixel_box(obj.loc, SIZE), SIZE)
        assert obj.mask is not None and np.array_equal(obj.mask.to_array(), expected)
        assert 0 < obj.mask.area < SIZE[0] * SIZE[1]  # a real shape, not all or nothing
    # The cat's mask stays inside its box (big_vision pixels: int(code / 1023 * side)).
    y1, x1, y2, x2 = pixel_box(cat.loc, SIZE)
    inside = np.zeros((240, 320), bool)
    inside[y1:y2, x1:x2] = True
    assert not (cat.mask.to_array() & ~inside).any()  # type: ignore[union-attr]
    assert (dog.label, dog.seg_codes, dog.mask) == ("dog", None, None)
    assert dog.box == pytest.approx((300 / 1023 * 320, 300 / 1023 * 240,
                                     1000 / 1023 * 320, 900 / 1023 * 240))


def test_masks_arrive_while_the_answer_still_streams(mask_decoder_weights: Path) -> None:
    engine = ScriptedEngine(TEXT)
    events = run_task(engine, str(IMAGE), SEGMENT, mask_decoder=mask_decoder_weights)  # type: ignore[arg-type]
    first = next((event for event in events if isinstance(event, ObjectEvent)), None)
    events.close()  # stop the run here: the rest of the answer is not needed
    assert first is not None, "no object arrived during the stream"
    assert first.obj.label == "cat" and first.obj.mask is not None
    assert len("".join(engine.seen)) < len(TEXT) / 2  # long before the end


def test_json_gives_coco_rle_or_null(mask_decoder_weights: Path) -> None:
    result = _run(ScriptedEngine(TEXT), decoder=mask_decoder_weights)[-1]
    record = json.loads(json.dumps(result.to_json()))
    cat, sky, dog = record["objects"]
    assert dog["mask"] is None
    for obj, found in ((cat, result.objects[0]), (sky, result.objects[1])):
        assert obj["mask"]["size"] == [240, 320]
        decoded = coco_mask.decode({"size": obj["mask"]["size"],
                                    "counts": obj["mask"]["counts"].encode()})
        assert np.array_equal(decoded.astype(bool), found.mask.to_array())


def test_without_a_decoder_segment_keeps_boxes_only() -> None:
    objects = _run(ScriptedEngine(TEXT))[-1].objects
    assert [o.label for o in objects] == ["cat", "sky", "dog"]
    assert all(o.mask is None for o in objects) and objects[0].seg_codes == CODES_A


def test_detect_ignores_the_decoder(tmp_path: Path) -> None:
    text = locs(100, 50, 700, 600) + " cat<eos>"
    request = TaskRequest(kind=TaskKind.DETECT, classes=("cat",))
    (cat,) = _run(ScriptedEngine(text), request, decoder=tmp_path / "absent.npz")[-1].objects
    assert cat.mask is None


def test_a_bad_decoder_file_stops_before_generation(tmp_path: Path) -> None:
    bad = tmp_path / "vae-oid.npz"
    bad.write_bytes(b"PK\x03\x04 broken")
    engine = ScriptedEngine(TEXT)
    with pytest.raises(MaskDecoderError, match="not a mask decoder"):
        _run(engine, decoder=bad)
    assert engine.seen == []
