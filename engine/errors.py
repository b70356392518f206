"""Exceptions the engine raises. Each carries a one-line message meant for the user."""

from __future__ import annotations


class RestoraError(Exception):
    """Base class: ``str(err)`` is a complete one-line message for the user."""


class PhotoLoadError(RestoraError):
    """A file could not be read as a photo (corrupt, truncated, too large, unsupported)."""


class UnsupportedFormatError(PhotoLoadError):
    """The file is not in a format Restora reads."""


class PhotoSaveError(RestoraError):
    """An output could not be written."""


class OutputExistsError(PhotoSaveError):
    """The output file exists and overwriting was not allowed."""


class Cancelled(RestoraError):
    """The job was cancelled by the user; nothing half-written is left behind."""


class ModelError(RestoraError):
    """A model could not be found, downloaded, verified or loaded."""


class UsageError(RestoraError):
    """The request itself is wrong (conflicting options, an output that would replace an
    input): refused before any work; the CLI exits with status 2."""


class NotEnoughMemoryError(RestoraError):
    """A photo cannot be restored within the memory this machine has; refused before work."""
