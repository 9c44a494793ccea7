"""A result as JSON, the same for every face: ``palidesk run --json``'s fields plus who
made it and how (``batch`` writes these lines; the server answers with them).

The identity fields are what "already done" compares (``done_rule``): ``image_sha256``,
``model_id`` (the pair), ``quantization``, ``options_key`` and ``max_new_tokens``;
``model`` is the display name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.session.identity import ModelIdentity, options_key

if TYPE_CHECKING:
    from app.engine.events import GenerationOptions
    from app.history.history_record import HistoryRecord
    from app.tasks.task_runner import TaskResult


def identity_fields(model: ModelIdentity, options: GenerationOptions,
                    image_sha256: str | None) -> dict[str, Any]:
    return {"image_sha256": image_sha256, "model": model.name, "model_id": model.pair_id,
            "quantization": model.quant, "options_key": options_key(options),
            "max_new_tokens": options.max_new_tokens}


def result_record(result: TaskResult, image: str, model: ModelIdentity,
                  options: GenerationOptions, image_sha256: str | None) -> dict[str, Any]:
    """A finished answer: ``run --json``'s record with the identity fields."""
    record = result.to_json()
    record["image"] = image
    record.update(identity_fields(model, options, image_sha256))
    return record


def failure_record(image: str, message: str, task: str, prompt: str, model: ModelIdentity,
                   options: GenerationOptions, image_sha256: str | None) -> dict[str, Any]:
    """An image that got no answer, and why (the ``error`` field)."""
    return {"image": image, "error": message, "task": task, "prompt": prompt,
            **identity_fields(model, options, image_sha256)}


def stored_record(record: HistoryRecord) -> dict[str, Any]:
    """A stored result (what ``execute_job``'s outcome carries) in the same fields, with
    its history ``id`` and ``created`` time."""
    return {
        "image": record.image_path, "task": record.task, "prompt": record.prompt,
        "tokens": list(record.tokens), "text": record.text,
        "objects": [obj.to_dict() for obj in record.objects],
        "stop_reason": record.stop_reason, "image_size": [record.image_width,
                                                           record.image_height],
        "timings": dict(record.timings), "image_sha256": record.image_sha256,
        "model": record.model, "model_id": record.pair_id,
        "quantization": record.quantization, "options_key": record.options_key,
        "max_new_tokens": record.max_new_tokens, "id": record.id, "created": record.created,
    }
