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


class DownloadError(PaliDeskError):
    """A model cannot be downloaded from Hugging Face (base of the cases below)."""


class NotLoggedInError(DownloadError):
    """Hugging Face wants a login (no token, or a token it does not accept)."""


class LicenceNotAcceptedError(DownloadError):
    """The repository is gated and this account has not accepted its licence."""


class HubNotFoundError(DownloadError):
    """The repository, revision or file does not exist on Hugging Face."""


class NetworkError(DownloadError):
    """Hugging Face cannot be reached, or the connection broke during a download."""


class CorruptDownloadError(DownloadError):
    """A downloaded file does not match the checksum Hugging Face lists for it."""


class DiskSpaceError(PaliDeskError):
    """Not enough free disk space, found before starting or while writing."""


class CatalogError(PaliDeskError):
    """A model name is not in the catalog, or a quantization is not one PaliDesk offers."""


class MaskDecoderError(PaliDeskError):
    """The mask decoder (big_vision's vae-oid.npz) is missing, damaged or not a decoder."""
