"""The Ray Data actor: an ImageLabeler per worker, fed batches of image paths.

Imported by Ray workers by module path, so it must not need Ray itself at import time.
Outcomes go back to the driver as plain columns; the driver writes the file.
"""

from __future__ import annotations

import json
import time
from typing import Any

from app.batch.job import BatchJob
from app.batch.labeler import ImageLabeler
from app.batch.results_log import ResumeSnapshot


class RayLabeler:
    """``map_batches`` callable class: the engine loads once, in ``__init__``."""

    def __init__(self, job: BatchJob, known: object) -> None:
        start = time.perf_counter()
        if not isinstance(known, ResumeSnapshot):  # an ObjectRef: the driver put it once
            import ray

            known = ray.get(known)
        assert isinstance(known, ResumeSnapshot)
        self._known = known
        self._labeler = ImageLabeler(job)
        # Reported with the first outcome: the start-up cost each worker pays once.
        self._load_s: float | None = time.perf_counter() - start

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        columns: dict[str, list[Any]] = {"image": [], "kind": [], "content": [], "entry": [],
                                         "record": [], "load_s": []}
        for image in batch["image"]:
            outcome = self._labeler.label(str(image), self._known)
            columns["image"].append(outcome.image)
            columns["kind"].append(outcome.kind)
            columns["content"].append(outcome.content.hex())
            columns["entry"].append(outcome.entry.hex())
            columns["record"].append(json.dumps(outcome.record, ensure_ascii=False)
                                     if outcome.record is not None else "")
            columns["load_s"].append(-1.0 if self._load_s is None else self._load_s)
            self._load_s = None
        return columns

    def __del__(self) -> None:
        labeler = getattr(self, "_labeler", None)
        if labeler is not None:
            labeler.close()
