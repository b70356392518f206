"""Colour transforms shared by the classical experts (float32, values unclipped)."""

from __future__ import annotations

import numpy as np

from ...color import JFIF_YCBCR

#: Orthonormal opponent transform (rows: luminance, red-blue, green-magenta). Being orthonormal it
#: keeps white noise white with the same sigma in every channel.
OPPONENT = (np.array([[1, 1, 1], [1, 0, -1], [1, -2, 1]], np.float64)
            / np.sqrt([3.0, 2.0, 6.0])[:, None]).astype(np.float32)

YCBCR = JFIF_YCBCR
YCBCR_INV = np.linalg.inv(YCBCR.astype(np.float64)).astype(np.float32)


def to_opponent(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 RGB → opponent channels (orthonormal), float32."""
    return rgb.astype(np.float32, copy=False) @ OPPONENT.T


def from_opponent(opp: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_opponent`."""
    return opp @ OPPONENT


def to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 RGB in [0, 1] → JFIF Y in [0, 1], Cb/Cr in [-0.5, 0.5], float32."""
    return rgb.astype(np.float32, copy=False) @ YCBCR.T


def from_ycbcr(ycc: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_ycbcr`."""
    return ycc @ YCBCR_INV.T
