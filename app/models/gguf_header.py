"""A fast, minimal GGUF header reader: scalar metadata and tensor locations.

``gguf.GGUFReader`` builds numpy views for every array value and needs ~17 s for
PaliGemma's 257k-token vocabulary; we only need scalars and where tensors lie, so we skip
arrays and parse the rest directly (~0.1 s).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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


def _read(f: BinaryIO, fmt: str) -> object:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise EOFError
    return struct.unpack(fmt, data)[0]


def _string(f: BinaryIO) -> str:
    length = _read(f, "<Q")
    assert isinstance(length, int)
    data = f.read(length)
    if len(data) != length:
        raise EOFError
    return data.decode("utf-8", errors="replace")


def _skip_value(f: BinaryIO, vtype: int) -> None:
    if vtype == _STRING:
        length = _read(f, "<Q")
        assert isinstance(length, int)
        f.seek(length, 1)
    elif vtype in _SCALARS:
        f.seek(struct.calcsize(_SCALARS[vtype]), 1)
    else:
        raise ValueError(f"bad value type {vtype}")


def read_gguf_header(path: Path) -> GGUFHeader:
    """Read ``path``'s metadata and tensor table, or raise ModelFolderError."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            if f.read(4) != GGUF_MAGIC:
                raise ModelFolderError(f"{path.name} is not a GGUF file.")
            _read(f, "<I")  # version
            n_tensors, n_kv = _read(f, "<Q"), _read(f, "<Q")
            assert isinstance(n_tensors, int) and isinstance(n_kv, int)
            metadata: dict[str, object] = {}
            for _ in range(n_kv):
                key = _string(f)
                vtype = _read(f, "<I")
                assert isinstance(vtype, int)
                if vtype == _ARRAY:
                    item_type, count = _read(f, "<I"), _read(f, "<Q")
                    assert isinstance(item_type, int) and isinstance(count, int)
                    if item_type in _SCALARS:
                        f.seek(struct.calcsize(_SCALARS[item_type]) * count, 1)
                    else:
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
                shape = tuple(int(_read(f, "<Q")) for _ in range(n_dims))  # type: ignore[call-overload]
                ggml_type, offset = _read(f, "<I"), _read(f, "<Q")
                infos.append((name, shape, ggml_type, offset))
            alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT))  # type: ignore[call-overload]
            start = -(-f.tell() // alignment) * alignment
    except (EOFError, ValueError, KeyError, UnicodeDecodeError) as exc:
        raise ModelFolderError(f"{path.name} is damaged or truncated ({exc}).") from exc
    except OSError as exc:
        raise ModelFolderError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    tensors = {
        name: TensorLocation(name, shape, int(t), start + int(off))  # type: ignore[call-overload]
        for name, shape, t, off in infos
    }
    if tensors:
        last = max(tensors.values(), key=lambda t: t.offset)
        if last.offset > size:
            raise ModelFolderError(
                f"{path.name} is truncated ({size} bytes): copy or convert it again."
            )
    return GGUFHeader(path, metadata, tensors)
