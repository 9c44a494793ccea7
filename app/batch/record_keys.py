"""What makes two batch records "the same work": the keys ``--resume`` compares.

The *content key* is the core's work key (``app.session.done_rule``): image bytes, prompt,
model pair, quantization and options key, the same rule as the window's "already done".
Two files with identical bytes share it, and the second is copied from the first instead
of being run again. The *entry key* adds the image's path: one answer per path and work.
Whether a record with the right key also fits the job's max-tokens limit is decided when
the file is read (``ResultsLog``), with ``done_rule.record_answers``.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.errors import PaliDeskError
from app.session.done_rule import key_of, record_work_key, work_key

# Fields every batch record carries, on top of ``run --json``'s. ``options_key`` and
# ``max_new_tokens`` came later: a record without them reads as greedy, limit unknown.
KEY_FIELDS = ("image", "image_sha256", "prompt", "model_id", "quantization", "options_key",
              "max_new_tokens")


class ResultsFileError(PaliDeskError):
    """The results file cannot be used (not ours, damaged, in use, unwritable)."""


content_key = work_key


def entry_key(content: bytes, image: str) -> bytes:
    """The key of (content key, path): one record per path and content."""
    return key_of(content.hex(), image)


def keys_of(record: Mapping[str, object]) -> tuple[bytes, bytes]:
    """(content key, entry key) of a batch record; KeyError if a field is missing."""
    content = record_work_key(record)
    return content, entry_key(content, str(record["image"]))
