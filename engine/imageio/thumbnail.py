"""Small previews of photo files for the GUI's filmstrip (decoded and reduced here, so the GUI
does no image math)."""

from __future__ import annotations

import cv2
import numpy as np

from .formats import PathLike
from .loading import load_photo


def load_thumbnail(path: PathLike, max_side: int = 160) -> np.ndarray:
    """``path`` decoded (orientation applied) and shrunk to fit ``max_side`` pixels: uint8
    HxWx3 sRGB. Raises :class:`engine.errors.PhotoLoadError` like :func:`load_photo`."""
    pixels = load_photo(path).pixels
    h, w = pixels.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(np.rint(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8))
