"""A fast, minimal GGUF header reader: scalar metadata and tensor locations.

``gguf.GGUFReader`` builds numpy views for every array value and needs ~17 s for
PaliGemma's 257k-token vocabulary; we only need scalars and where tensors lie, so we skip
arrays and parse the rest directly (~0.1 s).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from app.errors import ModelFolderError

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# GGUFValueType -> struct format for scalars
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class TensorLocation:
    name: str
    shape: tuple[int, ...]  # GGUF order: ne[0] (row length) first
    ggml_type: int
    offset: int  # absolute byte offset in the file


@dataclass(frozen=True)
class GGUFHeader:
    path: Path
    metadata: dict[str, object]  # scalars and strings; arrays are recorded as their length
    tensors: dict[str, TensorLocation]

    def get(self, key: str, default: object = None) -> object:
        return self.metadata.get(key, default)


# ggml tensors have at most 4 dimensions (GGML_MAX_DIMS).
_MAX_DIMS = 4


class _Source:
    """The open file and its size: every length field is checked against what is left."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f, self.size = f, size
        self.read, self.seek, self.tell = f.read, f.seek, f.tell


def _read(f: _Source, fmt: str) -> object:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise EOFError("the file ends early")
    return struct.unpack(fmt, data)[0]


def _remaining(f: _Source) -> int:
    return f.size - f.tell()


def _length(f: _Source, unit: int = 1) -> int:
    """A length or count field; one larger than what is left of the file is damage.

    Trusting it would have Python allocate whatever random bytes say (a MemoryError).
    """
    value = _read(f, "<Q")
    assert isinstance(value, int)
    if value * unit > _remaining(f):
        raise ValueError(f"a length field says {value}, more than the file holds")
    return value


def _string(f: _Source) -> str:
    length = _length(f)
    data = f.read(length)
    if len(data) != length:
        raise EOFError("the file ends early")
    return data.decode("utf-8", errors="replace")


def _skip(f: _Source, nbytes: int) -> None:
    if nbytes > _remaining(f):
        raise EOFError("the file ends early")
    f.seek(nbytes, 1)


def _skip_value(f: _Source, vtype: int) -> None:
    if vtype == _STRING:
        _skip(f, _length(f))
    elif vtype in _SCALARS:
        _skip(f, struct.calcsize(_SCALARS[vtype]))
    else:
        raise ValueError(f"bad value type {vtype}")


def _value_type(f: _Source) -> int:
    vtype = _read(f, "<I")
    assert isinstance(vtype, int)
    if vtype not in _SCALARS and vtype not in (_STRING, _ARRAY):
        raise ValueError(f"bad value type {vtype}")
    return vtype


def read_gguf_header(path: Path) -> GGUFHeader:
    """Read ``path``'s metadata and tensor table, or raise ModelFolderError."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            f = _Source(file, size)
            if f.read(4) != GGUF_MAGIC:
                raise ModelFolderError(f"{path.name} is not a GGUF file.")
            _read(f, "<I")  # version
            # Each key-value pair takes at least 12 bytes, each tensor entry at least 24.
            n_tensors, n_kv = _length(f, 24), _length(f, 12)
            metadata: dict[str, object] = {}
            for _ in range(n_kv):
                key = _string(f)
                vtype = _value_type(f)
                if vtype == _ARRAY:
                    item_type = _value_type(f)
                    if item_type == _ARRAY:
                        raise ValueError("nested arrays")
                    if item_type in _SCALARS:
                        width = struct.calcsize(_SCALARS[item_type])
                        count = _length(f, width)
                        _skip(f, width * count)
                    else:
                        count = _length(f, 8)
                        for _ in range(count):
                            _skip_value(f, item_type)
                    metadata[key] = count
                elif vtype == _STRING:
                    metadata[key] = _string(f)
                else:
                    metadata[key] = _read(f, _SCALARS[vtype])
            infos = []
            for _ in range(n_tensors):
                name = _string(f)
                n_dims = _read(f, "<I")
                assert isinstance(n_dims, int)
                if not 1 <= n_dims <= _MAX_DIMS:
                    raise ValueError(f"tensor {name} has {n_dims} dimensions")
                shape = tuple(int(_read(f, "<Q")) for _ in range(n_dims))  # type: ignore[call-overload]
                ggml_type, offset = _read(f, "<I"), _read(f, "<Q")
                infos.append((name, shape, ggml_type, offset))
            alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
            if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
                raise ValueError(f"alignment {alignment!r} is not a power of two")
            start = -(-f.tell() // alignment) * alignment
    except (EOFError, ValueError, KeyError, OverflowError, struct.error) as exc:
        raise ModelFolderError(f"{path.name} is damaged or truncated ({exc}).") from exc
    except OSError as exc:
        raise ModelFolderError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    tensors = {
        name: TensorLocation(name, shape, int(t), start + int(off))  # type: ignore[call-overload]
        for name, shape, t, off in infos
    }
    if tensors and max(_end(t) for t in tensors.values()) > size:
        raise ModelFolderError(
            f"{path.name} is truncated ({size} bytes, shorter than its tensors need): copy "
            "or convert it again."
        )
    return GGUFHeader(path, metadata, tensors)


def _end(tensor: TensorLocation) -> int:
    """Where ``tensor``'s data ends (its start for a type this gguf package does not know)."""
    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(tensor.ggml_type)]
    except (ValueError, KeyError):
        return tensor.offset
    return tensor.offset + math.prod(tensor.shape) // block * type_size
