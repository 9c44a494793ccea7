"""Errors a user can act on.

Every failure that reaches a person is one of these, with a message written for that
person (what happened, and what to do), so the CLI and the window can show it as is.
"""

from __future__ import annotations


class PaliDeskError(Exception):
    """Base class: ``str(error)`` is a complete sentence for the user."""


class ConversionError(PaliDeskError):
    """A checkpoint cannot be converted (not PaliGemma, missing file, bad tensor...)."""


class ModelFolderError(PaliDeskError):
    """A model folder is missing files, holds a mismatched pair, or is corrupt."""


class QuantizationError(PaliDeskError):
    """llama.cpp's quantizer refused or failed."""


class ImageError(PaliDeskError):
    """An image cannot be read (missing, corrupt, unsupported, too large)."""


class EngineError(PaliDeskError):
    """The runtime failed to load a model or to run a task."""


class Cancelled(PaliDeskError):
    """The user cancelled the operation; whatever finished before is kept."""


class TaskError(PaliDeskError):
    """A task was asked with arguments it cannot use (no question, no classes...)."""


class SettingsError(PaliDeskError):
    """The settings file cannot be written (disk full, no permission...)."""


class HistoryError(PaliDeskError):
    """The history database cannot be opened, read or written."""


class ExportError(PaliDeskError):
    """Results cannot be exported (disk full, no permission, bad destination...)."""
