"""One JSON line that is always valid UTF-8, whatever file names it carries.

On Linux a file name is bytes; one that is not valid UTF-8 reaches Python as a string
with lone surrogates (``os.fsdecode``'s surrogateescape), which ``ensure_ascii=False``
cannot encode as UTF-8: writing it raised UnicodeEncodeError (stopping a batch) or, on a
stream that escapes surrogates, wrote the raw bytes (a line no JSON reader accepts).
Such a record is written with ``\\uXXXX`` escapes instead: valid JSON, and ``json.loads``
gives back the very string that opens the file.
"""

from __future__ import annotations

import json
from typing import Any


def json_line(record: Any) -> str:
    """``json.dumps(record)`` (no newline), readable UTF-8 where it can be."""
    text = json.dumps(record, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(record, ensure_ascii=True)
    return text
