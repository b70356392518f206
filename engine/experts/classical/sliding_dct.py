"""Shrinkage in the DCT of every overlapping 8x8 patch (Yu & Sapiro's sliding-DCT denoiser,
with BM3D's two steps: hard thresholding, then empirical Wiener shrinkage against the pilot).

All patches are transformed at once with separable 1-D filters (``cv2.filter2D``), so the cost
is ~150 eight-tap filter passes per step instead of a Python loop over patches. Arrays are
float32, H x W x C (C = 1..4), values in any range; sigma is in the same units.
"""

from __future__ import annotations

import cv2
import numpy as np

PATCH = 8


def dct_matrix(n: int = PATCH) -> np.ndarray:
    """Orthonormal DCT-II matrix, row k = k-th basis vector, float32 n x n."""
    k = np.arange(n)[:, None]
    m = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * m + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d.astype(np.float32)


def _filter(a: np.ndarray, kernel: np.ndarray, anchor: tuple[int, int]) -> np.ndarray:
    return cv2.filter2D(a, cv2.CV_32F, kernel, anchor=anchor, borderType=cv2.BORDER_REFLECT)


def forward(image: np.ndarray) -> list[list[np.ndarray]]:
    """DCT coefficients of the 8x8 patch whose top-left corner is at each pixel.

    Returns ``c[u][v]`` (vertical frequency u, horizontal v), each an array shaped like
    ``image``. Patches crossing the bottom/right border see a reflected image.
    """
    d = dct_matrix()
    rows = [_filter(image, d[v][None, :], (0, 0)) for v in range(PATCH)]
    return [[_filter(rows[v], d[u][:, None], (0, 0)) for v in range(PATCH)] for u in range(PATCH)]


def aggregate(coefs: list[list[np.ndarray]], weight: np.ndarray) -> np.ndarray:
    """Inverse-transform every patch, weight it by ``weight`` (per patch position) and average
    the overlapping estimates at each pixel. ``coefs`` must already include nothing of the
    weight; returns an array shaped like one coefficient map."""
    d = dct_matrix()
    flip = d[:, ::-1]
    anchor_end = PATCH - 1
    total = None
    for u in range(PATCH):
        acc = None
        for v in range(PATCH):
            r = _filter(coefs[u][v] * weight, flip[v][None, :].copy(), (anchor_end, 0))
            acc = r if acc is None else acc + r
        col = _filter(acc, flip[u][:, None].copy(), (0, anchor_end))
        total = col if total is None else total + col
    box = np.ones((PATCH, PATCH), np.float32)
    norm = _filter(weight, box, (anchor_end, anchor_end))
    return total / np.maximum(norm, 1e-12)


def hard_threshold(image: np.ndarray, sigma, factor: float = 2.7) -> np.ndarray:
    """Step 1: zero every AC coefficient below ``factor * sigma``; weight each patch by
    1 / (number of kept coefficients). ``sigma``: scalar or one value per channel."""
    coefs = forward(image)
    thr = np.asarray(sigma, np.float32) * factor
    kept = np.zeros(image.shape, np.float32)
    for u in range(PATCH):
        for v in range(PATCH):
            if u == 0 and v == 0:
                kept += 1.0
                continue
            c = coefs[u][v]
            mask = np.abs(c) >= thr
            coefs[u][v] = c * mask
            kept += mask
    return aggregate(coefs, 1.0 / kept)


def wiener(image: np.ndarray, pilot: np.ndarray, sigma) -> np.ndarray:
    """Step 2: shrink each coefficient of ``image`` by p^2 / (p^2 + sigma^2), where p is the
    pilot's coefficient; weight each patch by 1 / sum(shrink^2)."""
    coefs = forward(image)
    ref = forward(pilot)
    var = np.asarray(sigma, np.float32) ** 2
    energy = np.zeros(image.shape, np.float32)
    for u in range(PATCH):
        for v in range(PATCH):
            p2 = ref[u][v] * ref[u][v]
            shrink = p2 / (p2 + var)
            coefs[u][v] = coefs[u][v] * shrink
            energy += shrink * shrink
            ref[u][v] = None  # free as we go
    return aggregate(coefs, 1.0 / np.maximum(energy, 1e-3))


def denoise(image: np.ndarray, sigma, second_step: bool = True,
            threshold_factor: float = 2.7) -> np.ndarray:
    """Denoise ``image`` (H x W x C float32) corrupted by white noise of std ``sigma``
    (scalar or per channel, same units as the image). Returns float32, same shape, unclipped."""
    image = np.ascontiguousarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[2] == 1:
        # cv2 drops a trailing singleton channel; work on the 2-D plane and restore it.
        return denoise(image[..., 0], sigma, second_step, threshold_factor)[..., None]
    pilot = hard_threshold(image, sigma, threshold_factor)
    if not second_step:
        return pilot
    return wiener(image, pilot, sigma)
