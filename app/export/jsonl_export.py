"""Results as JSON Lines: one complete record per line, raw output included."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from app.export.atomic_write import write_text_atomic
from app.export.export_summary import ExportSummary
from app.history.history_record import HistoryRecord


def export_jsonl(records: Iterable[HistoryRecord], path: Path | str) -> ExportSummary:
    """Write one JSON object per record (``HistoryRecord.to_dict()``) to ``path``.

    Raises ``ExportError`` if the file cannot be written.
    """
    target = Path(path)
    lines = [json.dumps(record.to_dict(), ensure_ascii=False) + "\n" for record in records]
    write_text_atomic(target, "".join(lines))
    return ExportSummary(written=[target])
