"""One stored result: what ran on which image with which model, and what came out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.file_digest import file_sha256
from app.tasks.mask_rle import ObjectMask
from app.tasks.parsing import DetectedObject

if TYPE_CHECKING:  # importing task_runner at run time would load llama.cpp
    from app.tasks.task_runner import TaskResult


def utc_now() -> str:
    """The current time as ISO 8601 UTC text, e.g. ``2025-01-31T12:00:00+00:00``."""
    return datetime.now(UTC).isoformat(timespec="seconds")



def object_from_dict(data: Mapping[str, Any]) -> DetectedObject:
    """Rebuild a DetectedObject from ``DetectedObject.to_dict()`` output."""
    x_min, y_min, x_max, y_max = (float(value) for value in data["box"])
    y_lo, x_lo, y_hi, x_hi = (int(value) for value in data["loc"])
    seg_codes = data.get("seg_codes")
    return DetectedObject(
        label=str(data["label"]),
        box=(x_min, y_min, x_max, y_max),
        loc=(y_lo, x_lo, y_hi, x_hi),
        seg_codes=None if seg_codes is None else tuple(int(code) for code in seg_codes),
        mask=ObjectMask.from_dict(data.get("mask")),  # absent in records made before masks
    )


@dataclass(frozen=True, kw_only=True)
class HistoryRecord:
    """A result as the history keeps it; ``id`` is None until ``HistoryStore.add``.

    ``image_sha256`` is "" when the image file could not be read back when the result was
    stored (deleted meanwhile); such a record never counts as "already done". Pasted
    images are saved to a file first, so they have a digest like any other.
    ``pair_id`` names the converted model pair that produced the result (the key that
    "already done" uses); ``model`` is its display name. ``stop_reason`` "cancelled"
    marks a partial result: kept and shown, never counted as done, not exported unless
    asked.
    """

    image_path: str
    image_sha256: str
    image_width: int
    image_height: int
    task: str
    prompt: str
    model: str  # the model's display name (catalog name or Hugging Face repo id)
    quantization: str
    text: str  # the raw output, special tokens included
    objects: list[DetectedObject] = field(default_factory=list)
    timings: dict[str, float | int | bool] = field(default_factory=dict)
    stop_reason: str = ""
    tokens: list[int] = field(default_factory=list)
    pair_id: str = ""
    options_key: str = "greedy"  # see app.session.identity.options_key
    max_new_tokens: int = 0  # the limit the run had (0 = not recorded)
    created: str = field(default_factory=utc_now)
    id: int | None = None

    @property
    def cancelled(self) -> bool:
        return self.stop_reason == "cancelled"

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the original image in pixels."""
        return (self.image_width, self.image_height)

    @classmethod
    def from_task_result(
        cls, result: TaskResult, image_path: Path | str, model: str, quantization: str,
        *, image_sha256: str | None = None, pair_id: str = "", options_key: str = "greedy",
        max_new_tokens: int = 0,
    ) -> HistoryRecord:
        """Make a record of ``result``; the image file is hashed unless its digest is given."""
        digest = image_sha256
        if digest is None:
            try:
                digest = file_sha256(image_path)
            except OSError:
                digest = ""  # a since-deleted image: keep the result all the same
        width, height = result.result.image_size
        return cls(
            image_path=str(image_path),
            image_sha256=digest,
            image_width=int(width),
            image_height=int(height),
            task=result.task,
            prompt=result.prompt,
            model=model,
            quantization=quantization,
            text=result.result.text,
            objects=list(result.objects),
            timings=result.result.timings.to_dict(),
            stop_reason=result.result.stop_reason,
            tokens=list(result.result.tokens),
            pair_id=pair_id,
            options_key=options_key,
            max_new_tokens=max_new_tokens,
        )

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict; shares its names with ``TaskResult.to_json`` where they overlap."""
        return {
            "id": self.id,
            "created": self.created,
            "image": self.image_path,
            "image_sha256": self.image_sha256,
            "image_size": [self.image_width, self.image_height],
            "task": self.task,
            "prompt": self.prompt,
            "model": self.model,
            "quantization": self.quantization,
            "pair_id": self.pair_id,
            "text": self.text,
            "objects": [obj.to_dict() for obj in self.objects],
            "timings": dict(self.timings),
            "stop_reason": self.stop_reason,
            "tokens": list(self.tokens),
        }
