"""Memory read bandwidth of this machine, measured with numpy (the decode speed bound).

    .venv/bin/python bench/bandwidth.py [--gib 2] [--repeats 5]

Streams a buffer much larger than the L3 cache and reports GB/s (1e9 bytes/s) for:
- 1 thread and 2 threads (numpy releases the GIL inside reductions);
- anonymous memory with 4 KiB pages, anonymous memory advised MADV_HUGEPAGE (2 MiB pages
  where the kernel grants them), and a memory-mapped file in the page cache (what
  llama.cpp decodes from by default).
The reduction is a bitwise OR over uint64 words: trivially cheap per byte, so the
number is the rate at which memory delivers data, not arithmetic speed.
Medians of ``--repeats`` passes; other processes' CPU use is reported alongside.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from bench_models import BENCH_MODELS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_load import OtherLoad


def anon_buffer(nbytes: int, huge: bool) -> tuple[mmap.mmap, np.ndarray]:
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if huge and hasattr(mmap, "MADV_HUGEPAGE"):
        buf.madvise(mmap.MADV_HUGEPAGE)
    arr = np.frombuffer(buf, dtype=np.uint64)
    arr[:] = np.arange(arr.size, dtype=np.uint64)  # touch every page
    return buf, arr


def file_buffer(nbytes: int, folder: Path) -> tuple[mmap.mmap, np.ndarray, Path]:
    fd, name = tempfile.mkstemp(dir=folder, suffix=".bw")
    path = Path(name)
    with os.fdopen(fd, "wb") as f:
        chunk = np.arange(1 << 24, dtype=np.uint64).tobytes()
        left = nbytes
        while left > 0:
            f.write(chunk[: min(len(chunk), left)])
            left -= len(chunk)
    with path.open("rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    arr = np.frombuffer(buf, dtype=np.uint64)
    np.bitwise_or.reduce(arr)  # fault the pages in (page cache)
    return buf, arr, path


def read_rate(arr: np.ndarray, threads: int, pool: ThreadPoolExecutor) -> float:
    parts = np.array_split(arr, threads)
    start = time.perf_counter()
    if threads == 1:
        np.bitwise_or.reduce(parts[0])
    else:
        list(pool.map(np.bitwise_or.reduce, parts))
    return arr.nbytes / (time.perf_counter() - start) / 1e9


def huge_pages_kib() -> int:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tmp", type=Path, default=BENCH_MODELS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    nbytes = int(args.gib * 2**30) // 8 * 8
    pool = ThreadPoolExecutor(2)
    results: dict[str, object] = {"buffer_gib": args.gib}
    buffers = {}
    buffers["anon_4k"] = anon_buffer(nbytes, huge=False)[1]
    hp_before = huge_pages_kib()
    buffers["anon_thp"] = anon_buffer(nbytes, huge=True)[1]
    results["anon_thp_granted_mib"] = (huge_pages_kib() - hp_before) // 1024
    _, file_arr, path = file_buffer(nbytes, args.tmp)
    buffers["file_mmap"] = file_arr
    try:
        for name, arr in buffers.items():
            for threads in (1, 2):
                rates, others = [], []
                for _ in range(args.repeats):
                    with OtherLoad() as load:
                        rates.append(read_rate(arr, threads, pool))
                    others.append(load.other_cores)
                key = f"{name}_{threads}t"
                results[key] = {"median_gbps": round(statistics.median(rates), 2),
                                "max_gbps": round(max(rates), 2),
                                "other_cores_median": round(statistics.median(others), 2)}
                print(f"{key:16s} median {statistics.median(rates):6.2f} GB/s  "
                      f"max {max(rates):6.2f}  (other processes: "
                      f"{statistics.median(others):.2f} cores)", flush=True)
    finally:
        path.unlink(missing_ok=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
