"""Random weights in the layout of big_vision's ``vae-oid.npz``, the same on every run.

Shared by the reference-output script (tests/fixtures/make_mask_reference.py) and the
tests, so the checked-in reference outputs need no 4 MB weights file beside them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from app.tasks.masks import EMBEDDING_KEY, _conv_shapes

SEED = 20240514
EMBEDDING_DIM = 512


def random_decoder_weights(seed: int = SEED, dim: int = EMBEDDING_DIM) -> dict[str, np.ndarray]:
    """He-scaled random tensors for every key the decoder reads (float32, PyTorch layout).

    The scale keeps the 64×64 maps around [-1, 1], so a threshold at 0 cuts through them
    the way a real decoder's output does.
    """
    rng = np.random.default_rng(seed)
    weights = {EMBEDDING_KEY: rng.standard_normal((128, dim)).astype(np.float32)}
    for key, shape in sorted(_conv_shapes(dim).items()):
        if key.endswith(".bias"):
            weights[key] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
            continue
        transposed = key.removesuffix(".weight") in ("decoder.4", "decoder.6", "decoder.8",
                                                     "decoder.10")
        # Each output of a stride-2, 4×4 transposed conv sees 4 taps per input channel.
        fan_in = shape[0] * 4 if transposed else shape[1] * shape[2] * shape[3]
        gain = 0.1 if key == "decoder.12.weight" else 1.0  # brings the maps to about ±1
        std = gain * np.sqrt(2.0 / fan_in)
        weights[key] = (std * rng.standard_normal(shape)).astype(np.float32)
    return weights


def weights_digest(weights: dict[str, np.ndarray]) -> str:
    """SHA-256 over the keys and bytes: shows the random stream has not changed."""
    digest = hashlib.sha256()
    for key in sorted(weights):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(weights[key], dtype=np.float32).tobytes())
    return digest.hexdigest()


def write_random_decoder(path: Path, seed: int = SEED, dim: int = EMBEDDING_DIM) -> Path:
    """Save random decoder weights as an npz like vae-oid.npz; returns ``path``."""
    np.savez(path, **random_decoder_weights(seed, dim))
    return path
