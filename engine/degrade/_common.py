"""Shared helpers for the synthetic degradations: input checking and sRGB transfer curves."""

from __future__ import annotations

import numpy as np


def as_image(image: np.ndarray) -> np.ndarray:
    """Return a float32 HxWx3 copy of ``image`` (values expected in [0, 1]).

    Accepts HxW (grey, broadcast to three channels) and HxWx3 arrays of any real dtype;
    uint8/uint16 are rescaled to [0, 1]. The input is never modified.
    """
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    else:
        arr = arr.astype(np.float32, copy=True)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {arr.shape}")
    return arr


def finish(image: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and return float32, C-contiguous."""
    return np.ascontiguousarray(np.clip(image, 0.0, 1.0), dtype=np.float32)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] → linear light in [0, 1] (IEC 61966-2-1 curve), float32."""
    x = np.clip(x, 0.0, 1.0).astype(np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(y: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] → sRGB-encoded values in [0, 1], float32."""
    y = np.clip(y, 0.0, 1.0).astype(np.float32)
    return np.where(y <= 0.0031308, 12.92 * y, 1.055 * np.power(y, 1 / 2.4) - 0.055).astype(np.float32)


