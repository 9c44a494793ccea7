"""A converted model folder: which files it holds, which pair to load, and that they match."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.errors import ModelFolderError
from app.model_files import gguf_keys as keys
from app.model_files.gguf_header import GGUFHeader, read_gguf_header
from app.model_files.manifest import Manifest, ModelFile, read_manifest
from app.model_files.verification import check_size

# Highest quality first: "the best file present" when no quantization is asked for.
QUALITY_ORDER = ("F32", "BF16", "F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0",
                 "Q3_K_M", "Q2_K")


@dataclass(frozen=True)
class ModelPair:
    """The two files to load together, with their already-read headers."""

    folder: Path
    quant: str
    text: GGUFHeader
    vision: GGUFHeader

    @property
    def image_size(self) -> int:
        return int(self.text.get(keys.IMAGE_SIZE))  # type: ignore[call-overload]

    @property
    def image_tokens(self) -> int:
        return int(self.text.get(keys.IMAGE_TOKENS))  # type: ignore[call-overload]

    @property
    def pair_id(self) -> str:
        return str(self.text.get(keys.PAIR_ID))


class ModelFolder:
    """Read-only view of a folder written by ``palidesk convert`` / ``palidesk quantize``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.manifest: Manifest = read_manifest(self.path)

    def text_types(self) -> list[str]:
        """Text quantizations present on disk, best first."""
        present = [f.type.upper() for f in self.manifest.files
                   if f.role == "text" and (self.path / f.name).exists()]
        return sorted(present, key=lambda t: QUALITY_ORDER.index(t)
                      if t in QUALITY_ORDER else len(QUALITY_ORDER))

    def vision_file(self) -> ModelFile:
        files = [f for f in self.manifest.files
                 if f.role == "vision" and (self.path / f.name).exists()]
        if not files:
            raise ModelFolderError(f"{self.path} has no vision (mmproj) file.")
        # F16 is what the converter writes by default and what parity was proven for.
        files.sort(key=lambda f: (f.type.upper() != "F16", f.type.upper() != "F32"))
        return files[0]

    def resolve(self, quant: str | None = None) -> ModelPair:
        """Pick the text file for ``quant`` (case-insensitive; None = best present) and the
        vision file, and check that the two belong together."""
        available = self.text_types()
        if not available:
            raise ModelFolderError(f"{self.path} has no text model file.")
        chosen = available[0] if quant is None else quant.upper()
        if chosen not in available and chosen not in QUALITY_ORDER:
            # Not a type at all (a typo, a path): no `quantize --type` could make it.
            raise ModelFolderError(
                f"{quant!r} is not a quantization type; {self.path.name} holds: "
                f"{', '.join(available)} (types: {', '.join(QUALITY_ORDER)})."
            )
        if chosen not in available:
            raise ModelFolderError(
                f"{self.path.name} has no {chosen} text file; present: {', '.join(available)}. "
                f"Create it with `palidesk quantize {self.path} --type {chosen}`."
            )
        text_entry = self.manifest.file("text", chosen)
        assert text_entry is not None
        vision_entry = self.vision_file()
        for entry in (text_entry, vision_entry):
            check_size(self.path, entry)
        text = read_gguf_header(self.path / text_entry.name)
        vision = read_gguf_header(self.path / vision_entry.name)
        check_pair(text, vision)
        return ModelPair(self.path, chosen, text, vision)


def check_pair(text: GGUFHeader, vision: GGUFHeader) -> None:
    """Refuse a text/vision pair that was not converted together."""
    if text.get("general.architecture") != "gemma2":
        raise ModelFolderError(f"{text.path.name} is not a Gemma 2 text model.")
    if vision.get("clip.projector_type") != "janus_pro":
        raise ModelFolderError(f"{vision.path.name} is not a PaliDesk vision file.")
    text_id, vision_id = text.get(keys.PAIR_ID), vision.get(keys.PAIR_ID)
    if text_id is None or vision_id is None:
        raise ModelFolderError(
            "These files were not converted by PaliDesk (no pairing information); convert "
            "the checkpoint with `palidesk convert`."
        )
    if text_id != vision_id:
        raise ModelFolderError(
            f"{text.path.name} and {vision.path.name} come from different checkpoints "
            "and cannot be used together."
        )
    for key in (keys.IMAGE_SIZE, keys.IMAGE_TOKENS, keys.TEXT_HIDDEN):
        if text.get(key) != vision.get(key):
            raise ModelFolderError(
                f"{text.path.name} and {vision.path.name} disagree on {key}."
            )
