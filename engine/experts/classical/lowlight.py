"""Classical low-light enhancement, LIME-style: a max-RGB illumination map refined by a guided
filter gives a smooth per-pixel gain (gamma on the illumination, capped), applied equally to
R, G and B so hue is kept, with highlights rolled off; then the noise the gain amplified is
suppressed in proportion to the gain (LIME's out = E·L + denoised(E)·(1 − L))."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..base import Backend, Expert, ExpertContext, ExpertInfo
from ...color import luminance
from .gain_denoise import suppress_amplified_noise
from .guided_filter import guided_filter_gray

#: Mean sRGB-encoded luminance a fully (severity 1) under-exposed photo is steered to; lower
#: severities stop proportionally closer to the photo's own mean.
TARGET_MEAN = 0.36
#: Largest gain (output / input) any pixel gets at severity 1: bounds how far near-black
#: regions, which hold mostly noise, are lifted.
MAX_GAIN = 8.0
#: Smallest illumination value divided by.
ILLUMINATION_FLOOR = 0.01
#: Start of the highlight roll-off: brightened values above it approach 1 smoothly.
KNEE = 0.8
#: How much of the desaturation a per-channel tone curve of the same gain would bring (0 = keep
#: the input's chroma ratios exactly, 1 = as desaturated as a per-channel gamma).
DESATURATION = 0.35
#: Scale on the noise level measured in the most lifted regions before denoising.
DENOISE_FRACTION = 0.8


def illumination_map(image: np.ndarray) -> np.ndarray:
    """LIME's illumination: max over RGB, smoothed by a guided filter steered by itself so it
    follows large edges but not texture. float32 H x W in [ILLUMINATION_FLOOR, 1]."""
    t = image.max(axis=2).astype(np.float32)
    radius = max(int(round(max(image.shape[:2]) / 100)), 2)
    return np.clip(guided_filter_gray(t, t, radius, 1e-2), ILLUMINATION_FLOOR, 1.0)


def gain_map(illumination: np.ndarray, gamma: float, max_gain: float) -> np.ndarray:
    """Per-pixel gain ``T**-gamma`` clipped to [1, max_gain]; float32 H x W."""
    g = np.exp(-np.float32(gamma) * np.log(illumination))
    return np.clip(g, 1.0, max_gain).astype(np.float32)


def soft_clip(values: np.ndarray, knee: float = KNEE) -> np.ndarray:
    """Identity below ``knee``, then an exponential roll-off approaching 1 (slope 1 at the knee)."""
    span = 1.0 - knee
    over = np.maximum(values - knee, 0.0)
    return np.where(values > knee, knee + span * (1.0 - np.exp(-over / span)), values).astype(np.float32)


def brighten(image: np.ndarray, gain: np.ndarray, illumination: np.ndarray,
             desaturation: float = DESATURATION) -> tuple[np.ndarray, np.ndarray]:
    """Scale each pixel of ``image`` (float32 H x W x 3, [0, 1]) by ``gain`` (H x W, >= 1) equally
    in R, G and B (hue kept), pulling chroma toward luma by ``desaturation`` times what a
    per-channel power curve of the same gain would (never boosting saturation), and rolling the
    brightest channel off above :data:`KNEE` (never below the input). Returns (float32 H x W x 3
    clipped to [0, 1], the gain actually applied after the roll-off, float32 H x W >= 1)."""
    y = luminance(image)[..., None]
    gamma_eff = np.clip(np.log(gain) / np.maximum(-np.log(illumination), 1e-3), 0.0, 1.0)
    keep = (1.0 - desaturation * gamma_eff)[..., None]
    base = y + keep * (image - y)
    peak = np.maximum(base.max(axis=2), 1e-6)
    g = np.maximum(np.minimum(gain, soft_clip(gain * peak) / peak), 1.0)
    return np.clip(base * g[..., None], 0.0, 1.0).astype(np.float32, copy=False), g.astype(np.float32)


def choose_gamma(image: np.ndarray, illumination: np.ndarray, target_mean: float,
                 max_gain: float) -> float:
    """Gamma in [0, 1] for which :func:`brighten` gives mean luma ``target_mean`` (bisection on
    a subsampled copy); 0 when the image is already that bright."""
    step = max(1, int(np.ceil(np.sqrt(image.shape[0] * image.shape[1] / 65_536))))
    small, small_t = image[::step, ::step], illumination[::step, ::step]

    def mean_at(gamma: float) -> float:
        return float(luminance(brighten(small, gain_map(small_t, gamma, max_gain), small_t)[0]).mean())

    if mean_at(0.0) >= target_mean:
        return 0.0
    lo, hi = 0.0, 1.0
    for _ in range(16):
        mid = 0.5 * (lo + hi)
        if mean_at(mid) < target_mean:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def enhance(image: np.ndarray, severity: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Brighten ``image`` (float32 H x W x 3 sRGB in [0, 1]) without denoising.

    ``severity`` in [0, 1] scales how far it goes: the mean luma target moves from the photo's
    own mean (0) to :data:`TARGET_MEAN` (1) and the gain cap from 1 to :data:`MAX_GAIN`. Never
    darkens. Returns (enhanced float32 H x W x 3 in [0, 1], applied gain float32 H x W >= 1).
    """
    img = np.clip(image.astype(np.float32, copy=False), 0.0, 1.0)
    s = float(np.clip(severity, 0.0, 1.0))
    t = illumination_map(img)
    mean_in = float(luminance(img).mean())
    target = mean_in + s * max(TARGET_MEAN - mean_in, 0.0)
    max_gain = 1.0 + s * (MAX_GAIN - 1.0)
    gamma = choose_gamma(img, t, target, max_gain)
    gain = gain_map(t, gamma, max_gain)
    return brighten(img, gain, t)


class LIMEEnhance(Expert):
    """Brightens under-exposed photos. Needs the whole image (the exposure target is global)."""

    info = ExpertInfo(
        id="classical.lowlight.lime",
        name="LIME-style illumination enhancement",
        tasks=("lowlight",),
        backend=Backend.CLASSICAL,
        version="2",
        tile_overlap=0,
        memory_factor=1200.0,
        description="Max-RGB illumination refined by a guided filter; capped gain (gamma on the "
                    "illumination, scaled by severity) applied equally to RGB with highlight "
                    "roll-off; sliding-DCT denoise blended in by gain, chroma harder.",
    )

    def __init__(self, tile: int = 256) -> None:
        self.tile = tile

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        ctx = ctx or ExpertContext()
        ctx.progress(0.0)
        out, gain = enhance(image, ctx.severity)
        ctx.progress(0.2)
        if float(gain.max()) > 1.05:
            out = suppress_amplified_noise(out, gain, ctx.tile or self.tile, ctx.progress.sub(0.2, 1.0),
                                           DENOISE_FRACTION)
        ctx.progress(1.0)
        return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
