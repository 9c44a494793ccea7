"""Run a command and report its peak memory, split into anonymous and file-backed pages.

    .venv/bin/python bench/peak_memory.py [--json OUT.json] -- CMD ARGS...

Why not only ``/usr/bin/time -v``: its "maximum resident set size" counts the pages of
memory-mapped files that the process has touched. The converter reads safetensors shards
through memory maps, so those pages (page cache the kernel can drop at any time) show
up in RSS although the process never holds them in its own memory. This samples
``/proc/PID/status`` (VmRSS, RssAnon, RssFile) of the process and its children every
``--interval`` seconds and reports the peaks; ``RssAnon`` is the memory the conversion
really needs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem")


def status_kb(pid: int) -> dict[str, int]:
    out = dict.fromkeys(FIELDS, 0)
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in out:
                out[key] = int(value.split()[0])
    except (OSError, ValueError):
        pass
    return out


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    kids = [int(x) for x in text.split()]
    return kids + [g for k in kids for g in children(k)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--json", type=Path, help="also write the peaks here")
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("no command given")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak = dict.fromkeys(FIELDS, 0)
    peak_at = dict.fromkeys(FIELDS, 0.0)
    while proc.poll() is None:
        total = dict.fromkeys(FIELDS, 0)
        for pid in [proc.pid, *children(proc.pid)]:
            for key, value in status_kb(pid).items():
                total[key] += value
        now = time.perf_counter() - start
        for key in FIELDS:
            if total[key] > peak[key]:
                peak[key], peak_at[key] = total[key], now
        time.sleep(args.interval)
    elapsed = time.perf_counter() - start
    result = {
        "command": cmd,
        "returncode": proc.returncode,
        "elapsed_s": round(elapsed, 1),
        "peak_kib": peak,
        "peak_gib": {k: round(v / 2**20, 3) for k, v in peak.items()},
        "peak_at_s": {k: round(v, 1) for k, v in peak_at.items()},
    }
    print(json.dumps(result, indent=2), file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
