"""Read safetensors shards one tensor at a time, without loading whole files.

Our own reader (the format is a JSON header plus raw little-endian data) because numpy has
no bfloat16 and PaliGemma checkpoints are usually bf16: we widen each tensor to float32
as it is read, from a memory map, so peak memory stays near the largest single tensor.
"""

from __future__ import annotations

import contextlib
import json
import math
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.errors import ConversionError

# safetensors dtype -> (numpy dtype of the stored words, bytes per element)
_DTYPES: dict[str, tuple[np.dtype, int]] = {
    "F32": (np.dtype("<f4"), 4),
    "F16": (np.dtype("<f2"), 2),
    "BF16": (np.dtype("<u2"), 2),
    "F64": (np.dtype("<f8"), 8),
}


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lives in one shard."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    path: Path
    begin: int  # absolute byte offset in the file
    end: int


def read_header(path: Path) -> dict[str, TensorEntry]:
    """Parse one safetensors file's header into entries (no tensor data is read)."""
    try:
        with path.open("rb") as f:
            raw_len = f.read(8)
            if len(raw_len) != 8:
                raise ConversionError(f"{path.name} is empty or truncated.")
            (header_len,) = struct.unpack("<Q", raw_len)
            if header_len > 100_000_000:
                raise ConversionError(f"{path.name} is not a safetensors file.")
            header = json.loads(f.read(header_len))
            size = path.stat().st_size
    except (OSError, ValueError) as exc:
        raise ConversionError(f"Cannot read {path.name}: {exc}.") from exc
    if not isinstance(header, dict):
        raise ConversionError(f"{path.name} is not a safetensors file (its header is not a table).")
    base = 8 + header_len
    entries: dict[str, TensorEntry] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        entry = _entry(path, name, info, base)
        if entry.end > size:
            raise ConversionError(
                f"{path.name} is truncated: tensor {name} ends at byte {entry.end} but the "
                f"file has {size} bytes. Download it again."
            )
        entries[name] = entry
    return entries


def _entry(path: Path, name: str, info: object, base: int) -> TensorEntry:
    """One header entry, checked: a damaged header must not become a crash later."""
    damaged = ConversionError(
        f"{path.name} is damaged: the header entry for tensor {name} is incomplete or "
        "inconsistent. Download it again."
    )
    if not isinstance(info, dict):
        raise damaged
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if (not isinstance(dtype, str) or not _whole_numbers(shape) or not _whole_numbers(offsets)
            or len(offsets) != 2 or offsets[0] > offsets[1]):
        raise damaged
    begin, end = base + offsets[0], base + offsets[1]
    if dtype in _DTYPES and end - begin != math.prod(shape) * _DTYPES[dtype][1]:
        raise ConversionError(
            f"{path.name} is damaged: tensor {name} should hold "
            f"{math.prod(shape) * _DTYPES[dtype][1]} bytes for its shape {tuple(shape)} but "
            f"holds {end - begin}. Download it again."
        )
    return TensorEntry(name, dtype, tuple(shape), path, begin, end)


def _whole_numbers(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)


class SafetensorsFiles:
    """All tensors of a checkpoint, across its shards, read lazily as float32."""

    def __init__(self, paths: list[Path]) -> None:
        self.entries: dict[str, TensorEntry] = {}
        for path in paths:
            self.entries.update(read_header(path))
        self._maps: dict[Path, mmap.mmap] = {}

    def read(self, name: str) -> np.ndarray:
        """Return tensor ``name`` as a new float32 array."""
        return self.read_rows(name, 0, None)

    def read_rows(self, name: str, start: int, stop: int | None) -> np.ndarray:
        """Rows ``start:stop`` of tensor ``name`` (along its first axis) as float32.

        Reading a large matrix in row blocks keeps peak memory at one block instead of
        the whole matrix widened to float32 (2.4 GB for the 3B model's embedding).
        """
        entry = self.entries[name]
        if entry.dtype not in _DTYPES:
            raise ConversionError(
                f"Tensor {name} is stored as {entry.dtype}; only F32, F16 and BF16 "
                "checkpoints can be converted."
            )
        word, width = _DTYPES[entry.dtype]
        count = (entry.end - entry.begin) // width
        # A view into the memory map: no copy until the widening below.
        data = np.frombuffer(self._map(entry.path), dtype=word, count=count, offset=entry.begin)
        data = data.reshape(entry.shape)[start:stop]
        if entry.dtype == "BF16":
            # bfloat16 is the top half of a float32: shift the words into place, in place.
            out = data.astype(np.uint32)
            out <<= 16
            out = out.view(np.float32)
        else:
            out = data.astype(np.float32)
        self._release(entry, data)
        return out

    def _release(self, entry: TensorEntry, rows: np.ndarray) -> None:
        """Drop the source pages just copied from this process's resident memory.

        They are file-backed (the kernel re-reads them if needed), but left mapped they
        count in the converter's RSS until the whole checkpoint has been read: 5.7 GiB
        for a 3B model, which is what a user's task manager would show.
        """
        if rows.size == 0 or not hasattr(mmap, "MADV_DONTNEED"):
            return
        mapped = self._map(entry.path)
        first = rows.__array_interface__["data"][0] - np.frombuffer(mapped, np.uint8).ctypes.data
        page = mmap.PAGESIZE
        begin = first - first % page
        end = min(first + rows.nbytes, len(mapped))
        # Only an optimisation (memory use, not correctness): a refusal is fine.
        with contextlib.suppress(OSError, ValueError):
            mapped.madvise(mmap.MADV_DONTNEED, begin, end - begin)

    def _map(self, path: Path) -> mmap.mmap:
        if path not in self._maps:
            with path.open("rb") as f:
                self._maps[path] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return self._maps[path]

    def close(self) -> None:
        for mapped in self._maps.values():
            mapped.close()
        self._maps.clear()
