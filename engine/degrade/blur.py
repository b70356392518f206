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
