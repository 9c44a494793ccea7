"""A task on one image, end to end: prompt -> engine stream -> parsed objects -> result.

Shared by the CLI and the window, so both show the same thing for the same run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from app.engine.engine import Engine, ImageInput
from app.engine.events import GenerationOptions, ResultEvent, TokenEvent
from app.progress import CancelFlag
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
) -> Iterator[TokenEvent | ObjectEvent | TaskResult]:
    """Stream tokens and objects as they complete, then the TaskResult."""
    prompt = build_prompt(request)
    prepared = engine.prepare(image)
    spatial = request.kind.is_spatial
    parser = IncrementalObjectParser(
        prepared.original_size, segmentation=request.kind == TaskKind.SEGMENT
    ) if spatial else None
    for event in engine.generate(prepared, prompt, options, cancel):
        if isinstance(event, TokenEvent):
            yield event
            if parser is not None:
                for obj in parser.feed(event.text):
                    yield ObjectEvent(obj)
        else:
            if parser is not None:
                for obj in parser.finish():
                    yield ObjectEvent(obj)
            yield TaskResult(
                image=prepared.source or "<image>",
                task=request.kind.value,
                prompt=prompt,
                result=event,
                objects=list(parser.objects) if parser is not None else [],
            )
