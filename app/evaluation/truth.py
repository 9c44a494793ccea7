"""Reading labelled images ("truth"): COCO JSON, a YOLO folder, or a JSONL of answers.

Spatial truth (detect, segment) becomes one COCO-shaped dataset whatever the format, so
the metrics code has one input. Text truth (ocr, caption, ask) becomes a list of
reference strings per image.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from app.engine.image_files import IMAGE_SUFFIXES
from app.errors import PaliDeskError


class TruthError(PaliDeskError):
    """The truth file or folder cannot be read or is not in a known format."""


@dataclass(frozen=True)
class TruthImage:
    id: int
    file_name: str  # as the truth names it (may hold sub-folders)
    width: int
    height: int


@dataclass
class SpatialTruth:
    """Boxes (and masks) in COCO's shape: ``bbox`` is [x, y, width, height] in pixels."""

    images: list[TruthImage]
    categories: dict[int, str]
    annotations: list[dict[str, Any]]
    has_masks: bool = False

    def category_by_name(self) -> dict[str, int]:
        """Lower-cased, stripped category name -> id (labels match case-insensitively)."""
        return {name.strip().lower(): cid for cid, name in self.categories.items()}


@dataclass
class TextTruth:
    """Reference answers per image file name (several are allowed per image)."""

    answers: dict[str, list[str]] = field(default_factory=dict)


def load_spatial_truth(path: Path) -> SpatialTruth:
    """COCO detection/segmentation JSON, or a YOLO folder (images/, labels/, class names)."""
    path = Path(path)
    if path.is_dir():
        return _load_yolo(path)
    if not path.exists():
        raise TruthError(f"The truth file {path} does not exist.")
    if not path.is_file():
        raise TruthError(f"The truth {path} is not a regular file.")
    if path.suffix.lower() != ".json":
        raise TruthError(
            f"{path.name} is not a COCO JSON file or a YOLO folder: give a .json file with "
            "images, categories and annotations, or a folder with images/ and labels/."
        )
    return _load_coco(path)


def load_text_truth(path: Path, task: str) -> TextTruth:
    """JSONL lines ``{"image": ..., "answers": [...]}`` (ask) or ``{"image": ..., "text": ...}``
    (ocr, caption; ``text`` may also be a list of references)."""
    path = Path(path)
    check_input_file(path, "truth file", "a JSONL file of answers")
    truth = TextTruth()
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        record = parse_json(line, f"{path.name} line {number}")
        if not isinstance(record, dict) or not isinstance(record.get("image"), str):
            raise TruthError(f"{path.name} line {number} has no \"image\" file name.")
        key = "answers" if task == "ask" else "text"
        value = record.get(key, record.get("answers" if key == "text" else "text"))
        references = [value] if isinstance(value, str) else value
        if not isinstance(references, list) or not all(isinstance(v, str) for v in references):
            raise TruthError(
                f"{path.name} line {number} needs \"{key}\" as "
                f"{'a list of strings' if key == 'answers' else 'a string'}."
            )
        if not references:
            # An image with no reference cannot be scored: every answer would count as wrong.
            raise TruthError(f"{path.name} line {number} has an empty \"{key}\" list: give "
                             "at least one reference, or leave the image out.")
        truth.answers.setdefault(record["image"], []).extend(references)
    if not truth.answers:
        raise TruthError(f"{path.name} holds no labelled images.")
    return truth


def check_input_file(path: Path, what: str, wanted: str) -> None:
    """Refuse a missing path, a folder or a device with a sentence that says which."""
    if path.is_dir():
        raise TruthError(f"The {what} {path} is a folder; give {wanted}.")
    if not path.exists():
        raise TruthError(f"The {what} {path} does not exist.")
    if not path.is_file():  # a FIFO or device could block or never end
        raise TruthError(f"The {what} {path} is not a regular file; give {wanted}.")


def parse_json(text: str, where: str) -> Any:
    """``json.loads`` whose failures (bad JSON, nesting too deep for Python) are TruthErrors."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TruthError(f"{where} is not valid JSON: {exc.msg} (line {exc.lineno}).") from None
    except RecursionError:
        raise TruthError(f"{where} is nested too deeply to be read as JSON.") from None


def _finite(value: Any, where: str) -> float:
    """``float(value)``, refusing NaN and infinity (a ValueError for what is no number)."""
    number = float(value)
    if not math.isfinite(number):
        # NaN compares false with everything: pycocotools would count such a box a match.
        raise TruthError(f"{where} holds {value!r}; boxes need finite numbers.")
    return number


# --- COCO ----------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TruthError(f"{path} cannot be read: {exc}.") from None


def _load_coco(path: Path) -> SpatialTruth:
    data = parse_json(_read_text(path), path.name)
    if not isinstance(data, dict) or not all(k in data for k in ("images", "categories")):
        raise TruthError(f"{path.name} is not COCO JSON: it needs \"images\" and \"categories\".")
    try:
        images = [TruthImage(int(i["id"]), str(i["file_name"]), int(i["width"]),
                             int(i["height"])) for i in data["images"]]
        categories = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        annotations = []
        for number, ann in enumerate(data.get("annotations", []), 1):
            where = f"{path.name}: annotation {number}'s bbox"
            x, y, w, h = (_finite(v, where) for v in ann["bbox"])
            entry = {"id": number, "image_id": int(ann["image_id"]),
                     "category_id": int(ann["category_id"]), "bbox": [x, y, w, h],
                     "area": float(ann.get("area") or w * h),
                     "iscrowd": int(ann.get("iscrowd", 0))}
            if ann.get("segmentation"):
                entry["segmentation"] = ann["segmentation"]
            annotations.append(entry)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise TruthError(
            f"{path.name} has an image, category or annotation without a needed field "
            f"({exc}); images need id, file_name, width, height; annotations image_id, "
            "category_id and bbox [x, y, width, height]."
        ) from None
    _check_coco(path.name, images, categories, annotations)
    has_masks = bool(annotations) and all("segmentation" in a for a in annotations)
    return SpatialTruth(images, categories, annotations, has_masks)


def _check_coco(name: str, images: list[TruthImage], categories: dict[int, str],
                annotations: list[dict[str, Any]]) -> None:
    """Refuse what the metrics would otherwise drop or misread without a word."""
    ids: set[int] = set()
    names: set[str] = set()
    by_id = {image.id: image for image in images}
    for image in images:
        if image.id in ids:
            raise TruthError(f"{name} lists image id {image.id} twice.")
        if image.file_name in names:
            # Predictions are matched by file name: two images of one name are ambiguous.
            raise TruthError(f"{name} lists the file name {image.file_name!r} twice; each "
                             "image needs its own name.")
        if image.width <= 0 or image.height <= 0:
            raise TruthError(f"{name}: image {image.file_name!r} has size {image.width} x "
                             f"{image.height}; width and height must be positive.")
        ids.add(image.id)
        names.add(image.file_name)
    seen: dict[str, int] = {}
    for cid, category in categories.items():
        key = category.strip().lower()
        if key in seen:
            # Labels match names ignoring case: one of the two ids could never be matched.
            raise TruthError(f"{name} names two categories {category!r} (ids {seen[key]} and "
                             f"{cid}); labels are matched by name, so names must differ.")
        seen[key] = cid
    for ann in annotations:
        where = f"{name}: annotation {ann['id']}"
        if ann["image_id"] not in ids:
            raise TruthError(f"{where} is for image_id {ann['image_id']}, which no image has.")
        if ann["category_id"] not in categories:
            raise TruthError(f"{where} has category_id {ann['category_id']}, which no "
                             "category has.")
        x, y, w, h = ann["bbox"]
        if w < 0 or h < 0:
            raise TruthError(f"{where} has a negative width or height in its bbox "
                             f"[{x:g}, {y:g}, {w:g}, {h:g}]; COCO boxes are [x, y, width, "
                             "height].")
        if not math.isfinite(ann["area"]) or ann["area"] < 0:
            raise TruthError(f"{where} has area {ann['area']}; it must be a number >= 0.")
        if "segmentation" in ann:
            _check_segmentation(ann["segmentation"], by_id[ann["image_id"]], where)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _check_segmentation(seg: Any, image: TruthImage, where: str) -> None:
    """A COCO mask pycocotools can read: polygons of finite numbers, or an RLE of the
    image's size (pycocotools itself fails on others with a TypeError or IndexError)."""
    if isinstance(seg, list):
        if all(isinstance(poly, list) and len(poly) >= 6 and len(poly) % 2 == 0
               and all(_is_number(v) for v in poly) for poly in seg):
            return
        raise TruthError(f"{where} has a segmentation that is not polygons "
                         "[[x1, y1, x2, y2, x3, y3, ...], ...] of finite numbers.")
    if not isinstance(seg, dict):
        raise TruthError(f"{where} has a segmentation that is neither polygons nor an RLE "
                         "mask {\"size\": [height, width], \"counts\": ...}.")
    size, counts = seg.get("size"), seg.get("counts")
    if size != [image.height, image.width]:
        raise TruthError(f"{where} has a mask of size {size!r}; its image "
                         f"{image.file_name!r} is [{image.height}, {image.width}] "
                         "(height, width).")
    if isinstance(counts, list):
        if all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts) \
                and sum(counts) == image.height * image.width:
            return
        raise TruthError(f"{where} has RLE counts that are not whole numbers >= 0 adding "
                         "up to the image's pixels.")
    if isinstance(counts, str):
        from pycocotools import mask as mask_utils  # only masks need it

        try:
            mask_utils.area({"size": size, "counts": counts.encode("ascii")})
            return
        except (ValueError, TypeError, UnicodeEncodeError):
            pass
    raise TruthError(f"{where} has RLE counts that cannot be read.")


# --- YOLO ----------------------------------------------------------------------------------


def _load_yolo(root: Path) -> SpatialTruth:
    images_dir, labels_dir = root / "images", root / "labels"
    if not images_dir.is_dir() or not labels_dir.is_dir():
        raise TruthError(f"{root} is not a YOLO folder: it needs images/ and labels/ inside.")
    names = _yolo_names(root)
    files = sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise TruthError(f"{images_dir} holds no images.")
    images: list[TruthImage] = []
    annotations: list[dict[str, Any]] = []
    polygons_seen = boxes_seen = 0
    for image_id, file in enumerate(files, 1):
        relative = file.relative_to(images_dir)
        try:
            with Image.open(file) as im:
                width, height = im.size
        except OSError as exc:
            raise TruthError(f"{file} cannot be opened as an image: {exc}.") from None
        images.append(TruthImage(image_id, relative.as_posix(), width, height))
        label_file = labels_dir / relative.with_suffix(".txt")
        if not label_file.exists():
            continue  # an image without a label file has no objects (YOLO's convention)
        for number, line in enumerate(_read_text(label_file).splitlines(), 1):
            if not line.strip():
                continue
            ann = _yolo_line(line, names, width, height, f"{label_file.name} line {number}")
            ann.update(id=len(annotations) + 1, image_id=image_id)
            polygons_seen += "segmentation" in ann
            boxes_seen += "segmentation" not in ann
            annotations.append(ann)
    return SpatialTruth(images, dict(enumerate(names)), annotations,
                        has_masks=polygons_seen > 0 and boxes_seen == 0)


def _yolo_names(root: Path) -> list[str]:
    classes = root / "classes.txt"
    if classes.exists():
        return [line.strip() for line in _read_text(classes).splitlines() if line.strip()]
    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        if (root / name).exists():
            import yaml  # PyYAML: only YOLO folders need it

            try:
                data = yaml.safe_load(_read_text(root / name))
            except yaml.YAMLError as exc:
                raise TruthError(f"{name} is not valid YAML: {exc}.") from None
            found = data.get("names") if isinstance(data, dict) else None
            if isinstance(found, dict):
                return [str(found[k]) for k in sorted(found, key=int)]
            if isinstance(found, list):
                return [str(n) for n in found]
            raise TruthError(f"{name} has no \"names\" list of classes.")
    raise TruthError(f"{root} has no classes.txt or data.yaml naming the classes.")


def _yolo_line(line: str, names: list[str], width: int, height: int,
               where: str) -> dict[str, Any]:
    try:
        values = [_finite(v, where) for v in line.split()]
    except ValueError:
        raise TruthError(f"{where} is not numbers: {line.strip()!r}.") from None
    cls = int(values[0]) if values and values[0].is_integer() else -1
    if not 0 <= cls < len(names):
        raise TruthError(f"{where} names class {values[0] if values else '?'}, "
                         f"but there are {len(names)} classes.")
    coords = values[1:]
    if len(coords) == 4:  # centre x, centre y, width, height, as shares of the image
        cx, cy, w, h = coords
        if w < 0 or h < 0:
            raise TruthError(f"{where} has a negative width or height: {line.strip()!r}.")
        box = [(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height]
        return {"category_id": cls, "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
    if len(coords) >= 6 and len(coords) % 2 == 0:  # a polygon: x1 y1 x2 y2 ...
        points = [v * (width if i % 2 == 0 else height) for i, v in enumerate(coords)]
        xs, ys = points[0::2], points[1::2]
        box = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        return {"category_id": cls, "bbox": box, "area": box[2] * box[3], "iscrowd": 0,
                "segmentation": [points]}
    raise TruthError(f"{where} needs a class and 4 box values or a polygon, got {line.strip()!r}.")
