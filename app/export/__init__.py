"""Exporting results (history records) to files other tools read."""

from app.export.caption_export import export_captions_beside_images
from app.export.coco_export import coco_dataset, export_coco
from app.export.csv_export import CSV_COLUMNS, export_csv
from app.export.export_summary import ExportSummary
from app.export.jsonl_export import export_jsonl
from app.export.mask_png_export import export_mask_pngs
from app.export.record_selection import clean_output_text
from app.export.yolo_export import export_yolo
from app.export.yolo_seg_export import export_yolo_seg

__all__ = [
    "CSV_COLUMNS",
    "ExportSummary",
    "clean_output_text",
    "coco_dataset",
    "export_captions_beside_images",
    "export_coco",
    "export_csv",
    "export_jsonl",
    "export_mask_pngs",
    "export_yolo",
    "export_yolo_seg",
]
