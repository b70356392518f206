"""Under-exposure: a dark, noisy photo as a camera would capture it in low light."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ._common import as_image, finish, linear_to_srgb, srgb_to_linear


def lowlight(image: np.ndarray, exposure: float, gamma: float = 1.0,
             rng: Optional[np.random.Generator] = None, noise: float = 0.0,
             photons: float = 0.0) -> np.ndarray:
    """Simulate under-exposure of an sRGB-encoded image.

    ``exposure``: factor in (0, 1] applied in linear light (0.08 ≈ 3.6 stops darker).
    ``gamma``: extra tone curve on the encoded result, ``out = enc**gamma`` (> 1 crushes shadows).
    ``noise``: read-noise std in linear light (fraction of full scale, e.g. 0.002), added after the
    exposure drop so it is amplified by the sRGB curve like a real sensor's. ``photons``: photon
    count at full scale for shot noise (0 = none). Noise needs ``rng``.
    Returns float32 HxWx3 in [0, 1]; ``exposure=1, gamma=1, noise=0`` is the identity up to rounding.
    """
    img = as_image(image)
    if exposure >= 1.0 and gamma == 1.0 and noise <= 0 and photons <= 0:
        return finish(img)
    lin = srgb_to_linear(img) * np.float32(exposure)
    if (noise > 0 or photons > 0) and rng is None:
        raise ValueError("lowlight noise needs an rng")
    if photons > 0:
        lin = (rng.poisson(np.clip(lin, 0, 1).astype(np.float64) * photons) / photons).astype(np.float32)
    if noise > 0:
        lin = lin + rng.standard_normal(lin.shape, dtype=np.float32) * np.float32(noise)
    out = linear_to_srgb(lin)
    if gamma != 1.0:
        out = np.power(out, np.float32(gamma))
    return finish(out)


def colour_cast(image: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    """A white-balance error: per-channel gains applied in linear light (e.g. (1.15, 1, 0.8) is
    a warm tungsten cast). Gains near 1; the result is clipped. float32 HxWx3 in [0, 1]."""
    lin = srgb_to_linear(as_image(image)) * np.asarray(gains, np.float32)
    return finish(linear_to_srgb(lin))
