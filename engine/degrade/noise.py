"""Sensor noise: additive Gaussian and signal-dependent Poisson–Gaussian."""

from __future__ import annotations

import numpy as np

from ._common import as_image, finish


def gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add i.i.d. Gaussian noise of standard deviation ``sigma`` (fraction of full scale,
    e.g. ``25/255``) independently to every channel; result clipped to [0, 1], float32 HxWx3."""
    out = as_image(image)
    if sigma <= 0:
        return finish(out)
    out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(sigma)
    return finish(out)


def poisson_gaussian_noise(image: np.ndarray, photons: float, read_sigma: float,
                           rng: np.random.Generator) -> np.ndarray:
    """Signal-dependent sensor noise: ``y = Poisson(x·photons)/photons + N(0, read_sigma²)``.

    ``photons``: expected photon count at full scale (1.0); fewer photons = more shot noise
    (variance ``x/photons``). ``read_sigma``: read-out noise std (fraction of full scale).
    Applied to the values as given (pass linear light for a physically exact sensor model).
    Returns float32 HxWx3 clipped to [0, 1].
    """
    out = as_image(image)
    if photons > 0 and np.isfinite(photons):
        lam = np.clip(out, 0.0, 1.0).astype(np.float64) * float(photons)
        out = (rng.poisson(lam) / float(photons)).astype(np.float32)
    if read_sigma > 0:
        out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(read_sigma)
    return finish(out)
