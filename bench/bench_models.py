"""Where the full-size benchmark models live: ``$PALIDESK_BENCH_MODELS``, else
``bench/models/`` in this repository (git-ignored: gigabytes that are built, not kept).

Expected inside: ``pg2-3b-224-random`` (bench/make_fullsize_random.py) and
``pg2-3b-224-gguf`` (that checkpoint converted and quantized; docs/benchmarks.md).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "PALIDESK_BENCH_MODELS"
BENCH_MODELS = Path(os.environ.get(ENV) or Path(__file__).resolve().parent / "models")
