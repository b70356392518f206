"""Suppress the noise a spatially varying gain amplified (the low-light expert's second half).

A brightened dark photo E = g·I is noisiest where the gain g was largest. The smooth gain is
divided out first (Z = E / g has about the input's, roughly uniform, noise), Z is denoised once
at its measured noise level, the gain is put back, and the result is blended in by a weight that
grows with the gain, as LIME does: out = E·(1 − w) + g·D(Z)·w. Chroma is denoised harder than
luminance: amplified sensor noise is most objectionable as colour speckle, and the eye resolves
little colour detail.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...progress import Progress
from . import sliding_dct
from .color import from_opponent, to_opponent
from ...analysis.measurements import haar_diagonal
from .tiles import map_tiles

#: Chroma sigma is multiplied by this before denoising (stronger colour-noise removal).
CHROMA_BOOST = 1.5
#: Gain at and above which the denoised image fully replaces the brightened one (weight 1);
#: the weight rises linearly from 0 at gain 1.
FULL_DENOISE_GAIN = 2.0
#: Below this amplified sigma ([0, 1] units, ~1/255) the denoise is skipped.
MIN_SIGMA = 0.004
#: Fewest half-resolution samples the lifted region must have to measure noise there alone.
MIN_REGION_PIXELS = 400


def region_sigma(channel: np.ndarray, mask: np.ndarray) -> float:
    """Noise std of ``channel`` (H x W float32) inside ``mask`` (H x W bool), by wavelet MAD on
    the finest Haar diagonal band; the whole image is used when the mask covers fewer than
    :data:`MIN_REGION_PIXELS` half-resolution samples. Same units as ``channel``."""
    hh = np.abs(haar_diagonal(channel))
    h, w = hh.shape
    m = mask[:2 * h:2, :2 * w:2]
    values = hh[m] if int(m.sum()) >= MIN_REGION_PIXELS else hh.ravel()
    return float(np.median(values)) / 0.6745


def suppress_amplified_noise(enhanced: np.ndarray, gain: np.ndarray, tile: int,
                             progress: Optional[Progress] = None,
                             sigma_scale: float = 1.0) -> np.ndarray:
    """Denoise ``enhanced`` (float32 H x W x 3, sRGB-encoded [0, 1]) where and as much as ``gain``
    (float32 H x W >= 1, smooth: the gain that made it) amplified its noise. The noise level of
    E / gain per opponent channel is measured where the gain is above 2 (else everywhere),
    scaled by ``sigma_scale`` and, for chroma, :data:`CHROMA_BOOST`. ``tile``: tile edge in pixels
    of the sliding-DCT pass. Returns float32 H x W x 3, unclipped (a copy when nothing to do)."""
    progress = progress or Progress()
    gain = gain.astype(np.float32, copy=False)
    z = to_opponent(enhanced / gain[..., None])
    lifted = gain >= FULL_DENOISE_GAIN
    sigma = np.array([region_sigma(z[..., c], lifted) for c in range(3)], np.float32) * sigma_scale
    sigma[1:] *= CHROMA_BOOST
    if float(sigma.max() * gain.max()) < MIN_SIGMA:
        progress(1.0)
        return enhanced.astype(np.float32, copy=True)
    sigma = np.maximum(sigma, 1e-5)
    denoised = map_tiles(z, lambda t: sliding_dct.denoise(t, sigma, second_step=False), tile, 16, progress)
    w = np.clip((gain - 1.0) / (FULL_DENOISE_GAIN - 1.0), 0.0, 1.0)[..., None]
    return enhanced * (1.0 - w) + from_opponent(denoised) * (gain[..., None] * w)
