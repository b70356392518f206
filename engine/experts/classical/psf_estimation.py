"""Blind PSF estimation by spectral likelihood over a bank of defocus disks and motion lines.

Model: the blurred luminance's power spectrum is ``c |K(w)|^2 / |D(w)|^2 + n`` (a 1/f^2 natural
image spectrum through the blur, plus white noise). The zeros of disk and line PSFs leave
matching dips in the observed spectrum, so the candidate with the lowest Gaussian negative
log-likelihood (over the scale ``c``) is the estimate; the best coarse candidate is then refined
on a finer grid. The "no blur" candidate competes too, so a sharp image keeps no PSF.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...analysis import blur_kernel
from .deconvolution import gradient_energy, make_psf, psf_bank

WINDOW = 128
#: Coarse grid of the spectrum scale c searched per candidate (then refined between neighbours).
_SCALES = np.exp(np.linspace(np.log(1e-6), np.log(1e2), 12)).astype(np.float32)


@dataclass(frozen=True)
class PSFEstimate:
    """``family``: ``"none" | "disk" | "line"``; ``size``: radius or length in pixels;
    ``angle_deg``: line direction (0 = horizontal, counter-clockwise); ``kernel``: float32, sum 1
    (a 1x1 identity for ``"none"``); ``score``: negative log-likelihood (lower is better)."""

    family: str
    size: float
    angle_deg: float
    kernel: np.ndarray
    score: float


def welch_spectrum(gray: np.ndarray, n: int = WINDOW) -> tuple[np.ndarray, float]:
    """:func:`engine.analysis.blur_kernel.welch_spectrum` in float32, ``n`` = :data:`WINDOW`."""
    spectrum, energy = blur_kernel.welch_spectrum(gray, n)
    return spectrum.astype(np.float32), energy


def _otf_power(kernel: np.ndarray, n: int) -> np.ndarray:
    pad = np.zeros((n, n), np.float32)
    kh, kw = kernel.shape
    pad[:kh, :kw] = kernel
    pad = np.roll(pad, (-(kh // 2), -(kw // 2)), axis=(0, 1))
    return (np.abs(np.fft.rfft2(pad)) ** 2).astype(np.float32)


class _Scorer:
    def __init__(self, spectrum: np.ndarray, noise_power: float) -> None:
        n = spectrum.shape[0]
        self.n = n
        self.spectrum = spectrum
        grad = gradient_energy((n, n))
        grad[0, 0] = 1.0
        self.prior = (1.0 / grad).astype(np.float32)
        self.mask = np.ones(spectrum.shape, bool)
        self.mask[0, 0] = False
        self.noise = noise_power
        self.obs = spectrum[self.mask]

    def _nll(self, base: np.ndarray, scales: np.ndarray) -> np.ndarray:
        var = scales[:, None] * base[None] + np.float32(self.noise)
        return (self.obs[None] / var + np.log(var)).mean(axis=1)

    def score(self, kernel: Optional[np.ndarray]) -> float:
        """Negative log-likelihood of the spectrum under ``kernel`` (``None`` = no blur),
        minimised over the scale c."""
        k2 = np.ones_like(self.spectrum) if kernel is None else _otf_power(kernel, self.n)
        base = (k2 * self.prior)[self.mask]
        coarse = self._nll(base, _SCALES)
        i = int(np.argmin(coarse))
        lo, hi = _SCALES[max(i - 1, 0)], _SCALES[min(i + 1, len(_SCALES) - 1)]
        fine = self._nll(base, np.exp(np.linspace(np.log(lo), np.log(hi), 9)).astype(np.float32))
        return float(min(coarse[i], fine.min()))


def central_region(height: int, width: int, crop: int = 512) -> tuple[slice, slice]:
    """The central ``crop`` x ``crop`` region (or less, for a smaller image) that
    :func:`estimate_psf` reads: passing only its luminance gives the same estimate."""
    y0, x0 = max((height - crop) // 2, 0), max((width - crop) // 2, 0)
    return slice(y0, y0 + crop), slice(x0, x0 + crop)


def estimate_psf(gray: np.ndarray, sigma: float, crop: int = 512) -> PSFEstimate:
    """Estimate the blur of ``gray`` (float32 H x W luminance in [0, 1]); ``sigma`` is its noise
    std ([0, 1] units). Uses a central ``crop`` x ``crop`` region. Images smaller than the
    128-px analysis window get ``family="none"``."""
    h, w = gray.shape
    if min(h, w) < WINDOW:
        return PSFEstimate("none", 0.0, 0.0, np.ones((1, 1), np.float32), 0.0)
    region = gray[central_region(h, w, crop)].astype(np.float32)
    spectrum, energy = welch_spectrum(region)
    noise = max(sigma, 1.0 / 255.0 / np.sqrt(12.0)) ** 2 * energy
    scorer = _Scorer(spectrum, noise)

    best = PSFEstimate("none", 0.0, 0.0, np.ones((1, 1), np.float32), scorer.score(None))
    for family, size, angle, kernel in psf_bank():
        s = scorer.score(kernel)
        if s < best.score:
            best = PSFEstimate(family, size, angle, kernel, s)
    if best.family == "disk":
        candidates = [("disk", r, 0.0) for r in np.arange(best.size - 0.4, best.size + 0.41, 0.2) if r >= 0.8]
    elif best.family == "line":
        candidates = [("line", length, angle % 180.0)
                      for length in range(max(int(best.size) - 6, 2), int(best.size) + 7)
                      for angle in np.arange(best.angle_deg - 6, best.angle_deg + 6.1, 3)]
    else:
        candidates = []
    for family, size, angle in candidates:
        kernel = make_psf(family, size, angle)
        s = scorer.score(kernel)
        if s < best.score:
            best = PSFEstimate(family, float(size), float(angle), kernel, s)
    return best
