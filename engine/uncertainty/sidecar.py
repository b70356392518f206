"""The CLI's uncertainty sidecar: ``<stem>.uncertainty.png`` beside each output.

Format: a 16-bit greyscale PNG the size of the output; a pixel's value divided by
:data:`LEVELS_SCALE` (256) is the expected absolute error of that output pixel in 8-bit levels
(0..255.996; e.g. 2048 = 8 levels). Written atomically; an existing sidecar is replaced only
with ``overwrite``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import PhotoSaveError

#: Sidecar value per 8-bit level of expected error.
LEVELS_SCALE = 256.0
SUFFIX = ".uncertainty.png"


def sidecar_path(output: Path) -> Path:
    """``photo.jpg`` → ``photo.uncertainty.png`` in the same folder."""
    output = Path(output)
    return output.with_name(output.stem + SUFFIX)


def encode(levels: np.ndarray) -> np.ndarray:
    """HxW expected error (8-bit levels) → uint16 sidecar values (``round(levels × 256)``, clipped)."""
    return np.clip(np.round(np.asarray(levels, np.float64) * LEVELS_SCALE), 0, 65535).astype(np.uint16)


def decode(values: np.ndarray) -> np.ndarray:
    """uint16 sidecar values → expected error in 8-bit levels (float32)."""
    return (np.asarray(values, np.float32) / np.float32(LEVELS_SCALE)).astype(np.float32)


def write_sidecar(output: Path, levels: np.ndarray, *, overwrite: bool = False,
                  size: tuple[int, int] | None = None) -> Path:
    """Write the map for ``output`` to :func:`sidecar_path` atomically and return the path.
    ``size`` ``(width, height)``: the output's size when it differs from the map's (an upscaled
    output; the map is resized bilinearly). Raises :class:`engine.errors.OutputExistsError` when
    the sidecar exists and ``overwrite`` is false."""
    from ..imageio.atomic import atomic_write_bytes

    levels = np.asarray(levels, np.float32)
    if size is not None and (levels.shape[1], levels.shape[0]) != tuple(size):
        levels = cv2.resize(levels, tuple(size), interpolation=cv2.INTER_LINEAR)
    ok, data = cv2.imencode(".png", encode(levels))
    if not ok:
        raise PhotoSaveError(f"{sidecar_path(output)}: the PNG encoder failed")
    return atomic_write_bytes(sidecar_path(output), data.tobytes(), overwrite=overwrite)


def read_sidecar(path: Path) -> np.ndarray:
    """Read a sidecar back as expected error in 8-bit levels (HxW float32)."""
    values = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if values is None or values.dtype != np.uint16 or values.ndim != 2:
        raise ValueError(f"{path}: not a 16-bit greyscale uncertainty map")
    return decode(values)
