"""The most images per second one `palidesk batch` driver can take in, whatever the workers.

    .venv/bin/python bench/batch_driver_ceiling.py --images 2000

Runs the real pipeline pieces with the model taken out: the streamed listing, the Ray
Data source and actor pool (``--ray-workers`` instant workers that hash each file and
answer with a canned record instead of running PaliGemma), and the driver's
``settle`` + fsync'd ``ResultsLog``. Also times the local loop the same way (no Ray).
The rate measured is the driver's ceiling in ``docs/scaling.md``'s throughput model.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.batch.inputs import iter_image_paths  # noqa: E402
from app.batch.labeler import Outcome  # noqa: E402
from app.batch.progress_bar import BatchProgress  # noqa: E402
from app.batch.record_keys import content_key, entry_key  # noqa: E402
from app.batch.results_log import ResultsLog, ResumeSnapshot  # noqa: E402
from app.batch.settle import settle  # noqa: E402
from app.batch.summary import BatchSummary  # noqa: E402
from app.file_digest import file_sha256  # noqa: E402

RECORD = {"task": "caption", "prompt": "caption en", "tokens": list(range(20)),
          "text": "a photo of a cat sitting on a sofa<eos>", "objects": [],
          "stop_reason": "eos", "image_size": [224, 224], "model": "bench",
          "model_id": "0" * 16, "quantization": "Q4_K_M",
          "timings": {"image_encode_s": 1.4, "prefill_s": 3.0}}


def canned_outcome(image: str, known: Any) -> Outcome:
    """What a worker returns, minus the model run: hash, keys, a typical record."""
    digest = file_sha256(image)
    content = content_key(digest, image, "caption en", "0" * 16, "Q4_K_M")
    entry = entry_key(content, image)
    if known.has_entry(entry):
        return Outcome(image, "skipped", content, entry)
    return Outcome(image, "labelled", content, entry,
                   {"image": image, **RECORD, "image_sha256": digest})


class CannedLabeler:
    def __init__(self, known: ResumeSnapshot) -> None:
        self.known = known

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out = canned_outcome(str(batch["image"][0]), self.known)
        return {"image": [out.image], "kind": [out.kind], "content": [out.content.hex()],
                "entry": [out.entry.hex()], "record": [json.dumps(out.record)],
                "load_s": [-1.0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--ray-workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="batch-ceiling-") as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        rng = np.random.default_rng(0)
        for index in range(args.images):
            pixels = rng.integers(0, 255, size=(32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{index:05d}.png")
        results = {}
        with ResultsLog(Path(tmp) / "local.jsonl", resume=False) as log:
            summary, bar, start = BatchSummary(), BatchProgress(None, False), time.perf_counter()
            for image in iter_image_paths([str(folder)]):
                settle(canned_outcome(image, log), log, summary, bar)
            results["local"] = args.images / (time.perf_counter() - start)
        import ray
        from ray.data import ActorPoolStrategy, DataContext

        from app.batch.ray_paths import ImagePathSource
        from app.batch.ray_run import _outcome

        ray.init(address="local", include_dashboard=False, logging_level=logging.ERROR,
                 log_to_driver=False, object_store_memory=256 * 1024 * 1024)
        DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.CRITICAL)
        try:
            with ResultsLog(Path(tmp) / "ray.jsonl", resume=False) as log:
                ds = ray.data.read_datasource(
                    ImagePathSource([str(folder)], None, args.images), num_cpus=0
                ).map_batches(CannedLabeler, fn_constructor_args=(log.snapshot(),),
                              batch_size=1, batch_format="numpy", num_cpus=0.5,
                              compute=ActorPoolStrategy(size=args.ray_workers,
                                                        max_tasks_in_flight_per_actor=2))
                summary, bar, rows = BatchSummary(), BatchProgress(None, False), 0
                start = time.perf_counter()
                first = None
                for row in ds.iter_rows():
                    first = first or time.perf_counter()
                    settle(_outcome(row), log, summary, bar)
                    rows += 1
                results["ray_steady"] = (rows - 1) / (time.perf_counter() - first)
                results["ray_whole"] = rows / (time.perf_counter() - start)
        finally:
            ray.shutdown()
    for name, rate in results.items():
        print(f"{name}: {rate:.0f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
