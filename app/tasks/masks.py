"""big_vision's VQ-VAE mask decoder in numpy, and pasting its 64×64 maps into images.

PaliGemma writes 16 ``<segNNN>`` codes per object. big_vision turns them into a mask with
a small decoder (``vae-oid.npz``, PyTorch layout): codebook rows → 4×4×D grid → conv 1×1
+ ReLU → two residual blocks → four stride-2 transposed convolutions with ReLU → conv 1×1
→ a 64×64 map in about [-1, 1]. The map is resized bilinearly into the object's pixel box
and thresholded at > 0 (big_vision's segmentation evaluator).

Everything is NHWC float32 and vectorized: convolutions are one matrix product each
(im2col for 3×3, a scatter of the 16 kernel taps for the transposed ones), so decoding
costs a few milliseconds and needs neither JAX nor torch.
"""

from __future__ import annotations

import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from threadpoolctl import ThreadpoolController

from app.errors import MaskDecoderError

CODES_PER_MASK = 16
MASK_SIZE = 64
_GRID = 4  # the 16 codes form a 4×4 grid in raster order
_WIDTH = 128  # channels of the first conv and the residual blocks
_UPSAMPLE = ("decoder.4", "decoder.6", "decoder.8", "decoder.10")
_UPSAMPLE_OUT = (128, 64, 32, 16)
EMBEDDING_KEY = "_vq_vae._embedding"


def _conv_shapes(dim: int) -> dict[str, tuple[int, ...]]:
    """Every weight the decoder needs and its PyTorch shape, for an embedding width ``dim``."""
    shapes: dict[str, tuple[int, ...]] = {"decoder.0.weight": (_WIDTH, dim, 1, 1)}
    for block in ("decoder.2.net", "decoder.3.net"):
        shapes[f"{block}.0.weight"] = (_WIDTH, _WIDTH, 3, 3)
        shapes[f"{block}.2.weight"] = (_WIDTH, _WIDTH, 3, 3)
        shapes[f"{block}.4.weight"] = (_WIDTH, _WIDTH, 1, 1)
    channels = _WIDTH
    for name, out in zip(_UPSAMPLE, _UPSAMPLE_OUT, strict=True):
        shapes[f"{name}.weight"] = (channels, out, 4, 4)  # ConvTranspose2d: [in, out, kh, kw]
        channels = out
    shapes["decoder.12.weight"] = (1, channels, 1, 1)
    # Bias length: a conv's output channels (dim 0), a transposed conv's (dim 1).
    for name, shape in list(shapes.items()):
        out = shape[1] if name.removesuffix(".weight") in _UPSAMPLE else shape[0]
        shapes[name.replace(".weight", ".bias")] = (out,)
    return shapes


def read_decoder_weights(path: Path | str) -> dict[str, np.ndarray]:
    """Load and check a ``vae-oid.npz``-layout file; returns float32 arrays by key.

    Raises ``MaskDecoderError`` in plain words when the file is missing, not an npz, or
    lacks a tensor the decoder needs (or has one of the wrong shape).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except FileNotFoundError as exc:
        raise MaskDecoderError(f"The mask decoder file {path} does not exist.") from exc
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, TypeError) as exc:
        # TypeError: an .npy renamed .npz loads as a bare array, which is no archive.
        raise MaskDecoderError(
            f"{path.name} is not a mask decoder: it is not a readable .npz file "
            "(big_vision's vae-oid.npz is)."
        ) from exc
    embedding = arrays.get(EMBEDDING_KEY)
    if embedding is None or embedding.ndim != 2 or embedding.shape[0] < 128:
        raise MaskDecoderError(
            f"{path.name} is not big_vision's mask decoder: it has no {EMBEDDING_KEY} "
            "codebook of 128 rows."
        )
    for key, shape in _conv_shapes(int(embedding.shape[1])).items():
        if key not in arrays:
            raise MaskDecoderError(
                f"{path.name} is not big_vision's mask decoder: the tensor {key} is missing."
            )
        if arrays[key].shape != shape:
            raise MaskDecoderError(
                f"{path.name} is not big_vision's mask decoder: {key} has shape "
                f"{arrays[key].shape}, expected {shape}."
            )
    if not all(np.issubdtype(a.dtype, np.floating) and np.isfinite(a).all()
               for a in arrays.values()):
        raise MaskDecoderError(f"{path.name} holds non-numeric or non-finite weights.")
    return {key: np.ascontiguousarray(value, dtype=np.float32) for key, value in arrays.items()}


@dataclass(frozen=True)
class _Conv:
    """A convolution as one matrix: ``patches @ matrix + bias``."""

    matrix: np.ndarray
    bias: np.ndarray


class MaskDecoder:
    """The decoder with its weights laid out for matrix products (built once per file)."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.embedding = weights[EMBEDDING_KEY]

        def conv(name: str) -> _Conv:
            w = weights[f"{name}.weight"]  # [out, in, kh, kw]
            # Rows ordered (ky, kx, in) to match the im2col patches below.
            matrix = w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0])
            return _Conv(np.ascontiguousarray(matrix), weights[f"{name}.bias"])

        def transposed(name: str) -> _Conv:
            w = weights[f"{name}.weight"]  # [in, out, 4, 4]
            # Columns ordered (ky, kx, out): one product gives every tap's contribution.
            matrix = w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
            return _Conv(np.ascontiguousarray(matrix), weights[f"{name}.bias"])

        self.first = conv("decoder.0")
        self.blocks = [
            tuple(conv(f"{block}.{i}") for i in (0, 2, 4))
            for block in ("decoder.2.net", "decoder.3.net")
        ]
        self.upsample = [transposed(name) for name in _UPSAMPLE]
        self.last = conv("decoder.12")

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes int [N, 16] → float32 [N, 64, 64] maps (before thresholding)."""
        n = codes.shape[0]
        x = self.embedding[codes.reshape(-1)].reshape(n, _GRID, _GRID, -1)
        x = _relu(_pointwise(x, self.first))
        for conv_a, conv_b, conv_c in self.blocks:
            y = _relu(_conv3x3(x, conv_a))
            y = _relu(_conv3x3(y, conv_b))
            x = _pointwise(y, conv_c) + x  # no ReLU after the residual add
        for layer in self.upsample:
            x = _relu(_conv_transpose(x, layer))
        return _pointwise(x, self.last)[..., 0]


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0, out=x)


def _pointwise(x: np.ndarray, conv: _Conv) -> np.ndarray:
    return x @ conv.matrix + conv.bias


def _conv3x3(x: np.ndarray, conv: _Conv) -> np.ndarray:
    """3×3 convolution, padding 1, via im2col (the maps are at most 4×4 here)."""
    h, w = x.shape[1:3]
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    patches = np.concatenate(
        [padded[:, ky:ky + h, kx:kx + w, :] for ky in range(3) for kx in range(3)], axis=-1
    )
    return patches @ conv.matrix + conv.bias


def _conv_transpose(x: np.ndarray, conv: _Conv) -> np.ndarray:
    """PyTorch's ConvTranspose2d(kernel 4, stride 2, padding 1): H×W → 2H×2W.

    Input pixel (i, j) adds ``x[i, j] @ W[:, :, ky, kx]`` at output (2i - 1 + ky,
    2j - 1 + kx): one product for all taps, then 16 strided adds (a loop over taps,
    not pixels) into a buffer with a one-pixel border that padding 1 crops away.
    """
    n, h, w, _ = x.shape
    out_channels = conv.bias.shape[0]
    taps = (x @ conv.matrix).reshape(n, h, w, 4, 4, out_channels)
    out = np.zeros((n, 2 * h + 2, 2 * w + 2, out_channels), dtype=np.float32)
    for ky in range(4):
        for kx in range(4):
            out[:, ky:ky + 2 * h:2, kx:kx + 2 * w:2, :] += taps[:, :, :, ky, kx, :]
    out = out[:, 1:-1, 1:-1, :]
    out += conv.bias
    return out


# The products are small (≤ 8 M multiply-adds each): BLAS threads cost more than they
# give, and on a busy machine (the engine decoding beside us) they made one object take
# 30 ms instead of 3 (bench/mask_decode.py). So decoding runs BLAS on one thread.
_blas = ThreadpoolController()

_cache: dict[tuple[str, int, int], MaskDecoder] = {}
_cache_lock = threading.Lock()


def load_decoder(weights: Path | str) -> MaskDecoder:
    """The decoder for the file ``weights``, read once and kept (re-read if the file changes).

    Raises ``MaskDecoderError`` for a missing or invalid file.
    """
    path = Path(weights)
    try:
        stat = path.resolve().stat()
    except OSError as exc:
        raise MaskDecoderError(f"The mask decoder file {path} does not exist.") from exc
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    with _cache_lock:
        decoder = _cache.get(key)
        if decoder is None:
            decoder = MaskDecoder(read_decoder_weights(path))
            # One file's decoder at a time: a replaced file's old weights are dropped.
            _cache.clear()
            _cache[key] = decoder
    return decoder


def decode_masks(weights: str | Path, codes: np.ndarray) -> np.ndarray:
    """Decode mask codes int [N, 16] (each 0..127) to float32 [N, 64, 64] maps.

    The maps are the decoder's raw output (about -1..1; > 0 is inside the object). The
    weights file is read once and kept. Raises ``MaskDecoderError`` for a bad file and
    ``ValueError`` for codes of the wrong shape or range.
    """
    decoder = load_decoder(weights)
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != CODES_PER_MASK:
        raise ValueError(f"mask codes must have shape [N, 16], got {codes.shape}")
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"mask codes must be integers, got {codes.dtype}")
    if codes.size and (codes.min() < 0 or codes.max() >= decoder.embedding.shape[0]):
        raise ValueError("mask codes must lie in 0..127")
    if codes.shape[0] == 0:
        return np.zeros((0, MASK_SIZE, MASK_SIZE), dtype=np.float32)
    with _blas.limit(limits=1, user_api="blas"):
        maps = decoder.decode(codes.astype(np.intp))
    return maps.astype(np.float32, copy=False)


def paste_mask(
    mask64: np.ndarray, box: tuple[int, int, int, int], image_size: tuple[int, int]
) -> np.ndarray:
    """Place a decoded map into a full-size mask, as big_vision's evaluator does.

    ``box`` = (y1, x1, y2, x2) in whole pixels, ``image_size`` = (width, height). The map
    is resized to the box with PIL bilinear, thresholded at > 0.0 and put at the box;
    the result is bool [height, width]. An empty box (y2 <= y1 or x2 <= x1) gives an
    empty mask; a box reaching past the image is cut at its edge.
    """
    width, height = image_size
    y1, x1, y2, x2 = (int(v) for v in box)
    full = np.zeros((height, width), dtype=bool)
    if y2 <= y1 or x2 <= x1:
        return full
    resized = Image.fromarray(np.asarray(mask64, dtype=np.float32)).resize(
        (x2 - x1, y2 - y1), resample=Image.Resampling.BILINEAR
    )
    inside = np.asarray(resized) > 0.0
    top, left = max(y1, 0), max(x1, 0)
    bottom, right = min(y2, height), min(x2, width)
    if bottom > top and right > left:
        full[top:bottom, left:right] = inside[top - y1:bottom - y1, left - x1:right - x1]
    return full


def pixel_box(
    loc: tuple[int, int, int, int], image_size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """big_vision's pixel box for raw (y1, x1, y2, x2) codes: int(code / 1023 · side)."""
    width, height = image_size
    y1, x1, y2, x2 = loc
    return (int(y1 / 1023 * height), int(x1 / 1023 * width),
            int(y2 / 1023 * height), int(x2 / 1023 * width))
