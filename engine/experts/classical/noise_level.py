"""Estimate the standard deviation of additive white noise in an image.

Wavelet-MAD (Donoho): the finest diagonal Haar detail band of a natural image is mostly noise,
so ``median(|HH|) / 0.6745`` estimates sigma. Values are in the image's units ([0, 1]).
"""

from __future__ import annotations

import numpy as np


def haar_diagonal(channel: np.ndarray) -> np.ndarray:
    """Finest-scale orthonormal Haar diagonal detail of an H x W float array (H/2 x W/2)."""
    h, w = channel.shape[0] // 2 * 2, channel.shape[1] // 2 * 2
    c = channel[:h, :w].astype(np.float32, copy=False)
    return (c[0::2, 0::2] - c[0::2, 1::2] - c[1::2, 0::2] + c[1::2, 1::2]) * 0.5


def estimate_sigma(image: np.ndarray, max_pixels: int = 4_000_000) -> float:
    """Noise sigma of ``image`` (H x W x 3 or H x W float32 in [0, 1]), in [0, 1] units.

    Returns the median of the per-channel MAD estimates. Very large images are estimated on a
    central crop of about ``max_pixels`` pixels (noise is assumed stationary).
    """
    h, w = image.shape[:2]
    if h * w > max_pixels:
        side = int(np.sqrt(max_pixels))
        y0, x0 = max((h - side) // 2, 0), max((w - side) // 2, 0)
        image = image[y0:y0 + side, x0:x0 + side]
    channels = [image] if image.ndim == 2 else [image[..., c] for c in range(image.shape[2])]
    estimates = [float(np.median(np.abs(haar_diagonal(c)))) / 0.6745 for c in channels]
    return float(np.median(estimates))


def context_sigma(image: np.ndarray, measurements) -> float:
    """The analyser's ``sigma`` measurement if it gave one (> 0), else our own estimate."""
    value = measurements.get("sigma") if measurements else None
    if value is not None and float(value) > 0:
        return float(value)
    return estimate_sigma(image)
