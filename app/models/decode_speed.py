"""Expected decode speed on the CPU: tokens/s from the bytes read per token.

Decoding one token reads every weight of the decoder once, plus the whole token table
again for the output head (PaliGemma ties it to the input embedding), so on a CPU the
speed is about ``bandwidth / bytes per token``. ``CPU_BANDWIDTH`` is the effective rate
llama.cpp reaches, not the memory's peak: measured here at 24 GB/s (14 tok/s for the 3B
Q4_K_M, 65 % of the 37 GB/s this machine's memory reads; docs/benchmarks.md), and taken
as 20 GB/s for a typical desktop. Once a speed test has measured any quantization on this
machine, the bandwidth it implies replaces the default. Every such figure is an estimate
and is labelled so; a measured one is shown as measured.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

CPU_BANDWIDTH = 20e9  # bytes/s llama.cpp reads on a typical desktop CPU (see above)


def bytes_per_token(text_layer_bytes: tuple[int, ...], token_embd_bytes: int,
                    output_norm_bytes: int) -> int:
    """Weights read to decode one token: all blocks, the output norm and the tied head."""
    return sum(text_layer_bytes) + token_embd_bytes + output_norm_bytes


@dataclass(frozen=True)
class SpeedFigure:
    tokens_per_s: float
    source: Literal["measured", "estimated"]

    def label(self) -> str:
        if self.source == "measured":
            return f"{self.tokens_per_s:.1f} tok/s measured here"
        return f"~{self.tokens_per_s:.1f} tok/s estimated"


def cpu_bandwidth(per_token: Mapping[str, int], measured: Mapping[str, float]) -> float:
    """The effective bandwidth: implied by measured figures when there are any."""
    implied = [measured[q] * per_token[q] for q in measured
               if q in per_token and measured[q] > 0]
    return statistics.median(implied) if implied else CPU_BANDWIDTH


def cpu_speeds(per_token: Mapping[str, int],
               measured: Mapping[str, float] | None = None) -> dict[str, SpeedFigure]:
    """Quantization -> decode speed on the CPU: measured where known, else estimated."""
    measured = {q.upper(): v for q, v in (measured or {}).items() if v}
    bandwidth = cpu_bandwidth(per_token, measured)
    return {q: SpeedFigure(measured[q], "measured") if q in measured
            else SpeedFigure(bandwidth / b, "estimated") for q, b in per_token.items()}
