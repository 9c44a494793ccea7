"""Rows of the text GGUF's ``token_embd`` matrix, for building the prefix as embeddings.

llama.cpp's batches hold tokens or embeddings, never both, and PaliGemma's prefix
(image rows + BOS + prompt + "\\n") must be decoded as one non-causal batch. So the text
part is looked up here: memory-map the file and dequantize only the rows asked for
(bit-identical to what llama.cpp's own lookup produces). Rows are unscaled: llama.cpp's
gemma2 graph multiplies every input row by sqrt(hidden) itself.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import dequantize

from app.errors import ModelFolderError
from app.model_files.gguf_header import GGUFHeader


class TokenEmbeddingTable:
    """``rows(ids)`` -> float32 array [len(ids), hidden]."""

    def __init__(self, header: GGUFHeader) -> None:
        tensor = header.tensors.get("token_embd.weight")
        if tensor is None:
            raise ModelFolderError(f"{header.path.name} has no token embedding matrix.")
        self.hidden, self.n_rows = tensor.shape[0], tensor.shape[1]
        self.qtype = GGMLQuantizationType(tensor.ggml_type)
        block, block_bytes = GGML_QUANT_SIZES[self.qtype]
        self.row_bytes = self.hidden // block * block_bytes
        self._offset = tensor.offset
        with Path(header.path).open("rb") as f:
            # The map stays valid after the file object is closed.
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)

    def rows(self, ids: list[int]) -> np.ndarray:
        out = np.empty((len(ids), self.hidden), dtype=np.float32)
        for i, token in enumerate(ids):
            if not 0 <= token < self.n_rows:
                raise ValueError(f"token id {token} outside the vocabulary")
            start = self._offset + token * self.row_bytes
            raw = np.frombuffer(self._map, dtype=np.uint8, count=self.row_bytes, offset=start)
            out[i] = dequantize(raw, self.qtype).reshape(-1)
        return out

    def close(self) -> None:
        if not self._map.closed:
            self._map.close()
