"""Full-reference image quality: PSNR and SSIM on float images in [0, 1]."""

from __future__ import annotations

import math

import cv2
import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB (peak 1) of two same-shape arrays in [0, 1]; 100 for identical inputs."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 100.0 if mse <= 1e-12 else 10.0 * math.log10(1.0 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian window σ = 1.5, K1 = 0.01, K2 = 0.03, peak 1) over
    the channels of two HxWx3 (or HxW) float arrays in [0, 1]."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    vals = []
    for ch in range(a.shape[2]):
        x, y = a[..., ch], b[..., ch]
        mx, my = blur(x), blur(y)
        sxx = blur(x * x) - mx * mx
        syy = blur(y * y) - my * my
        sxy = blur(x * y) - mx * my
        m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        vals.append(float(m[5:-5, 5:-5].mean()) if min(m.shape) > 10 else float(m.mean()))
    return float(np.mean(vals))
