"""Image-embedding cache: a second task on the same image skips the vision encoder."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np


class ImageEmbeddingCache:
    """LRU of projector outputs keyed by (vision model, image pixels), bounded in bytes."""

    def __init__(self, max_bytes: int = 512 << 20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, model_key: str, image_digest: str) -> np.ndarray | None:
        with self._lock:
            rows = self._items.get((model_key, image_digest))
            if rows is None:
                return None
            self._items.move_to_end((model_key, image_digest))
            return rows

    def put(self, model_key: str, image_digest: str, rows: np.ndarray) -> None:
        if rows.nbytes > self.max_bytes:
            return
        with self._lock:
            key = (model_key, image_digest)
            if key in self._items:
                self._bytes -= self._items.pop(key).nbytes
            self._items[key] = rows
            self._bytes += rows.nbytes
            while self._bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)
