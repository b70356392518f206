"""JPEG quantisation: the standard (libjpeg/IJG) tables, block DCTs on the 8x8 grid, and an
estimate of the quality a decoded JPEG was saved at.

Luma values here are JFIF Y on the 0..255 scale minus 128 (as the encoder sees them).
"""

from __future__ import annotations

import numpy as np

from ...analysis.jpeg_tables import STD_LUMA
from ...color import JFIF_YCBCR


def luma_table(quality: int) -> np.ndarray:
    """The IJG luminance table libjpeg (and Pillow) use at ``quality`` 1..100 (float32 8x8)."""
    q = int(np.clip(quality, 1, 100))
    scale = 5000 / q if q < 50 else 200 - 2 * q
    return np.clip(np.floor((STD_LUMA.astype(np.float32) * scale + 50) / 100), 1, 255).astype(np.float32)


def block_dct(channel: np.ndarray) -> np.ndarray:
    """Orthonormal 8x8 DCT of every aligned block of an H x W float32 array (H, W multiples of 8).
    Returns (H/8, W/8, 8, 8) float32."""
    h, w = channel.shape
    blocks = channel.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3)
    d = _dct8()
    return np.einsum("ui,abij,vj->abuv", d, blocks, d, optimize=True).astype(np.float32)


def block_idct(coefs: np.ndarray) -> np.ndarray:
    """Inverse of :func:`block_dct`: (H/8, W/8, 8, 8) → H x W float32."""
    d = _dct8()
    blocks = np.einsum("ui,abuv,vj->abij", d, coefs, d, optimize=True)
    a, b = blocks.shape[:2]
    return blocks.transpose(0, 2, 1, 3).reshape(a * 8, b * 8).astype(np.float32)


def _dct8() -> np.ndarray:
    k = np.arange(8)[:, None]
    m = np.arange(8)[None, :]
    d = np.cos(np.pi * (2 * m + 1) * k / 16) * np.sqrt(2.0 / 8)
    d[0] /= np.sqrt(2.0)
    return d.astype(np.float32)


def lattice_score(coefs: np.ndarray, table: np.ndarray) -> float:
    """How well ``coefs`` (N x 8 x 8, luma DCT of aligned blocks) sit on multiples of ``table``:
    mean over frequencies of the coefficients' agreement cos(2 pi c / q), counting only
    frequencies where the table step is small enough to be tested by the data."""
    phase = np.cos(2 * np.pi * coefs / table[None])
    spread = np.abs(coefs).mean(axis=0)
    usable = spread > table * 0.25
    usable[0, 0] = False
    if not usable.any():
        return 0.0
    return float(phase.mean(axis=0)[usable].sum() / usable.sum() - 0.02 * (~usable).sum() / 64)


def estimate_quality(rgb: np.ndarray, max_blocks: int = 20000) -> tuple[int, float]:
    """Estimate the IJG quality (1..100) a decoded JPEG (float32 H x W x 3 in [0, 1], 8x8 grid at
    the top-left corner) was saved at, and the lattice score of that quality (about 1 for a real
    JPEG, near 0 when the image does not look JPEG-quantised)."""
    y = (rgb.astype(np.float32) @ JFIF_YCBCR[0]) * 255.0 - 128.0
    h, w = y.shape[0] // 8 * 8, y.shape[1] // 8 * 8
    if h == 0 or w == 0:
        return 100, 0.0
    coefs = block_dct(np.ascontiguousarray(y[:h, :w])).reshape(-1, 8, 8)
    if len(coefs) > max_blocks:
        coefs = coefs[np.linspace(0, len(coefs) - 1, max_blocks).astype(int)]
    best_q, best_s = 100, -np.inf
    for q in range(5, 99):
        s = lattice_score(coefs, luma_table(q))
        if s > best_s + 1e-6:
            best_q, best_s = q, s
    return best_q, float(best_s)
