"""Write a GGUF file tensor by tensor, under a temporary name until it is complete."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as QType
from gguf import GGUFWriter

from app import file_errors
from app.atomic_files import atomic_path
from app.convert.tensor_plan import PlannedTensor, encode
from app.errors import ConversionError, PaliDeskError
from app.progress import CancelFlag, ProgressCallback, ProgressEvent

# Large matrices are read, widened and encoded in blocks of this many float32 bytes.
BLOCK_BYTES = 64 << 20


def disk_error(exc: OSError, path: Path) -> PaliDeskError:
    """Turn an OSError met while writing a model file into words for the user."""
    return ConversionError(file_errors.sentence(
        exc, f"write {path}", path, "Nothing incomplete was left behind."))


def write_gguf(
    path: Path,
    arch: str,
    add_metadata: Callable[[GGUFWriter], None],
    plan: list[PlannedTensor],
    *,
    progress: ProgressCallback,
    cancel: CancelFlag | None = None,
    stage: str = "convert",
) -> None:
    """Write ``plan`` to ``path`` (atomically), reading one tensor at a time."""
    try:
        with atomic_path(path, reuse_leftover=True) as temp:
            writer = GGUFWriter(temp, arch)
            add_metadata(writer)
            for tensor in plan:
                if tensor.qtype == QType.BF16:
                    writer.add_tensor_info(tensor.name, tensor.shape, np.dtype(np.uint16),
                                           tensor.nbytes, raw_dtype=QType.BF16)
                else:
                    dtype = np.float32 if tensor.qtype == QType.F32 else np.float16
                    writer.add_tensor_info(tensor.name, tensor.shape, np.dtype(dtype),
                                           tensor.nbytes)
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            # The data section is written here block by block (GGUFWriter would want
            # each tensor whole): align, stream the blocks, pad, as gguf lays it out.
            assert writer.fout is not None
            out = writer.fout[0]
            for index, tensor in enumerate(plan):
                if cancel is not None:
                    cancel.check("The conversion")
                writer.write_padding(out, out.tell())
                written = 0
                for block in tensor.blocks(BLOCK_BYTES):
                    data = encode(block, tensor.qtype)
                    data.tofile(out)
                    written += data.nbytes
                    del data, block
                if written != tensor.nbytes:  # pragma: no cover - plan bug guard
                    raise ConversionError(f"Internal error: size of {tensor.name} changed.")
                writer.write_padding(out, written)
                progress(ProgressEvent(stage, index + 1, len(plan),
                                       f"{path.name}: {tensor.name}"))
            writer.close()
    except OSError as exc:
        raise disk_error(exc, path) from exc
