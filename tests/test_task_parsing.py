"""Detection and segmentation output -> objects, finished and streamed."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from app.tasks import DetectedObject, IncrementalObjectParser, loc_to_box, parse_objects

SQUARE = (1023, 1023)  # grid value == pixel value (code / 1023 · side), so boxes read off the locs
DETECT_EXAMPLE = (
    "<loc0010><loc0020><loc0500><loc0600> cat ; <loc0100><loc0100><loc0900><loc0900> dog<eos>"
)
SEGS = "".join(f"<seg{code:03d}>" for code in range(0, 128, 8))  # 16 codes: 0, 8, ..., 120
SEG_CODES = tuple(range(0, 128, 8))


def _locs(*values: int) -> str:
    return "".join(f"<loc{value:04d}>" for value in values)


def _labels(objects: list[DetectedObject]) -> list[str]:
    return [found.label for found in objects]


def _stream(
    text: str, cuts: list[int], segmentation: bool, size: tuple[int, int] = (640, 480)
) -> list[DetectedObject]:
    """Feed ``text`` cut at ``cuts``, checking the reported objects add up."""
    parser = IncrementalObjectParser(size, segmentation)
    found: list[DetectedObject] = []
    for start, end in pairwise([0, *cuts, len(text)]):
        found.extend(parser.feed(text[start:end]))
    found.extend(parser.finish())
    assert found == parser.objects
    return found


# Finished output


def test_detection_example_gives_two_labelled_boxes() -> None:
    objects = parse_objects(DETECT_EXAMPLE, SQUARE, segmentation=False)
    assert objects == [
        DetectedObject("cat", (20.0, 10.0, 600.0, 500.0), (10, 20, 500, 600), None),
        DetectedObject("dog", (100.0, 100.0, 900.0, 900.0), (100, 100, 900, 900), None),
    ]


def test_boxes_map_back_to_a_non_square_image() -> None:
    # 640x480: x = v / 1023 * 640, y = v / 1023 * 480 (big_vision's decoding), by hand:
    # 20 / 1023 * 640 = 12.512..., 10 / 1023 * 480 = 4.692..., 600 -> 375.366, 500 -> 234.604.
    (cat, dog) = parse_objects(DETECT_EXAMPLE, (640, 480))
    assert cat.box == pytest.approx((12.512219, 4.692082, 375.366569, 234.604106))
    assert dog.box == pytest.approx((62.561095, 46.920821, 563.049853, 422.287390))
    assert cat.loc == (10, 20, 500, 600)


def test_a_full_frame_box_reaches_the_image_edge() -> None:
    for segmentation, tail in ((False, ""), (True, SEGS)):
        (whole,) = parse_objects(_locs(0, 0, 1023, 1023) + tail + " sky", (640, 480),
                                 segmentation=segmentation)
        assert whole.box == (0.0, 0.0, 640.0, 480.0)


def test_to_dict_is_json_ready_with_rounded_box() -> None:
    (cat, _) = parse_objects(DETECT_EXAMPLE, (640, 480))
    assert cat.to_dict() == {
        "label": "cat",
        "box": [12.51, 4.69, 375.37, 234.6],
        "loc": [10, 20, 500, 600],
        "seg_codes": None,
        "mask": None,
    }


def test_segmentation_object_carries_its_sixteen_codes() -> None:
    text = _locs(10, 20, 500, 600) + SEGS + " cat ; " + _locs(0, 0, 1023, 1023) + SEGS + " sky"
    (cat, sky) = parse_objects(text, SQUARE, segmentation=True)
    assert (cat.label, cat.seg_codes, cat.box) == ("cat", SEG_CODES, (20.0, 10.0, 600.0, 500.0))
    assert sky.label == "sky" and sky.to_dict()["seg_codes"] == list(SEG_CODES)


def test_multi_word_labels_survive() -> None:
    text = _locs(1, 2, 3, 4) + " traffic light ; " + _locs(5, 6, 7, 8) + " man in a red hat"
    assert _labels(parse_objects(text, SQUARE)) == ["traffic light", "man in a red hat"]


def test_special_tokens_and_stray_whitespace_are_stripped() -> None:
    text = (
        "<bos>  " + _locs(1, 2, 3, 4) + "  cat<pad>  ;" + _locs(5, 6, 7, 8) + "\tdog \n<eos><pad>"
    )
    assert _labels(parse_objects(text, SQUARE)) == ["cat", "dog"]


def test_text_after_eos_is_ignored() -> None:
    text = _locs(1, 2, 3, 4) + " cat<eos> ; " + _locs(5, 6, 7, 8) + " ghost"
    assert _labels(parse_objects(text, SQUARE)) == ["cat"]


def test_objects_without_separator_split_at_the_next_loc() -> None:
    text = _locs(1, 2, 3, 4) + " cat" + _locs(5, 6, 7, 8) + " dog"
    assert _labels(parse_objects(text, SQUARE)) == ["cat", "dog"]


def test_swapped_min_and_max_still_give_a_proper_box() -> None:
    (found,) = parse_objects(_locs(500, 600, 10, 20) + " cat", (640, 480))
    assert found.box == pytest.approx((12.512219, 4.692082, 375.366569, 234.604106))
    assert found.loc == (500, 600, 10, 20), "raw values are kept as written"


def test_boxes_are_clamped_to_the_image() -> None:
    assert loc_to_box((-50, -100, 1100, 2048), (100, 50)) == (0.0, 0.0, 100.0, 50.0)
    (found,) = parse_objects(_locs(1023, 1023, 1023, 1023) + " dot", (100, 50))
    assert found.box[2] <= 100 and found.box[3] <= 50


def test_empty_output_gives_no_objects() -> None:
    assert parse_objects("", SQUARE) == []
    assert parse_objects("<eos>", SQUARE) == []
    assert parse_objects("no objects here", SQUARE) == []


# Malformed and truncated output


def test_object_with_fewer_than_four_locs_is_skipped_but_the_next_kept() -> None:
    text = _locs(1, 2, 3) + " cat ; " + _locs(5, 6, 7, 8) + " dog"
    assert _labels(parse_objects(text, SQUARE)) == ["dog"]


def test_extra_locs_before_a_label_are_not_guessed() -> None:
    assert parse_objects(_locs(1, 2, 3, 4, 5) + " cat", SQUARE) == []


def test_box_without_label_is_dropped_and_next_object_kept() -> None:
    text = _locs(1, 2, 3, 4) + _locs(5, 6, 7, 8) + " dog ; " + _locs(1, 2, 3, 4) + " ; "
    objects = parse_objects(text, SQUARE)
    assert _labels(objects) == ["dog"] and objects[0].loc == (5, 6, 7, 8)


def test_loc_beyond_the_grid_is_skipped() -> None:
    text = _locs(1, 2, 1500, 4) + " cat ; " + _locs(5, 6, 7, 8) + " dog"
    assert _labels(parse_objects(text, SQUARE)) == ["dog"]


def test_malformed_loc_tokens_do_not_count_as_locs() -> None:
    assert parse_objects("<loc12><loc0002><loc0003><loc0004> cat", SQUARE) == []


def test_detection_ignores_stray_seg_codes() -> None:
    (found,) = parse_objects(_locs(1, 2, 3, 4) + "<seg001><seg002> cat", SQUARE)
    assert (found.label, found.seg_codes) == ("cat", None)


@pytest.mark.parametrize("count", [0, 15, 17])
def test_segment_objects_without_sixteen_codes_keep_their_box(count: int) -> None:
    segs = "".join(f"<seg{n:03d}>" for n in range(count))
    text = _locs(1, 2, 3, 4) + segs + " cat ; " + _locs(5, 6, 7, 8) + SEGS + " dog"
    cat, dog = parse_objects(text, SQUARE, segmentation=True)
    assert (cat.label, cat.box, cat.seg_codes) == ("cat", (2.0, 1.0, 4.0, 3.0), None)
    assert (dog.label, dog.seg_codes) == ("dog", SEG_CODES)


def test_segment_code_beyond_the_codebook_leaves_the_box_without_codes() -> None:
    bad = SEGS.replace("<seg120>", "<seg200>")
    text = _locs(1, 2, 3, 4) + bad + " cat ; " + _locs(5, 6, 7, 8) + SEGS + " dog"
    cat, dog = parse_objects(text, SQUARE, segmentation=True)
    assert (cat.label, cat.seg_codes, dog.seg_codes) == ("cat", None, SEG_CODES)


def test_seg_codes_before_the_box_is_complete_are_skipped() -> None:
    text = _locs(1, 2) + SEGS + _locs(3, 4) + " cat"
    assert parse_objects(text, SQUARE, segmentation=True) == []


@pytest.mark.parametrize(
    "tail", ["", _locs(1, 2, 3), "<loc00", "<lo", _locs(1, 2, 3, 4), _locs(1, 2, 3, 4) + " "]
)
def test_truncated_output_keeps_only_complete_objects(tail: str) -> None:
    text = _locs(10, 20, 30, 40) + " cat ; " + tail
    assert _labels(parse_objects(text, SQUARE)) == ["cat"]


def test_truncated_segmentation_keeps_only_complete_objects() -> None:
    text = _locs(1, 2, 3, 4) + SEGS + " cat ; " + _locs(5, 6, 7, 8) + SEGS[:40]
    assert _labels(parse_objects(text, SQUARE, segmentation=True)) == ["cat"]


def test_image_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        IncrementalObjectParser((0, 480))


# Streaming


def test_object_is_reported_once_its_label_has_ended() -> None:
    parser = IncrementalObjectParser(SQUARE)
    assert parser.feed(_locs(1, 2, 3, 4) + " traffic") == []
    assert parser.feed(" light") == []
    assert _labels(parser.feed(" ;")) == ["traffic light"]
    assert parser.feed(_locs(5, 6, 7, 8) + " dog") == []
    assert _labels(parser.feed(_locs(9))) == ["dog"], "the next loc ends the label"
    assert parser.feed(_locs(10, 11, 12) + " bird") == []
    assert _labels(parser.feed("<eos>")) == ["bird"]
    assert parser.finish() == []
    assert _labels(parser.objects) == ["traffic light", "dog", "bird"]


def test_finish_completes_the_last_object() -> None:
    parser = IncrementalObjectParser(SQUARE)
    assert parser.feed(_locs(1, 2, 3, 4) + " cat") == []
    assert _labels(parser.finish()) == ["cat"]
    assert parser.feed(" ; " + _locs(5, 6, 7, 8) + " dog ;") == [], "nothing after finish"
    assert _labels(parser.objects) == ["cat"]


def test_token_split_across_pieces_is_still_a_token() -> None:
    parser = IncrementalObjectParser(SQUARE)
    for piece in ["<lo", "c0001><loc00", "02><l", "oc0003><loc0004", "> cat<e", "os>"]:
        parser.feed(piece)
    assert parser.objects == parse_objects(_locs(1, 2, 3, 4) + " cat", SQUARE)


def test_unfinished_token_at_the_end_becomes_label_text() -> None:
    text = _locs(1, 2, 3, 4) + " cat<lo"
    assert _labels(parse_objects(text, SQUARE)) == ["cat<lo"]
    assert _labels(_stream(text, [len(text) - 1], segmentation=False)) == ["cat<lo"]


SAMPLES = [
    (DETECT_EXAMPLE, False),
    (_locs(1, 2, 3, 4) + SEGS + " cat ; " + _locs(500, 400, 30, 20) + SEGS + " red car", True),
    ("<bos>" + _locs(1, 2, 3) + " x ; " + _locs(1, 2, 3, 4) + "<pad> stop sign ; <loc99", False),
    (_locs(5, 6, 7, 8) + "<seg001> a ; ; " + _locs(9, 9, 9, 9) + "<loc2000> b <eos> c", False),
    (_locs(1, 2, 3, 4) + SEGS[:48] + " part ; " + _locs(1, 2, 3, 4) + SEGS + " whole", True),
]


@pytest.mark.parametrize(("text", "segmentation"), SAMPLES)
def test_streaming_matches_finished_parse_at_any_split(text: str, segmentation: bool) -> None:
    expected = parse_objects(text, (640, 480), segmentation)
    rng = random.Random(1234)
    assert _stream(text, list(range(1, len(text))), segmentation) == expected  # char by char
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, 12)))
        assert _stream(text, cuts, segmentation) == expected


def test_samples_hold_the_objects_a_user_expects() -> None:
    # Guards the streaming test above against passing on empty results.
    found = [_labels(parse_objects(text, SQUARE, seg)) for text, seg in SAMPLES]
    # "part" has 12 mask codes: it keeps its box, without codes.
    assert found == [["cat", "dog"], ["cat", "red car"], ["stop sign"], ["a"],
                     ["part", "whole"]]


FRAGMENTS = [
    "<loc0001>", "<loc1023>", "<loc1024>", "<loc9999>", "<loc12>", "<seg000>", "<seg127>",
    "<seg128>", "<eos>", "<pad>", "<bos>", "<", ">", "<lo", "c0", "<se", "g01", ";", " ; ",
    " ", "\n", "cat", "traffic light", "٠١٢٣", "²", "<loc٠١٢٣>", "é", "\x00", "<unk>",
]  # fmt: skip


def _random_output(rng: random.Random) -> str:
    """Well-formed objects (with or without seg codes) mixed with broken fragments."""
    parts = []
    for _ in range(rng.randint(0, 30)):
        if rng.random() < 0.2:
            locs = _locs(*(rng.randint(0, 1023) for _ in range(4)))
            parts.append(locs + rng.choice(["", SEGS]) + " " + rng.choice(["cat", "a b"]))
        else:
            parts.append(rng.choice(FRAGMENTS))
    return "".join(parts)


def test_fuzzed_output_never_raises_and_streams_identically() -> None:
    rng = random.Random(20240601)
    total = 0
    for _ in range(2000):
        text = _random_output(rng)
        segmentation = rng.random() < 0.5
        size = (rng.randint(1, 5000), rng.randint(1, 5000))
        objects = parse_objects(text, size, segmentation)
        total += len(objects)
        for found in objects:
            left, top, right, bottom = found.box
            assert 0 <= left <= right <= size[0] and 0 <= top <= bottom <= size[1]
            assert found.label == found.label.strip() and found.label
            assert all(0 <= value <= 1023 for value in found.loc)
            assert segmentation or found.seg_codes is None
        cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, 5))) if text else []
        assert _stream(text, cuts, segmentation, size) == objects
    assert total > 50, "the fuzz should also produce well-formed objects"


def test_random_characters_never_raise() -> None:
    rng = random.Random(7)
    alphabet = "<>;locsegpadbo0123456789 \n\t\x00é漢"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        parse_objects(text, (rng.randint(1, 100), rng.randint(1, 100)), rng.random() < 0.5)


def test_long_stream_is_fed_token_by_token_quickly() -> None:
    # A 2000-object answer streamed one token at a time must not re-parse the whole buffer.
    tokens = []
    for n in range(2000):
        tokens += [f"<loc{(n * 7 + k) % 1024:04d}>" for k in range(4)] + [f" obj{n}", " ;"]
    parser = IncrementalObjectParser(SQUARE)
    for token in tokens:
        parser.feed(token)
    parser.finish()
    assert len(parser.objects) == 2000 and parser.objects[-1].label == "obj1999"
