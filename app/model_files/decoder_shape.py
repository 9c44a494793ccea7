"""The shapes of a Gemma 2 decoder, one record wherever they come from.

The converter reads them from a checkpoint's config and tensors, the fit estimate from a
GGUF header, the catalog from the published configs (engine doc §1); each adds what it
alone needs (norm epsilons, byte counts, vision sizes) to this one set of fields.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class DecoderShape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab_rows: int  # rows of token_embd (the vocabulary padded, e.g. 257216)
    sliding_window: int


def shape_fields(source: object) -> dict[str, int]:
    """``DecoderShape``'s fields read from any record that has them (the catalog's dims,
    a layout), as keywords to build another record that extends ``DecoderShape``."""
    return {f.name: getattr(source, f.name) for f in fields(DecoderShape)}
