"""Results as a spreadsheet: one row per result."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path

from app.export.atomic_write import write_text_atomic
from app.export.export_summary import ExportSummary
from app.export.record_selection import clean_output_text
from app.history.history_record import HistoryRecord

CSV_COLUMNS = ("image", "task", "prompt", "text", "objects", "model", "quantization", "created")


def export_csv(records: Iterable[HistoryRecord], path: Path | str) -> ExportSummary:
    """Write a CSV with a header and one row per record to ``path``.

    ``text`` is the output without ``<eos>``-style markers; ``objects`` is a JSON list
    of ``DetectedObject.to_dict()``. Raises ``ExportError`` if the file cannot be written.
    """
    target = Path(path)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for record in records:
        writer.writerow(
            (
                record.image_path,
                record.task,
                record.prompt,
                clean_output_text(record.text),
                json.dumps([obj.to_dict() for obj in record.objects], ensure_ascii=False),
                record.model,
                record.quantization,
                record.created,
            )
        )
    write_text_atomic(target, buffer.getvalue())
    return ExportSummary(written=[target])
