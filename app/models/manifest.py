"""``manifest.json``: what a model folder holds, written by the converter and quantizer."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from app.errors import ModelFolderError

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


def sha256_of(path: Path, chunk: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def describe_file(path: Path, role: str, type_: str) -> ModelFile:
    return ModelFile(role, type_, path.name, path.stat().st_size, sha256_of(path))


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Write atomically, so a reader never sees half a manifest."""
    target = folder / MANIFEST_NAME
    temp = target.with_name(target.name + ".partial")
    temp.write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    os.replace(temp, target)


def read_manifest(folder: Path) -> Manifest:
    path = Path(folder) / MANIFEST_NAME
    if not path.exists():
        raise ModelFolderError(
            f"{folder} is not a PaliDesk model folder (no {MANIFEST_NAME}). Convert a "
            "checkpoint with `palidesk convert` first."
        )
    try:
        data = json.loads(path.read_text())
        files = [ModelFile(**f) for f in data.pop("files", [])]
        if data.get("format", 0) > MANIFEST_FORMAT:
            raise ModelFolderError(
                f"{path} was written by a newer PaliDesk (format {data['format']}); update "
                "PaliDesk to use it."
            )
        return Manifest(files=files, **data)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelFolderError(f"{path} is damaged ({exc}). Convert the model again.") from exc
