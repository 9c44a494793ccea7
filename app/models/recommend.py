"""Which checkpoint and quantization to get for this machine (the Models dialog's advice).

A mix checkpoint (the multi-task one; pt checkpoints are bases for fine-tuning), at 448 px
for reading text (OCR needs the detail) and 224 px otherwise; the largest size that runs
entirely on the GPU, or on the CPU at the target decode speed (``CPU_TARGET_TOKENS_PER_S``);
failing both, the smallest that fits at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.hardware import HardwareReport
from app.models.catalog import CATALOG, CatalogEntry
from app.models.decode_speed import SpeedFigure
from app.models.fit_choice import CPU_TARGET_TOKENS_PER_S, FitChoice, choose

_SIZE_ORDER = ("3b", "10b", "28b")


@dataclass(frozen=True)
class Recommendation:
    entry: CatalogEntry
    choice: FitChoice

    @property
    def speed(self) -> SpeedFigure | None:
        """Expected decode speed on the CPU (None when it runs on a GPU: not estimated)."""
        return self.choice.speeds.get(self.choice.quant) if self.choice.device == "cpu" else None

    def sentence(self) -> str:
        where = {"gpu": "on the GPU", "partial": "partly on the GPU",
                 "cpu": "on the CPU"}.get(self.choice.device, "")
        speed = f", {self.speed.label()}" if self.speed is not None else ""
        return (f"Recommended here: {self.entry.name} with {self.choice.quant}, {where}"
                f"{speed}.")


def recommend(hardware: HardwareReport, task: str | None = None) -> Recommendation | None:
    """The mix checkpoint and quantization to get; None if not even the smallest fits."""
    size = 448 if task == "ocr" else 224
    entries = sorted((e for e in CATALOG if e.kind == "mix" and e.image_size == size),
                     key=lambda e: _SIZE_ORDER.index(e.params))
    fitting = [(e, choose(e, hardware)) for e in entries]
    fitting = [(e, c) for e, c in fitting if c.fits]
    if not fitting:
        return None
    good = [(e, c) for e, c in fitting if c.device == "gpu" or (
        c.device == "cpu" and c.speeds[c.quant].tokens_per_s >= CPU_TARGET_TOKENS_PER_S)]
    entry, choice = good[-1] if good else fitting[0]
    return Recommendation(entry, choice)
