"""Segment masks as PNG files: one black-and-white PNG per object, plus an index.

One file per object (rather than one indexed PNG per image) because PaliGemma's objects
may overlap: an indexed image keeps one label per pixel and would cut the earlier object
where a later one covers it. Each PNG is 8-bit grey, the image's size, 255 inside the
object and 0 outside, named ``<image stem>-<NN>-<label>.png`` (NN counts the image's
masked objects from 01). ``masks.json`` lists every file with its image, label and box.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from app.export.atomic_write import export_error, make_folder, write_text_atomic
from app.export.export_summary import ExportSummary
from app.export.file_names import unique_stems
from app.export.record_selection import spatial_records
from app.history.history_record import HistoryRecord

INDEX_FILE = "masks.json"
_UNSAFE = re.compile(r"[^\w-]+")


def export_mask_pngs(records: Iterable[HistoryRecord], out_dir: Path | str) -> ExportSummary:
    """Write one PNG per object that has a mask, and ``masks.json``, into ``out_dir``.

    Objects without a mask (detections; segment runs without the decoder) are left out.
    Raises ``ExportError``.
    """
    folder = Path(out_dir)
    chosen = [record for record in spatial_records(records)
              if any(obj.mask is not None for obj in record.objects)]
    stems = unique_stems((record.image_path for record in chosen), reserved={"masks"})
    make_folder(folder)
    summary = ExportSummary()
    index: list[dict[str, object]] = []
    counters: dict[str, int] = {}
    for record in chosen:
        for obj in record.objects:
            if obj.mask is None:
                continue
            counters[record.image_path] = number = counters.get(record.image_path, 0) + 1
            label = _UNSAFE.sub("_", obj.label).strip("_")[:40] or "object"
            target = folder / f"{stems[record.image_path]}-{number:02d}-{label}.png"
            pixels = obj.mask.to_array().astype("uint8") * 255
            _write_png(Image.fromarray(pixels), target)  # uint8 2-D: mode "L"
            summary.written.append(target)
            index.append({"file": target.name, "image": record.image_path,
                          "label": obj.label, "box": [round(v, 2) for v in obj.box],
                          "area": obj.mask.area})
    index_path = folder / INDEX_FILE
    write_text_atomic(index_path, json.dumps(index, indent=2, ensure_ascii=False) + "\n")
    summary.written.append(index_path)
    return summary


def _write_png(image: Image.Image, target: Path) -> None:
    temp = target.with_name(f".{target.name}.tmp")
    try:
        image.save(temp, format="PNG", optimize=True)
        temp.replace(target)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise export_error(exc, target) from exc
