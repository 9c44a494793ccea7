"""The numpy mask decoder against a torch reference, and pasting masks into images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mask_weights import random_decoder_weights, weights_digest, write_random_decoder
from PIL import Image

from app.errors import MaskDecoderError
from app.tasks import masks
from app.tasks.masks import decode_masks, paste_mask, pixel_box

REFERENCE = Path(__file__).parent / "fixtures" / "masks" / "reference.npz"


def test_decoder_matches_torch_reference_to_1e_5(mask_decoder_weights: Path) -> None:
    reference = np.load(REFERENCE)
    # The weights are regenerated from a seed: prove they are the ones the reference used.
    assert weights_digest(random_decoder_weights()) == str(reference["weights_sha256"])
    maps = decode_masks(mask_decoder_weights, reference["codes"])
    assert maps.dtype == np.float32 and maps.shape == (5, 64, 64)
    assert np.abs(maps - reference["maps"]).max() <= 1e-5
    # Non-trivial maps: both sides of the threshold occur, so the check means something.
    assert 0.1 < (reference["maps"] > 0).mean() < 0.9


def test_one_object_decodes_like_it_does_in_a_batch(mask_decoder_weights: Path) -> None:
    codes = np.load(REFERENCE)["codes"]
    batch = decode_masks(mask_decoder_weights, codes)
    alone = decode_masks(mask_decoder_weights, codes[2:3])
    assert np.abs(batch[2] - alone[0]).max() <= 1e-6
    assert decode_masks(mask_decoder_weights, np.zeros((0, 16), dtype=int)).shape == (0, 64, 64)


def test_weights_are_read_once_and_again_when_the_file_changes(
    mask_decoder_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Path] = []
    original = masks.read_decoder_weights
    monkeypatch.setattr(masks, "read_decoder_weights",
                        lambda path: reads.append(Path(path)) or original(path))
    copy = tmp_path / "vae-oid.npz"
    copy.write_bytes(mask_decoder_weights.read_bytes())
    codes = np.arange(16).reshape(1, 16)
    first = decode_masks(copy, codes)
    decode_masks(copy, codes)
    assert len(reads) == 1
    write_random_decoder(copy, seed=1)  # another decoder under the same name
    second = decode_masks(copy, codes)
    assert len(reads) == 2 and not np.allclose(first, second)


@pytest.mark.parametrize("codes, message", [
    (np.zeros((2, 15), dtype=int), "shape"),
    (np.zeros(16, dtype=int), "shape"),
    (np.full((1, 16), 128), "0..127"),
    (np.full((1, 16), -1), "0..127"),
    (np.zeros((1, 16), dtype=float), "integers"),
])
def test_bad_codes_are_refused_in_words(mask_decoder_weights: Path, codes: np.ndarray,
                                        message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_masks(mask_decoder_weights, codes)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    np.savez(path, **arrays)
    return path


def test_files_that_are_not_a_decoder_are_refused_in_words(tmp_path: Path) -> None:
    good = random_decoder_weights(dim=8)
    text = tmp_path / "notes.npz"
    text.write_text("not a zip")
    cases = {
        text: "not a readable .npz",
        tmp_path / "missing.npz": "does not exist",
        _write_npz(tmp_path / "no-codebook.npz",
                   {k: v for k, v in good.items() if k != "_vq_vae._embedding"}): "codebook",
        _write_npz(tmp_path / "no-conv.npz",
                   {k: v for k, v in good.items() if k != "decoder.8.weight"}):
            "decoder.8.weight is missing",
        _write_npz(tmp_path / "bad-shape.npz",
                   {**good, "decoder.12.weight": np.zeros((1, 8, 1, 1), np.float32)}):
            r"decoder.12.weight has shape \(1, 8, 1, 1\)",
        _write_npz(tmp_path / "pickled.npz",
                   {**good, "decoder.0.bias": np.array([object()] * 128)}): "not a readable",
    }
    for path, message in cases.items():
        with pytest.raises(MaskDecoderError, match=message):
            decode_masks(path, np.zeros((1, 16), dtype=int))


def test_embedding_width_is_read_from_the_file(tmp_path: Path) -> None:
    path = write_random_decoder(tmp_path / "narrow.npz", dim=24)
    assert decode_masks(path, np.ones((3, 16), dtype=int)).shape == (3, 64, 64)


# --- paste --------------------------------------------------------------------------------


def pil_paste(mask64: np.ndarray, box: tuple[int, int, int, int],
              size: tuple[int, int]) -> np.ndarray:
    """big_vision's evaluator, written out plainly: resize, threshold, place."""
    y1, x1, y2, x2 = box
    width, height = size
    full = np.zeros((height, width), dtype=bool)
    if x2 <= x1 or y2 <= y1:
        return full
    resized = Image.fromarray(mask64.astype(np.float32)).resize(
        [x2 - x1, y2 - y1], resample=Image.BILINEAR)
    full[y1:y2, x1:x2] = np.asarray(resized) > 0.0
    return full


@pytest.mark.parametrize("box, size", [
    ((10, 20, 11, 21), (64, 48)),  # one pixel
    ((0, 0, 48, 64), (64, 48)),  # the whole image, every edge touched
    ((30, 50, 48, 64), (64, 48)),  # bottom-right corner
    ((0, 5, 3, 60), (64, 48)),  # flat and wide at the top edge
    ((2, 63, 47, 64), (64, 48)),  # one column at the right edge
    ((5, 7, 205, 19), (40, 300)),  # tall and thin, taller than 64
    ((100, 100, 100, 150), (200, 200)),  # empty (no height)
    ((80, 90, 70, 120), (200, 200)),  # inverted: empty too, as in big_vision
])
def test_paste_matches_a_plain_pil_implementation(
    mask_decoder_weights: Path, box: tuple[int, int, int, int], size: tuple[int, int]
) -> None:
    map64 = decode_masks(mask_decoder_weights, np.load(REFERENCE)["codes"][3:4])[0]
    pasted = paste_mask(map64, box, size)
    assert pasted.dtype == bool and pasted.shape == (size[1], size[0])
    assert np.array_equal(pasted, pil_paste(map64, box, size))
    y1, x1, y2, x2 = box
    outside = pasted.copy()
    outside[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = False
    assert not outside.any()  # nothing lands outside the box


def test_paste_cuts_a_box_that_reaches_past_the_image() -> None:
    map64 = np.ones((64, 64), dtype=np.float32)
    pasted = paste_mask(map64, (-5, 50, 20, 80), (60, 30))
    assert pasted[:20, 50:].all() and pasted.sum() == 20 * 10


def test_full_frame_codes_reach_the_image_edge() -> None:
    assert pixel_box((0, 0, 1023, 1023), (640, 480)) == (0, 0, 480, 640)
    full = paste_mask(np.ones((64, 64), np.float32), pixel_box((0, 0, 1023, 1023), (640, 480)),
                      (640, 480))
    assert full.all()
