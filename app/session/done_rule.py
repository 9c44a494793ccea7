"""The one "already done" rule, for the window's history and ``palidesk batch --resume``.

A stored result answers a new job when both were made on the same image bytes, with the
same prompt, model pair, quantization and options key (``identity.options_key``), and the
stored one is what the new limit on new tokens would give: it ended on its own within the
new limit, or it was cut at exactly that limit (a higher limit would let it go on).

Results written before the options were recorded read as greedy runs with an unknown
limit (``made_with_max`` 0): the history's and the batch files' defaults.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

GREEDY = "greedy"  # the options key of every greedy run; what old results read as


def ended_within(stop_reason: str, token_count: int, made_with_max: int,
                 max_new_tokens: int) -> bool:
    """Whether a finished result is what a run limited to ``max_new_tokens`` would give.

    ``made_with_max`` is the limit the stored run had (0 = not recorded: then a result
    cut at the limit counts when its length equals the new limit)."""
    if stop_reason == "cancelled":
        return False
    if stop_reason == "max_tokens":
        return made_with_max == max_new_tokens or (
            made_with_max == 0 and token_count == max_new_tokens)
    return token_count <= max_new_tokens


def work_key(image_sha256: str | None, image: str, prompt: str, pair_id: str, quant: str,
             options: str = GREEDY) -> bytes:
    """A 16-byte key of (image bytes, prompt, model pair, quantization, options key).

    An image that could not be read has no digest; its path stands in for the bytes, so
    the same missing or unreadable file is not retried on every resume, while a repaired
    file (new bytes, new digest) is. 16-byte BLAKE2b digests: a million fit in ~100 MB.
    """
    subject = image_sha256 if image_sha256 else f"unreadable:{image}"
    return key_of(subject, prompt, pair_id, quant.upper(), options or GREEDY)


def record_work_key(record: Mapping[str, object]) -> bytes:
    """``work_key`` of a batch record (``run --json`` plus the identity fields); records
    written before options were recorded read as greedy. KeyError if a field is missing."""
    sha = record["image_sha256"]
    return work_key(None if sha is None else str(sha), str(record["image"]),
                    str(record["prompt"]), str(record["model_id"]),
                    str(record["quantization"]), str(record.get("options_key") or GREEDY))


def record_answers(record: Mapping[str, object], max_new_tokens: int) -> bool:
    """Whether a batch record with the same work key answers a job with this limit.

    A failure line (``error``) does, whatever the limit: the file could not be read or
    the engine refused it, which another limit does not change."""
    if "error" in record:
        return True
    tokens = record.get("tokens") or []
    return ended_within(str(record.get("stop_reason") or ""),
                        len(tokens) if isinstance(tokens, list) else 0,
                        int(record.get("max_new_tokens") or 0), max_new_tokens)


def key_of(*parts: str) -> bytes:
    """The 16-byte key of ``parts`` (the work key's, and batch's per-path entry key)."""
    # surrogatepass: a file name that is not valid UTF-8 still has a key (its own).
    return hashlib.blake2b("\0".join(parts).encode("utf-8", "surrogatepass"),
                           digest_size=16).digest()
