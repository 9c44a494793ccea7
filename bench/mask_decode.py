"""How long the numpy mask decoder takes per object (the issue's budget: < 10 ms).

    .venv/bin/python bench/mask_decode.py [--weights vae-oid.npz] [--repeat 200]

Decodes one object, then a batch of 8, with random weights in vae-oid.npz's layout
(D = 512; speed does not depend on the values) unless ``--weights`` names a real file.
The baseline, measured in the same run, is the same decode with BLAS on its default
thread pool (what numpy does unless told otherwise); ``decode_masks`` limits BLAS to one
thread. Also times paste_mask into a 1024×768 image. Medians, with the cores other
processes kept busy meanwhile (from /proc/stat), since this machine is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from app.tasks.masks import decode_masks, load_decoder, paste_mask  # noqa: E402


def busy_cores() -> float:
    """Cores busy (all processes) since the previous call, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle, total = fields[3] + fields[4], sum(fields)
    last = getattr(busy_cores, "last", (idle, total))
    busy_cores.last = (idle, total)  # type: ignore[attr-defined]
    span = total - last[1]
    return 0.0 if span <= 0 else (span - (idle - last[0])) / span * _cpus()


def _cpus() -> int:
    return os.cpu_count() or 1


def median_ms(fn, repeat: int) -> float:
    fn()  # warm: weights loaded, caches filled
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, help="a real vae-oid.npz (default: random)")
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            from mask_weights import write_random_decoder

            weights = write_random_decoder(Path(tmp) / "random-vae-oid.npz")
        rng = np.random.default_rng(0)
        one = rng.integers(0, 128, size=(1, 16))
        eight = rng.integers(0, 128, size=(8, 16))
        decoder = load_decoder(weights)

        busy_cores()
        # (what, baseline ms, decode_masks ms): the baseline is the same decode with BLAS
        # on its default thread pool.
        rows = []
        for what, codes, repeat in (("1 object", one, args.repeat),
                                    ("8 objects", eight, max(args.repeat // 4, 1))):
            rows.append((what,
                         median_ms(lambda c=codes: decoder.decode(c), repeat),
                         median_ms(lambda c=codes: decode_masks(weights, c), repeat)))
        map64 = decode_masks(weights, one)[0]
        paste = median_ms(lambda: paste_mask(map64, (100, 200, 600, 800), (1024, 768)),
                          args.repeat)
        others = busy_cores()
    print(f"{'decode':<10} {'BLAS default (baseline) ms':>27} {'decode_masks ms':>16} "
          f"{'speed-up':>9} {'ms/object':>10}")
    for what, base, ours in rows:
        count = int(what.split()[0])
        print(f"{what:<10} {base:>27.2f} {ours:>16.2f} {base / ours:>8.2f}x "
              f"{ours / count:>10.2f}")
    print(f"paste_mask, 600×500 box into 1024×768: {paste:.2f} ms")
    print(f"cores busy meanwhile (all processes, ours included): {others:.2f} of {_cpus()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
