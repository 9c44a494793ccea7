"""How large a context every face creates: one rule, here beside the engine so the
evaluation runners below the core use it too (``app.session.load_plan`` applies it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the engine module loads llama.cpp: imported when a face is about to load
    from app.engine.engine import EngineConfig

# The smallest room for new tokens a context gets: run, batch and eval with a small
# --max-tokens still get the context the tests and benchmarks measured.
MIN_NEW_TOKEN_ROOM = 512


def context_new_tokens(max_new_tokens: int | None = None) -> int:
    """How many new tokens the engine's context holds.

    ``None``: the limit may change from one job to the next without a reload (the window,
    the server), so the context holds the largest limit the settings allow. A face whose
    limit is fixed for the engine's life (run, batch, eval, the speed test) passes it and
    gets ``max(512, n)``, which saves memory. The answer does not depend on the size:
    llama.cpp attends over the cells in use, not the whole context
    (tests/test_core_rules.py checks the tokens).
    """
    if max_new_tokens is None:
        from app.engine.engine import MAX_NEW_TOKENS_LIMIT

        return MAX_NEW_TOKENS_LIMIT
    return max(MIN_NEW_TOKEN_ROOM, max_new_tokens)


def engine_config(gpu_layers: int = 0, threads: int | None = None,
                  max_new_tokens: int | None = None) -> EngineConfig:
    """The EngineConfig every face loads with (``gpu_layers`` -1 = all, 0 = CPU)."""
    from app.engine.engine import EngineConfig

    return EngineConfig(gpu_layers=gpu_layers, threads=threads,
                        max_new_tokens_limit=context_new_tokens(max_new_tokens))
