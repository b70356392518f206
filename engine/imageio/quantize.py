"""Float ↔ integer sample conversion."""

from __future__ import annotations

import numpy as np


def to_unit_float(samples: np.ndarray) -> np.ndarray:
    """uint8/uint16 samples → float32 in [0, 1]; float samples are returned as float32 unchanged."""
    if samples.dtype.kind == "f":
        return samples.astype(np.float32, copy=False)
    out = samples.astype(np.float32)
    out /= float(np.iinfo(samples.dtype).max)
    return out


def quantize(values: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float values in [0, 1] (clipped; NaN → 0) → uint8 (``bit_depth`` 8) or uint16 (16),
    rounding to the nearest level (``np.round(x * 65535)``), so 16-bit data read with
    :func:`to_unit_float` comes back bit-exact."""
    top = np.float32(255.0 if bit_depth == 8 else 65535.0)
    scaled = np.multiply(values, top, dtype=np.float32)
    np.fmax(scaled, 0.0, out=scaled)  # fmax/fmin also turn NaN into the bound: NaN → 0
    np.fmin(scaled, top, out=scaled)
    np.rint(scaled, out=scaled)
    return scaled.astype(np.uint8 if bit_depth == 8 else np.uint16)
