"""Which model made a result, and which generation options change what comes out.

One identity for every face: the window's jobs, ``palidesk batch`` (its records and every
Ray worker, so it is plain picklable data) and the server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.engine.events import GenerationOptions

if TYPE_CHECKING:
    from app.model_files.model_folder import ModelPair


@dataclass(frozen=True)
class ModelIdentity:
    """The model a job runs on: the converted pair (``pair_id``, written into both GGUF
    files at conversion, identifies the checkpoint wherever its folder lives), its display
    name and its quantization. ``folder`` is where it was loaded from ("" when unknown):
    absolute but not resolved, so a symlink such as /shared/models stays the path that Ray
    workers open, and a worker whose folder holds another model is caught by ``pair_id``.
    """

    pair_id: str
    name: str
    quant: str
    folder: str = ""

    @classmethod
    def of(cls, pair: ModelPair, name: str | None = None) -> ModelIdentity:
        """The identity of a resolved pair; ``name`` defaults to its folder's name."""
        return cls(pair.pair_id, name or pair.folder.name, pair.quant,
                   os.path.abspath(pair.folder))

    def describe(self) -> str:
        return f"{self.name} · {self.quant}"


def options_key(options: GenerationOptions) -> str:
    """The options that change the tokens for a given prompt, as a stable string.

    Greedy decoding ignores the seed and the sampling cut-offs, so every greedy run has
    one key; ``max_new_tokens`` is not part of it (a stored result is reused when it ended
    on its own within the new limit, see ``app.session.done_rule``).
    """
    if options.temperature <= 0:
        return "greedy"
    return (f"sample:t={options.temperature:g}:k={options.top_k}:p={options.top_p:g}"
            f":seed={options.seed}")
