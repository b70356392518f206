"""Tonal histograms for display: per-channel and luminance counts, and how much is clipped.

The GUI's histogram panel shows these for the original and the restored photo; computing them
here keeps the GUI free of image math. Inputs are the display-encoded (sRGB) float pixels the
engine works in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .color import luminance

#: Number of bins (one per 8-bit display level).
BINS = 256


@dataclass(frozen=True)
class Histogram:
    """``red``/``green``/``blue``/``luma``: int64 counts per 8-bit level (0..255, ``BINS`` long).
    ``shadows_clipped`` / ``highlights_clipped``: fraction in [0, 1] of pixels with any channel
    at level 0 / level 255 (crushed blacks, blown highlights). ``pixels``: how many were counted."""

    red: np.ndarray
    green: np.ndarray
    blue: np.ndarray
    luma: np.ndarray
    shadows_clipped: float
    highlights_clipped: float
    pixels: int


def compute_histogram(pixels: np.ndarray) -> Histogram:
    """Histogram of an HxWx3 image (float in [0, 1] or uint8). Callers pass a subsampled copy
    for speed (a quarter-megapixel sample gives the same shape of curve as the full photo)."""
    if pixels.ndim != 3 or pixels.shape[2] < 3:
        raise ValueError(f"expected an HxWx3 image, got shape {pixels.shape}")
    if pixels.dtype == np.uint8:
        levels = pixels[..., :3].reshape(-1, 3)
    else:
        levels = np.rint(np.clip(pixels[..., :3].reshape(-1, 3), 0.0, 1.0) * 255.0).astype(np.uint8)
    n = int(levels.shape[0])
    counts = [np.bincount(levels[:, c], minlength=BINS).astype(np.int64) for c in range(3)]
    luma = np.rint(luminance(levels.astype(np.float32))).astype(np.int64)  # Rec. 709, as photo editors plot
    luma_counts = np.bincount(np.clip(luma, 0, BINS - 1), minlength=BINS).astype(np.int64)
    shadows = float((levels == 0).any(axis=1).mean()) if n else 0.0
    highlights = float((levels == 255).any(axis=1).mean()) if n else 0.0
    return Histogram(counts[0], counts[1], counts[2], luma_counts, shadows, highlights, n)


def sample_step(height: int, width: int, target_pixels: int = 250_000) -> int:
    """The sampling step (every step-th pixel in both directions) that brings an image of
    ``height`` x ``width`` down to about ``target_pixels``."""
    return max(1, int(np.ceil(np.sqrt(height * width / max(target_pixels, 1)))))
