"""Exceptions the engine raises (each carries a one-line message meant for the user), and the
one place any exception is turned into such a line (:func:`one_line`, :func:`describe_error`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

#: Longest detail (characters) a one-line message keeps of a foreign exception's text.
MAX_DETAIL = 160


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


def one_line(error: BaseException, limit: int = MAX_DETAIL, *, with_type: Optional[bool] = None) -> str:
    """``error``'s message on one line (white space folded) of at most ``limit`` characters
    (cut with "…"). ``with_type``: lead with the type name (``"KeyError: 'x'"``; just the name
    when there is no message); ``None``: only when the message has no words (``KeyError(0)``,
    ``IndexError()``: the type says more)."""
    text = " ".join(str(error).split())
    if with_type or (with_type is None and not any(c.isalpha() for c in text)):
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_error(error: BaseException, source: Optional[Path] = None) -> str:
    """The one-line reason a photo failed, for any exception (the policy every front end uses:
    the CLI, the window, the batch queue and cluster workers). Restora's own errors already
    name the file; any other error is named by its type, with ``source`` in front."""
    if isinstance(error, RestoraError):
        return str(error)
    prefix = f"{source}: " if source is not None else ""
    if isinstance(error, MemoryError):
        return f"{prefix}not enough memory to restore this photo"
    return f"{prefix}unexpected error ({one_line(error, with_type=True)})"
