"""Which model made a result, and which generation options change what comes out."""

from __future__ import annotations

from dataclasses import dataclass

from app.engine.events import GenerationOptions


@dataclass(frozen=True)
class ModelIdentity:
    """The model a job runs on: the converted pair (``pair_id`` ties the text and vision
    files written together), its display name and its quantization."""

    pair_id: str
    name: str
    quant: str

    def describe(self) -> str:
        return f"{self.name} · {self.quant}"


def options_key(options: GenerationOptions) -> str:
    """The options that change the tokens for a given prompt, as a stable string.

    Greedy decoding ignores the seed and the sampling cut-offs, so every greedy run has
    one key; ``max_new_tokens`` is not part of it (a stored result is reused when it ended
    on its own within the new limit, see ``ResultStore.find_done``).
    """
    if options.temperature <= 0:
        return "greedy"
    return (f"sample:t={options.temperature:g}:k={options.top_k}:p={options.top_p:g}"
            f":seed={options.seed}")
