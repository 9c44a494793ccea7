"""What ``Engine.generate`` streams: a TokenEvent per new token, then one ResultEvent."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from app.errors import TaskError


@dataclass(frozen=True)
class Timings:
    """Seconds, except ``decode_tokens_per_s``. ``image_cached`` means encode was skipped."""

    image_encode_s: float
    prefill_s: float
    first_token_s: float  # from the call to the first token (encode + prefill + 1 sample)
    decode_s: float
    decode_tokens_per_s: float
    prefix_tokens: int
    image_cached: bool

    def to_dict(self) -> dict[str, float | int | bool]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class TokenEvent:
    """One generated token; ``text`` is the new text it completes (may be "" mid-UTF-8)."""

    token_id: int
    text: str
    index: int


@dataclass(frozen=True)
class ResultEvent:
    """The finished generation. ``stop_reason``: "eos", "max_tokens" or "cancelled"."""

    tokens: list[int]
    text: str  # special tokens rendered (e.g. "<loc0123>", "<eos>")
    prompt: str
    prompt_tokens: list[int]  # BOS + prompt + "\n" as fed after the image rows
    stop_reason: str
    timings: Timings
    image_size: tuple[int, int] = field(default=(0, 0))


@dataclass(frozen=True)
class GenerationOptions:
    """Greedy by default (temperature 0), like the reference."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0  # negative: a new random seed
    stop_at_eos: bool = True

    def __post_init__(self) -> None:
        # NaN compares false with everything, so "nan <= 0" would silently sample.
        if self.max_new_tokens < 1:
            raise TaskError(f"At least 1 new token must be allowed, not {self.max_new_tokens}.")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise TaskError(f"The temperature must be a number of 0 or more, not "
                            f"{self.temperature}.")
        if self.top_k < 0:
            raise TaskError(f"top-k must be 0 (no limit) or more, not {self.top_k}.")
        if not math.isfinite(self.top_p) or not 0 < self.top_p <= 1:
            raise TaskError(f"top-p must be above 0 and at most 1, not {self.top_p}.")
