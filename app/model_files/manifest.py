"""``manifest.json``: what a model folder holds, written by the converter and quantizer."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from app import file_errors
from app.atomic_files import write_text_atomic
from app.errors import ModelFolderError
from app.file_digest import file_sha256

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1


@dataclass
class ModelFile:
    """One GGUF file of the folder: ``role`` is "text" or "vision"; ``type`` e.g. "Q4_K_M"."""

    role: str
    type: str
    name: str
    size: int
    sha256: str


@dataclass
class Manifest:
    source: dict
    image_size: int
    image_tokens: int
    pair_id: str
    converter_version: str
    text: dict
    vision: dict
    files: list[ModelFile] = field(default_factory=list)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    format: int = MANIFEST_FORMAT

    def file(self, role: str, type_: str) -> ModelFile | None:
        for entry in self.files:
            if entry.role == role and entry.type.upper() == type_.upper():
                return entry
        return None

    def put_file(self, entry: ModelFile) -> None:
        """Add ``entry``, replacing any file of the same role and type."""
        self.files = [f for f in self.files if not (f.role == entry.role and f.type == entry.type)]
        self.files.append(entry)


def describe_file(path: Path, role: str, type_: str) -> ModelFile:
    return ModelFile(role, type_, path.name, path.stat().st_size, file_sha256(path))


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Write atomically, so a reader never sees half a manifest. Raises ModelFolderError."""
    target = Path(folder) / MANIFEST_NAME
    try:
        write_text_atomic(target, json.dumps(asdict(manifest), indent=2) + "\n")
    except OSError as exc:
        raise ModelFolderError(file_errors.sentence(
            exc, f"write {target}", target, "The model folder is unchanged.")) from exc


def read_manifest(folder: Path) -> Manifest:
    path = Path(folder) / MANIFEST_NAME
    if not path.exists():
        raise ModelFolderError(
            f"{folder} is not a PaliDesk model folder (no {MANIFEST_NAME}). Convert a "
            "checkpoint with `palidesk convert` first."
        )
    try:
        data = json.loads(path.read_text())
        if isinstance(data, dict) and isinstance(data.get("format"), int) \
                and data["format"] > MANIFEST_FORMAT:
            raise ModelFolderError(
                f"{path} was written by a newer PaliDesk (format {data['format']}); update "
                "PaliDesk to use it."
            )
        _check_shape(data)
        files = [ModelFile(**f) for f in data.pop("files", [])]
        return Manifest(files=files, **data)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelFolderError(f"{path} is damaged ({exc}). Convert the model again.") from exc


def _check_shape(data: object) -> None:
    """Refuse JSON that parses but is not a manifest (``null``, a list, wrong field types)."""
    if not isinstance(data, dict):
        raise ValueError("it does not hold a manifest")
    for key in ("source", "text", "vision"):
        if not isinstance(data.get(key), dict):
            raise ValueError(f"its {key!r} field is missing or not a set of values")
    for key in ("image_size", "image_tokens"):
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"its {key!r} field is not a positive whole number")
    files = data.get("files", [])
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise ValueError("its 'files' field is not a list of files")
    for f in files:
        if not isinstance(f.get("size"), int) or not isinstance(f.get("name"), str):
            raise ValueError("a file entry has no name or size")
        if Path(f["name"]).name != f["name"]:
            raise ValueError(f"the file name {f['name']!r} points outside the folder")
