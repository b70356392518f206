"""Blur: linear camera-shake (motion) and out-of-focus (defocus disk) point-spread functions."""

from __future__ import annotations

import cv2
import numpy as np

from ._common import as_image, finish

_SUPERSAMPLE = 8


def motion_kernel(length_px: float, angle_deg: float) -> np.ndarray:
    """Anti-aliased straight-line PSF of ``length_px`` pixels at ``angle_deg`` (0 = horizontal,
    counter-clockwise), normalised to sum 1. float32, odd square size."""
    length_px = max(float(length_px), 1.0)
    size = int(np.ceil(length_px)) // 2 * 2 + 3
    n = size * _SUPERSAMPLE
    c = (n - 1) / 2.0
    theta = np.deg2rad(angle_deg)
    t = np.linspace(-(length_px - 1) / 2.0, (length_px - 1) / 2.0, int(length_px * _SUPERSAMPLE * 4) + 1)
    xs = np.clip(np.round(c + t * np.cos(theta) * _SUPERSAMPLE).astype(int), 0, n - 1)
    ys = np.clip(np.round(c - t * np.sin(theta) * _SUPERSAMPLE).astype(int), 0, n - 1)
    fine = np.zeros((n, n), np.float32)
    np.add.at(fine, (ys, xs), 1.0)
    fine = cv2.GaussianBlur(fine, (0, 0), _SUPERSAMPLE * 0.35)
    kernel = fine.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).sum(axis=(1, 3))
    return (kernel / kernel.sum()).astype(np.float32)


def disk_kernel(radius_px: float) -> np.ndarray:
    """Anti-aliased uniform disk PSF of ``radius_px`` pixels, normalised to sum 1. float32."""
    radius_px = max(float(radius_px), 0.5)
    size = int(np.ceil(radius_px)) * 2 + 1
    n = size * _SUPERSAMPLE
    coords = (np.arange(n) + 0.5) / _SUPERSAMPLE - size / 2.0
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    fine = (xx ** 2 + yy ** 2 <= radius_px ** 2).astype(np.float32)
    kernel = fine.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).sum(axis=(1, 3))
    return (kernel / kernel.sum()).astype(np.float32)


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve every channel of ``image`` with ``kernel`` (reflecting borders); float32 HxWx3."""
    out = as_image(image)
    res = cv2.filter2D(out, -1, np.ascontiguousarray(kernel[::-1, ::-1]), borderType=cv2.BORDER_REFLECT_101)
    return finish(res.reshape(out.shape))


def motion_blur(image: np.ndarray, length_px: float, angle_deg: float) -> np.ndarray:
    """Linear motion blur of ``length_px`` pixels along ``angle_deg``; ``length_px <= 1`` is the identity.
    float32 HxWx3 in [0, 1]."""
    if length_px <= 1.0:
        return finish(as_image(image))
    return convolve(image, motion_kernel(length_px, angle_deg))


def defocus_blur(image: np.ndarray, radius_px: float) -> np.ndarray:
    """Out-of-focus blur with a uniform disk of ``radius_px`` pixels; ``radius_px < 0.5`` is the
    identity. float32 HxWx3 in [0, 1]."""
    if radius_px < 0.5:
        return finish(as_image(image))
    return convolve(image, disk_kernel(radius_px))


def shake_kernel(extent_px: float, rng: np.random.Generator, anxiety: float = 0.3,
                 samples: int = 256) -> np.ndarray:
    """Camera-shake PSF: a random 2-D trajectory of the camera during the exposure (Boracchi &
    Foi, "Modeling the performance of image restoration from motion blur", IEEE TIP 2012): a
    random walk with inertia (velocity kept, random acceleration of relative size ``anxiety`` in
    [0, 1]: 0 = a straight line, 1 = jittery), rescaled so its longest side spans ``extent_px``
    pixels, drawn with sub-pixel accuracy and equal time per sample (so slow parts of the path
    are brighter, as in real shake). float32, odd square size, sums to 1. Deterministic for ``rng``."""
    extent_px = max(float(extent_px), 1.0)
    velocity = np.exp(1j * rng.uniform(0.0, 2 * np.pi))
    path = np.zeros(samples, np.complex128)
    for i in range(1, samples):
        kick = anxiety * (rng.normal() + 1j * rng.normal()) / np.sqrt(2.0)
        # a pull back towards the start keeps the walk compact, like a hand steadying the camera
        velocity = velocity + kick - 0.1 * anxiety * path[i - 1] / max(abs(path[i - 1]), 1.0)
        velocity /= max(abs(velocity), 1e-9)
        path[i] = path[i - 1] + velocity
    path -= (path.real.min() + path.real.max()) / 2 + 1j * (path.imag.min() + path.imag.max()) / 2
    span = max(np.ptp(path.real), np.ptp(path.imag), 1e-9)
    path *= (extent_px - 1.0) / span if extent_px > 1.0 else 0.0
    size = int(np.ceil(extent_px)) // 2 * 2 + 3
    n = size * _SUPERSAMPLE
    c = (n - 1) / 2.0
    fine = np.zeros((n, n), np.float32)
    xs = np.clip(np.round(c + path.real * _SUPERSAMPLE).astype(int), 0, n - 1)
    ys = np.clip(np.round(c + path.imag * _SUPERSAMPLE).astype(int), 0, n - 1)
    np.add.at(fine, (ys, xs), 1.0)
    fine = cv2.GaussianBlur(fine, (0, 0), _SUPERSAMPLE * 0.35)
    kernel = fine.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).sum(axis=(1, 3))
    return (kernel / kernel.sum()).astype(np.float32)


def gaussian_kernel(sigma_px: float) -> np.ndarray:
    """Isotropic Gaussian PSF of std ``sigma_px`` pixels (a soft lens, slight misfocus), size
    2·ceil(3σ)+1, normalised to sum 1. float32."""
    sigma_px = max(float(sigma_px), 0.1)
    r = int(np.ceil(3 * sigma_px))
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma_px) ** 2)
    k = np.outer(g, g)
    return (k / k.sum()).astype(np.float32)


def convolve_linear(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve in *linear light* (as optics do: sRGB → linear, PSF, → sRGB), reflecting
    borders. Bright highlights spread into dark surroundings as in real blurred photos.
    float32 HxWx3 in [0, 1]."""
    from ._common import linear_to_srgb, srgb_to_linear

    lin = srgb_to_linear(as_image(image))
    res = cv2.filter2D(lin, -1, np.ascontiguousarray(kernel[::-1, ::-1]), borderType=cv2.BORDER_REFLECT_101)
    return finish(linear_to_srgb(res.reshape(lin.shape)))
