"""Non-blind deconvolution (regularised Wiener in the Fourier domain) and a small PSF bank.

Arrays are float32 H x W (one channel) with values in [0, 1]; kernels are float32, odd-sized,
normalised to sum 1, in correlation-free "PSF" orientation (the blur is ``image ⊛ kernel``).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import scipy.fft as sfft


def disk_psf(radius: float) -> np.ndarray:
    """Uniform defocus disk of ``radius`` pixels (anti-aliased by 8x supersampling)."""
    radius = max(float(radius), 0.5)
    size = int(np.ceil(radius)) * 2 + 1
    n = size * 8
    coords = (np.arange(n) + 0.5) / 8 - size / 2.0
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    fine = (xx ** 2 + yy ** 2 <= radius ** 2).astype(np.float32)
    k = fine.reshape(size, 8, size, 8).sum(axis=(1, 3))
    return (k / k.sum()).astype(np.float32)


def line_psf(length: float, angle_deg: float) -> np.ndarray:
    """Straight camera-shake line of ``length`` pixels at ``angle_deg`` (0 = horizontal,
    counter-clockwise), anti-aliased by 8x supersampling."""
    length = max(float(length), 1.0)
    size = int(np.ceil(length)) // 2 * 2 + 3
    n = size * 8
    c = (n - 1) / 2.0
    theta = np.deg2rad(angle_deg)
    t = np.linspace(-(length - 1) / 2.0, (length - 1) / 2.0, int(length * 32) + 1)
    xs = np.clip(np.round(c + t * np.cos(theta) * 8).astype(int), 0, n - 1)
    ys = np.clip(np.round(c - t * np.sin(theta) * 8).astype(int), 0, n - 1)
    fine = np.zeros((n, n), np.float32)
    np.add.at(fine, (ys, xs), 1.0)
    fine = cv2.GaussianBlur(fine, (0, 0), 8 * 0.35)
    k = fine.reshape(size, 8, size, 8).sum(axis=(1, 3))
    return (k / k.sum()).astype(np.float32)


@lru_cache(maxsize=1)
def psf_bank() -> tuple[tuple[str, float, float, np.ndarray], ...]:
    """Coarse candidate PSFs: defocus disks (radius 1..7 px) and camera-shake lines (length
    3..25 px, every 15 degrees). Each entry is ``(family, size, angle_deg, kernel)`` with
    family ``"disk"`` (size = radius) or ``"line"`` (size = length)."""
    bank: list[tuple[str, float, float, np.ndarray]] = []
    for r in np.arange(1.0, 7.01, 0.5):
        bank.append(("disk", float(r), 0.0, disk_psf(r)))
    for length in range(3, 26, 2):
        for angle in range(0, 180, 15):
            bank.append(("line", float(length), float(angle), line_psf(length, angle)))
    for entry in bank:
        entry[3].setflags(write=False)
    return tuple(bank)


def make_psf(family: str, size: float, angle_deg: float = 0.0) -> np.ndarray:
    """The PSF of a bank entry: ``"disk"`` of radius ``size`` or ``"line"`` of length ``size``."""
    return disk_psf(size) if family == "disk" else line_psf(size, angle_deg)


def _psf_otf(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Optical transfer function of ``kernel`` centred at the origin, for an rfft2 of ``shape``."""
    pad = np.zeros(shape, np.float32)
    kh, kw = kernel.shape
    pad[:kh, :kw] = kernel
    pad = np.roll(pad, (-(kh // 2), -(kw // 2)), axis=(0, 1))
    return sfft.rfft2(pad)


def gradient_energy(shape: tuple[int, int]) -> np.ndarray:
    """|Dx|^2 + |Dy|^2 of forward differences, for an rfft2 of ``shape``."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    return (4 * np.sin(np.pi * fy) ** 2 + 4 * np.sin(np.pi * fx) ** 2).astype(np.float32)


def taper_pad(channel: np.ndarray, margin: int) -> np.ndarray:
    """Pad by ``margin`` with mirrored content that fades to the mean, so the padded array is
    smooth across its periodic wrap-around (kills border ringing in FFT deconvolution)."""
    padded = np.pad(channel, margin, mode="symmetric")
    h, w = padded.shape

    def ramp(n: int) -> np.ndarray:
        return np.clip(np.minimum(np.arange(n), np.arange(n)[::-1]) / max(margin, 1), 0, 1)

    wy, wx = ramp(h), ramp(w)
    weight = (0.5 - 0.5 * np.cos(np.pi * np.minimum.outer(wy, wx))).astype(np.float32)
    mean = float(channel.mean())
    return (padded * weight + mean * (1 - weight)).astype(np.float32)


def wiener_deconvolve(channels: np.ndarray, kernel: np.ndarray, reg: float) -> np.ndarray:
    """Deconvolve ``channels`` (H x W or H x W x C float32) by ``kernel`` with a gradient prior:
    X = conj(K) Y / (|K|^2 + reg (|Dx|^2 + |Dy|^2)). ``reg`` ~ noise variance / gradient
    variance (1e-4 for clean inputs, 1e-2 for noisy). Borders are taper-padded. Unclipped."""
    squeeze = channels.ndim == 2
    arr = channels[..., None] if squeeze else channels
    margin = max(kernel.shape) * 2 + 8
    h, w = arr.shape[:2]
    shape = (sfft.next_fast_len(h + 2 * margin, real=True), sfft.next_fast_len(w + 2 * margin, real=True))
    otf = _psf_otf(kernel, shape)
    denom = (np.abs(otf) ** 2 + reg * gradient_energy(shape)).astype(np.float32)
    filt = np.conj(otf) / denom
    out = np.empty(arr.shape, np.float32)
    for c in range(arr.shape[2]):
        padded = np.full(shape, float(arr[..., c].mean()), np.float32)
        padded[:h + 2 * margin, :w + 2 * margin] = taper_pad(arr[..., c], margin)
        res = sfft.irfft2(sfft.rfft2(padded) * filt, s=shape)
        out[..., c] = res[margin:margin + h, margin:margin + w]
    return out[..., 0] if squeeze else out
