"""Small builders shared by the tests/test_imageio*.py files."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from engine.photo import Photo

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
EXIF_DIR = DATA / "exif"


def levels(shape: tuple[int, ...], bit_depth: int, seed: int = 0) -> np.ndarray:
    """Random integer samples of ``bit_depth`` (uint8 / uint16) with every extreme present."""
    rng = np.random.default_rng(seed)
    top = 255 if bit_depth == 8 else 65535
    values = rng.integers(0, top + 1, size=shape, dtype=np.int64)
    values.flat[0] = 0
    values.flat[-1] = top
    return values.astype(np.uint8 if bit_depth == 8 else np.uint16)


def unit(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.float32) / np.float32(np.iinfo(samples.dtype).max)


def photo_from_levels(rgb: np.ndarray, alpha: Optional[np.ndarray] = None, **kwargs) -> Photo:
    """A Photo whose pixels (and alpha) are exactly the given integer levels."""
    depth = 8 if rgb.dtype == np.uint8 else 16
    return Photo(pixels=unit(rgb), alpha=None if alpha is None else unit(alpha), bit_depth=depth, **kwargs)


def smooth_rgb(height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth float32 colour image in [0, 1] (compresses well, so lossy codecs stay close)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([x / width, y / height, 0.5 + 0.4 * np.sin(x / 7.0) * np.cos(y / 9.0)], axis=2).astype(np.float32)
