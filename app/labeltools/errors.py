"""What goes wrong between a labelling tool and PaliDesk, in sentences for the user."""

from __future__ import annotations

from app.errors import PaliDeskError


class LabelToolError(PaliDeskError):
    """A labelling tool sent something PaliDesk cannot use (base of the cases below)."""


class LabelConfigError(LabelToolError):
    """A Label Studio labelling config is not XML PaliDesk accepts or asks for nothing it does."""


class ImageSourceError(LabelToolError):
    """An image URL in a task may not be fetched (another host, outside the allowed folder)
    or could not be fetched."""
