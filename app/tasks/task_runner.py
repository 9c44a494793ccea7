"""A task on one image, end to end: prompt -> engine stream -> parsed objects -> result.

Shared by the CLI and the window, so both show the same thing for the same run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from app.engine.engine import Engine, ImageInput
from app.engine.events import GenerationOptions, ResultEvent, TokenEvent
from app.progress import CancelFlag
from app.tasks.object_masks import check_decoder, with_mask
from app.tasks.parsing import DetectedObject, IncrementalObjectParser
from app.tasks.prompts import TaskKind, TaskRequest, build_prompt


@dataclass(frozen=True)
class ObjectEvent:
    """A detection/segmentation object whose tokens are complete (streamed)."""

    obj: DetectedObject


@dataclass(frozen=True)
class TaskResult:
    image: str
    task: str
    prompt: str
    result: ResultEvent
    objects: list[DetectedObject] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        """The CLI's ``--json`` record (the field names are a contract: keep them)."""
        r = self.result
        return {
            "image": self.image,
            "task": self.task,
            "prompt": self.prompt,
            "tokens": r.tokens,
            "text": r.text,
            "objects": [o.to_dict() for o in self.objects],
            "stop_reason": r.stop_reason,
            "image_size": list(r.image_size),
            "timings": r.timings.to_dict(),
        }


def run_task(
    engine: Engine,
    image: ImageInput,
    request: TaskRequest,
    options: GenerationOptions | None = None,
    cancel: CancelFlag | None = None,
    mask_decoder: Path | None = None,
) -> Iterator[TokenEvent | ObjectEvent | TaskResult]:
    """Stream tokens and objects as they complete, then the TaskResult.

    With ``mask_decoder`` (the path of big_vision's vae-oid.npz, see
    ``app.models.mask_decoder.installed_decoder``), each segment object's mask is decoded
    here, in the caller's thread, before its ObjectEvent; objects without complete mask
    codes, and every object when it is None, keep their box only. A bad decoder file
    raises ``MaskDecoderError`` before generation starts.
    """
    prompt = build_prompt(request)
    segment = request.kind == TaskKind.SEGMENT
    decoder = mask_decoder if segment else None
    if decoder is not None:
        check_decoder(decoder)
    prepared = engine.prepare(image)
    parser = IncrementalObjectParser(
        prepared.original_size, segmentation=segment
    ) if request.kind.is_spatial else None
    objects: list[DetectedObject] = []

    def finished(found: list[DetectedObject]) -> Iterator[ObjectEvent]:
        for obj in found:
            if decoder is not None:
                obj = with_mask(obj, decoder, prepared.original_size)
            objects.append(obj)
            yield ObjectEvent(obj)

    for event in engine.generate(prepared, prompt, options, cancel):
        if isinstance(event, TokenEvent):
            yield event
            if parser is not None:
                yield from finished(parser.feed(event.text))
        else:
            if parser is not None:
                yield from finished(parser.finish())
            yield TaskResult(
                image=prepared.source or "<image>",
                task=request.kind.value,
                prompt=prompt,
                result=event,
                objects=objects,
            )
