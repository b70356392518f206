"""Float ↔ integer sample conversion."""

from __future__ import annotations

import numpy as np

#: Rows converted at a time by :func:`quantize`, so that its float32 scratch is a band, not a
#: second full-size copy of the image.
QUANTIZE_BAND_ROWS = 64


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
    :func:`to_unit_float` comes back bit-exact. Works :data:`QUANTIZE_BAND_ROWS` rows at a time."""
    top = np.float32(255.0 if bit_depth == 8 else 65535.0)
    values = np.asarray(values)
    out = np.empty(values.shape, np.uint8 if bit_depth == 8 else np.uint16)
    flat = values.ndim == 0
    src, dst = (values.reshape(1), out.reshape(1)) if flat else (values, out)
    scaled = None
    for top_row in range(0, src.shape[0], QUANTIZE_BAND_ROWS):
        band = slice(top_row, top_row + QUANTIZE_BAND_ROWS)
        part = src[band]
        if scaled is None or scaled.shape != part.shape:
            scaled = np.empty(part.shape, np.float32)
        np.multiply(part, top, out=scaled, dtype=np.float32)
        np.fmax(scaled, 0.0, out=scaled)  # fmax/fmin also turn NaN into the bound: NaN → 0
        np.fmin(scaled, top, out=scaled)
        np.rint(scaled, out=scaled)
        dst[band] = scaled  # same cast as astype (unsafe, exact for integral values in range)
    return out
