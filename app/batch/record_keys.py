"""What makes two batch records "the same work": the keys ``--resume`` compares.

A result depends on the image's bytes, the prompt, the model and its quantization, so
those four make the *content key*: two files with identical bytes share it, and the
second is copied from the first instead of being run again. The *entry key* adds the
image's path: one line per path, so a resumed or repeated run never writes a path twice.
Keys are 16-byte BLAKE2b digests so a million of them fit in ~100 MB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from app.errors import PaliDeskError

# Fields every batch record carries, on top of ``run --json``'s.
KEY_FIELDS = ("image", "image_sha256", "prompt", "model_id", "quantization")


class ResultsFileError(PaliDeskError):
    """The results file cannot be used (not ours, damaged, in use, unwritable)."""


def content_key(image_sha256: str | None, image: str, prompt: str, model_id: str,
                quantization: str) -> bytes:
    """The key of (image bytes, prompt, model, quantization).

    An image that could not be read has no digest; its path stands in for the bytes, so
    the same missing or unreadable file is not retried on every resume, while a
    repaired file (new bytes, new digest) is.
    """
    subject = image_sha256 if image_sha256 else f"unreadable:{image}"
    return _digest(subject, prompt, model_id, quantization.upper())


def entry_key(content: bytes, image: str) -> bytes:
    """The key of (content key, path): one record per path and content."""
    return _digest(content.hex(), image)


def keys_of(record: Mapping[str, object]) -> tuple[bytes, bytes]:
    """(content key, entry key) of a batch record; KeyError if a field is missing."""
    image = str(record["image"])
    sha = record["image_sha256"]
    content = content_key(None if sha is None else str(sha), image, str(record["prompt"]),
                          str(record["model_id"]), str(record["quantization"]))
    return content, entry_key(content, image)


def _digest(*parts: str) -> bytes:
    # surrogatepass: a file name that is not valid UTF-8 still has a key (its own).
    return hashlib.blake2b("\0".join(parts).encode("utf-8", "surrogatepass"),
                           digest_size=16).digest()
