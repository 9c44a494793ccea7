"""First-token time for an image the idle worker encoded ahead, against the two figures it
should sit between: a new image (encode + prefill) and the same image again (cache hit).

    .venv/bin/python bench/queued_image.py --models $PALIDESK_BENCH_MODELS/pg2-3b-224-gguf \\
        --quant Q4_K_M --threads 2 --repeats 3

Everything goes through the window's real worker (``EngineThread``: its own thread, the
queued signals, the job runner that stores each result), without a window. One *round*:

- **new image**: the embedding cache is cleared, a job runs on image A (``--prompt``);
- **same image again**: a second job on image A (``--second-prompt``): cache hit;
- **queued image**: the worker is told to prefetch image B, as the window does while idle
  (selected image, then the next ones); once B is in the cache, a job runs on B with the
  second prompt — the same prefix length as "same image again".

First token = the engine's own figure (from the call to the first token) and, beside it,
the wall time from sending the job to the first token arriving in the main thread.
Medians over rounds; the ratio queued / same-again is what the target (≤ 1.10) is about.
Results: bench/results/queued-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_models import BENCH_MODELS

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
IMAGES = ROOT / "tests" / "fixtures" / "images"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=BENCH_MODELS / "pg2-3b-224-gguf")
    parser.add_argument("--quant", default="Q4_K_M")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompt", default="caption en")
    parser.add_argument("--second-prompt", default="detect cat ; dog")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from PySide6.QtCore import QCoreApplication, QObject, Slot

    from app.engine.engine import EngineConfig
    from app.engine.events import GenerationOptions
    from app.history import HistoryStore
    from app.session import Session
    from app.tasks.prompts import TaskKind, TaskRequest
    from app.ui.engine_worker import EngineThread, LoadRequest

    app = QCoreApplication(sys.argv[:1])
    history = HistoryStore(Path(tempfile.mkdtemp(prefix="palidesk-bench-")) / "h.sqlite3")
    engine = EngineThread(history)
    worker = engine.worker

    class Listener(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.loaded = self.failed = None
            self.first_token_at: float | None = None
            self.outcome = None
            worker.model_loaded.connect(self.on_loaded)
            worker.model_failed.connect(self.on_failed)
            worker.token.connect(self.on_token)
            worker.job_ended.connect(self.on_ended)

        @Slot(object)
        def on_loaded(self, model) -> None:
            self.loaded = model

        @Slot(str)
        def on_failed(self, message: str) -> None:
            self.failed = message

        @Slot(int, str)
        def on_token(self, _job: int, _text: str) -> None:
            if self.first_token_at is None:
                self.first_token_at = time.perf_counter()

        @Slot(object)
        def on_ended(self, outcome) -> None:
            self.outcome = outcome

    listener = Listener()

    def wait(condition, timeout_s: float = 600.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("the worker did not answer in time")
            app.processEvents()
            time.sleep(0.002)

    engine.load(LoadRequest(args.models, args.quant, EngineConfig(threads=args.threads),
                            auto_gpu_layers=False))
    wait(lambda: listener.loaded is not None or listener.failed is not None)
    if listener.failed:
        print(listener.failed)
        return 1
    session = Session()
    session.model_loaded(listener.loaded.identity)
    options = GenerationOptions(max_new_tokens=args.tokens, stop_at_eos=False)
    requests = {p: TaskRequest(TaskKind.CUSTOM, prompt=p) for p in
                (args.prompt, args.second_prompt)}
    pairs = [("noise_97x150.png", "shapes_320x240.png"),
             ("strokes_500x500.png", "noise_97x150.png"),
             ("shapes_320x240.png", "strokes_500x500.png")]

    def run(image: Path, prompt: str) -> dict:
        listener.first_token_at, listener.outcome = None, None
        job = session.make_job(image, requests[prompt], options)
        sent = time.perf_counter()
        engine.run(job)
        wait(lambda: listener.outcome is not None)
        record = listener.outcome.record
        return {"image": image.name, "prompt": prompt,
                "first_token_s": record.timings["first_token_s"],
                "sent_to_first_token_s": (listener.first_token_at or sent) - sent,
                "image_cached": record.timings["image_cached"]}

    cache = worker.engine.cache
    # Warm-up on an image outside the rounds (first-call allocations).
    run(IMAGES / "noise_97x150.png", args.prompt)
    rounds = []
    for r in range(args.repeats):
        first, queued = (IMAGES / name for name in pairs[r % len(pairs)])
        cache.clear()
        row = {"new": run(first, args.prompt), "same": run(first, args.second_prompt)}
        before = len(cache)
        engine.prefetch([queued])  # what the window asks for while the worker is idle
        wait(lambda b=before: len(cache) > b)
        row["queued"] = run(queued, args.second_prompt)
        assert row["same"]["image_cached"] and row["queued"]["image_cached"]
        assert not row["new"]["image_cached"]
        rounds.append(row)
        print(f"round {r}: " + "  ".join(
            f"{k} {v['first_token_s']:.2f} s ({v['sent_to_first_token_s']:.2f} s)"
            for k, v in row.items()), flush=True)
    engine.stop()
    history.close()

    def med(kind: str, key: str) -> float:
        return statistics.median(row[kind][key] for row in rounds)

    summary = {kind: {key: med(kind, key) for key in ("first_token_s", "sent_to_first_token_s")}
               for kind in ("new", "same", "queued")}
    ratio = summary["queued"]["first_token_s"] / summary["same"]["first_token_s"]
    summary["queued_over_same"] = ratio
    print(f"median first token: new image {summary['new']['first_token_s']:.2f} s, "
          f"same image again {summary['same']['first_token_s']:.2f} s, "
          f"queued image {summary['queued']['first_token_s']:.2f} s "
          f"(queued / same = {ratio:.2f}; target ≤ 1.10)")
    out = args.out or ROOT / "bench" / "results" / f"queued-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                               "rounds": rounds, "summary": summary}, indent=2) + "\n")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
