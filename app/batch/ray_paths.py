"""A Ray Data source that streams the batch's image paths from the driver's machine.

The inputs are listed where the user named them (``supports_distributed_reads`` is
False: one read task, on the driver's node) and flow into the pipeline one path per
block, so Ray can hand each image to whichever worker is free and no full listing is
ever built.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

import pyarrow as pa
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from app.batch.inputs import iter_image_paths


class ImagePathSource(Datasource):
    def __init__(self, inputs: list[str], limit: int | None, total: int | None) -> None:
        super().__init__()
        self._inputs = list(inputs)
        self._limit = limit
        self._total = total

    @property
    def supports_distributed_reads(self) -> bool:
        return False

    def estimate_inmemory_data_size(self) -> int | None:
        return None if self._total is None else self._total * 256

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context: object = None) -> list[ReadTask]:
        inputs, limit = self._inputs, self._limit

        def read() -> Iterator[pa.Table]:
            for image in islice(iter_image_paths(inputs), limit):
                yield pa.table({"image": [image]})

        metadata = BlockMetadata(num_rows=self._total, size_bytes=None, input_files=None,
                                 exec_stats=None)
        return [ReadTask(read, metadata)]
