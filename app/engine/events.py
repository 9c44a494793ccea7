"""What ``Engine.generate`` streams: a TokenEvent per new token, then one ResultEvent."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


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
    seed: int = 0
    stop_at_eos: bool = True
