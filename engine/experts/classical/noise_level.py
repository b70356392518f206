"""Estimate the standard deviation of additive white noise in an image.

Wavelet-MAD (Donoho): the finest diagonal Haar detail band of a natural image is mostly noise,
so ``median(|HH|) / 0.6745`` estimates sigma. Values are in the image's units ([0, 1]).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...analysis.measurements import haar_diagonal


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


def channel_sigma(noise_sigma) -> Optional[np.ndarray]:
    """``ExpertContext.noise_sigma`` (scalar, ``(3,)`` or an HxWx1 / HxWx3 map, [0, 1] units)
    reduced to one σ per RGB channel, ``(3,)`` float32 (a map's mean); ``None`` stays ``None``."""
    if noise_sigma is None:
        return None
    a = np.asarray(noise_sigma, np.float32)
    if a.ndim == 0:
        return np.full(3, float(a), np.float32)
    if a.ndim == 1:
        return np.resize(a, 3).astype(np.float32)
    per = a.reshape(-1, a.shape[-1]).mean(axis=0)
    return np.resize(per, 3).astype(np.float32)


def context_sigma(image: np.ndarray, ctx) -> float:
    """One σ ([0, 1] units) for ``image``: what the analysis told the expert
    (``ctx.noise_sigma``, averaged over channels and pixels), else our own estimate."""
    per = channel_sigma(getattr(ctx, "noise_sigma", None))
    if per is not None:
        return float(per.mean())
    return estimate_sigma(image)
