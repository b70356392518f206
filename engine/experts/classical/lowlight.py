"""Classical low-light enhancement: LIME-style illumination map, refined by a guided filter,
with the exposure chosen so the result reaches a natural mean brightness, then a mild denoise
of the noise the gain amplified."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..base import Backend, Expert, ExpertContext, ExpertInfo, TilingMode
from . import sliding_dct
from .color import from_opponent, luminance, to_opponent
from .guided_filter import guided_filter_gray
from .noise_level import estimate_sigma
from .tiles import map_tiles

#: Mean sRGB-encoded luminance the enhanced photo is steered to. Daylight photos average ~0.45, but
#: a lower target costs little on average and spares naturally dark scenes (benchmarks/results/experts.md).
TARGET_MEAN = 0.36
#: Fraction of the estimated output noise removed afterwards (0 = no denoise).
DENOISE_FRACTION = 0.8
#: Smallest illumination value divided by (avoids blowing pure black up into noise).
ILLUMINATION_FLOOR = 0.02


def illumination_map(image: np.ndarray) -> np.ndarray:
    """LIME's illumination: max over RGB, smoothed by a guided filter steered by itself so it
    follows large edges but not texture. float32 H x W in (0, 1]."""
    t = image.max(axis=2).astype(np.float32)
    radius = max(int(round(max(image.shape[:2]) / 100)), 2)
    return np.clip(guided_filter_gray(t, t, radius, 1e-2), ILLUMINATION_FLOOR, 1.0)


def enhance(image: np.ndarray, target_mean: float = TARGET_MEAN) -> np.ndarray:
    """Brighten ``image`` (float32 H x W x 3 sRGB in [0, 1]): out = I / T^gamma, where T is the
    illumination map and gamma in [0, 1] is found by bisection so the output's mean luminance is
    ``target_mean`` (never darkens: a bright image gets gamma 0). Returns float32, clipped."""
    img = np.clip(image.astype(np.float32, copy=False), 0.0, 1.0)
    t = illumination_map(img)
    log_t = np.log(t)
    step = max(1, int(np.sqrt(img.shape[0] * img.shape[1] / 250_000)))
    small_img, small_log_t = img[::step, ::step], log_t[::step, ::step]

    def mean_at(gamma: float) -> float:
        out = small_img * np.exp(-gamma * small_log_t)[..., None]
        return float(luminance(np.clip(out, 0.0, 1.0)).mean())

    if mean_at(0.0) >= target_mean:
        return img.copy()
    lo, hi = 0.0, 1.0
    for _ in range(20):
        mid = 0.5 * (lo + hi)
        if mean_at(mid) < target_mean:
            lo = mid
        else:
            hi = mid
    gamma = 0.5 * (lo + hi)
    return np.clip(img * np.exp(-gamma * log_t)[..., None], 0.0, 1.0)


class LIMEEnhance(Expert):
    """Brightens under-exposed photos. Needs the whole image (the exposure target is global)."""

    info = ExpertInfo(
        id="classical.lowlight.lime",
        name="LIME-style illumination enhancement",
        tasks=("lowlight",),
        backend=Backend.CLASSICAL,
        version="1",
        tiling=TilingMode.NONE,
        tile_overlap=0,
        memory_factor=1200.0,
        description="Max-RGB illumination refined by a guided filter, gamma on the illumination "
                    "chosen to reach a natural mean brightness, then a mild sliding-DCT denoise.",
    )

    def __init__(self, tile: int = 256) -> None:
        self.tile = tile

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        ctx = ctx or ExpertContext()
        ctx.progress(0.0)
        out = enhance(image)
        ctx.progress(0.2)
        sigma = estimate_sigma(out) * DENOISE_FRACTION
        if sigma > 0.004:
            opp = to_opponent(out)
            opp = map_tiles(opp, lambda t: sliding_dct.denoise(t, sigma, second_step=False), ctx.tile or self.tile, 16,
                            ctx.progress.sub(0.2, 1.0))
            out = from_opponent(opp)
        ctx.progress(1.0)
        return np.clip(out, 0.0, 1.0).astype(np.float32)
