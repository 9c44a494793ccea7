"""Figures measured on this machine, kept beside a model folder's manifest (speed.json).

Written by a speed test or ``palidesk eval``; read by Settings, the Models dialog and the
automatic choice. Each quantization's entry records the machine it was measured on, so a
folder copied to another computer does not show figures that are not true there.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.atomic_files import write_text_atomic

SPEED_NAME = "speed.json"
SPEED_FORMAT = 1


def machine_id() -> str:
    """A short description of this machine: the same string means "measured here"."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()} · {cpu} · {os.cpu_count()} CPUs"


@dataclass
class QuantSpeed:
    """One quantization's figures. Seconds, bytes; ``agreement`` from ``palidesk eval``."""

    decode_tokens_per_s: float | None = None
    first_token_s: float | None = None  # a new image: encode + prefill + one token
    first_token_cached_s: float | None = None  # the same image again (encode skipped)
    load_s: float | None = None
    peak_rss_bytes: int | None = None
    peak_vram_bytes: int | None = None
    gpu_layers: int = 0
    images: int = 0
    measured: str = field(default_factory=lambda: datetime.now(UTC).isoformat(
        timespec="seconds"))
    machine: str = field(default_factory=machine_id)
    # {"reference": "F16", "share": 0.97, "images": 20, "task": "detect"}
    agreement: dict[str, Any] | None = None

    @property
    def here(self) -> bool:
        return self.machine == machine_id()


def read_speeds(folder: Path) -> dict[str, QuantSpeed]:
    """Quantization -> figures; empty when none were measured or the file is damaged."""
    try:
        data = json.loads((Path(folder) / SPEED_NAME).read_text(encoding="utf-8"))
        known = set(QuantSpeed.__dataclass_fields__)
        return {q.upper(): QuantSpeed(**{k: v for k, v in entry.items() if k in known})
                for q, entry in data.get("quants", {}).items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}  # a missing or damaged file only means "not measured yet"


def speeds_here(folder: Path) -> dict[str, QuantSpeed]:
    """``read_speeds`` limited to figures measured on this machine."""
    return {q: s for q, s in read_speeds(folder).items() if s.here}


def record_speed(folder: Path, quant: str, speed: QuantSpeed,
                 keep_agreement: bool = True) -> None:
    """Store ``speed`` for ``quant`` (atomically), keeping the other quantizations'.

    A speed test has no agreement figure: with ``keep_agreement`` the earlier one stays.
    """
    folder = Path(folder)
    speeds = read_speeds(folder)
    old = speeds.get(quant.upper())
    if keep_agreement and speed.agreement is None and old is not None and old.here:
        speed.agreement = old.agreement
    speeds[quant.upper()] = speed
    data = {"format": SPEED_FORMAT, "quants": {q: asdict(s) for q, s in speeds.items()}}
    target = folder / SPEED_NAME
    write_text_atomic(target, json.dumps(data, indent=2))


def describe_speed(speed: QuantSpeed) -> str:
    """"14 tok/s, first token 4.2 s here · agrees 97 % with F16 on your images"."""
    parts = []
    if speed.decode_tokens_per_s:
        parts.append(f"{speed.decode_tokens_per_s:.0f} tok/s")
    if speed.first_token_s is not None:
        parts.append(f"first token {speed.first_token_s:.1f} s")
    text = (", ".join(parts) + " here") if parts else ""
    agreement = speed.agreement or {}
    if agreement.get("share") is not None and agreement.get("reference"):
        same = f"agrees {agreement['share'] * 100:.0f} % with {agreement['reference']} " \
               "on your images"
        text = f"{text} · {same}" if text else same
    return text
