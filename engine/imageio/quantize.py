"""Float ↔ integer sample conversion, row band by row band.

Full-size arrays made here (:func:`releasable_empty`) live in an anonymous memory mapping of
their own, so that a conversion that consumes its source (:func:`to_unit_float` of freshly decoded
samples, :func:`quantize` of pixels a one-shot save needs no more) can hand the source's converted
rows back to the system as it goes (:func:`release_rows`): the source and the result then never
both sit in memory at full size.
"""

from __future__ import annotations

import math
import mmap
from typing import Optional

import numpy as np

#: Rows converted at a time by :func:`quantize`, so that its float32 scratch is a band, not a
#: second full-size copy of the image.
QUANTIZE_BAND_ROWS = 64
#: Smaller arrays are ordinary ones (a mapping per small array is not worth it).
RELEASABLE_MIN_BYTES = 1 << 22


def releasable_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised C-contiguous array whose rows :func:`release_rows` can give back to the
    system before the array is freed (an anonymous mapping of its own, unmapped with the array);
    an ordinary ``np.empty`` below :data:`RELEASABLE_MIN_BYTES` or where mappings cannot be advised."""
    dtype = np.dtype(dtype)
    count = math.prod(shape)
    if count * dtype.itemsize < RELEASABLE_MIN_BYTES or not hasattr(mmap, "MADV_DONTNEED"):
        return np.empty(shape, dtype)
    mapping = mmap.mmap(-1, count * dtype.itemsize, flags=mmap.MAP_PRIVATE)  # private: released pages are freed
    return np.frombuffer(mapping, dtype, count).reshape(shape)


def _mapping(array: np.ndarray) -> Optional[tuple[mmap.mmap, int]]:
    """``(mapping, bytes per row)`` when ``array``'s rows are disjoint, in-order blocks that tile a
    :func:`releasable_empty` mapping (the array itself, or some of its channels or columns), else ``None``."""
    owner = array
    while isinstance(owner, np.ndarray) and not isinstance(owner.base, memoryview):
        owner = owner.base
    if not isinstance(owner, np.ndarray) or not isinstance(owner.base.obj, mmap.mmap) or array.ndim == 0:
        return None
    mapping, row = owner.base.obj, array.strides[0]
    offset = array.__array_interface__["data"][0] - owner.__array_interface__["data"][0]
    if row <= 0 or row * array.shape[0] != len(mapping) or not 0 <= offset < row:
        return None
    return mapping, row


def is_releasable(array: np.ndarray) -> bool:
    """Whether :func:`release_rows` gives ``array``'s rows back (a :func:`releasable_empty` array
    or a view of some of its channels or columns); for others it does nothing."""
    return _mapping(array) is not None


def release_rows(array: np.ndarray, start: int, stop: int) -> None:
    """Give back to the system the memory pages lying wholly inside rows ``[start, stop)`` of
    ``array`` (made by :func:`releasable_empty`, or a view of some of its channels or columns;
    others are left as they are). Those rows read as zeros afterwards, with every channel and
    column of the underlying array: call it only for rows nothing reads again."""
    found = _mapping(array)
    if found is None or stop <= start:
        return
    mapping, row = found  # the rows tile the mapping from its start: row r is bytes [r·row, (r+1)·row)
    first = -(-(start * row) // mmap.PAGESIZE) * mmap.PAGESIZE
    last = min(stop, array.shape[0]) * row // mmap.PAGESIZE * mmap.PAGESIZE
    if last > first:
        mapping.madvise(mmap.MADV_DONTNEED, first, last - first)


def to_unit_float(samples: np.ndarray, *, consume: bool = False) -> np.ndarray:
    """uint8/uint16 samples → float32 in [0, 1] (a :func:`releasable_empty` array); float
    samples are returned as float32 unchanged. ``consume``: ``samples`` are read no more, and
    their rows are released as they are converted (where ``samples`` allow it)."""
    if samples.dtype.kind == "f":
        return samples.astype(np.float32, copy=False)
    out = releasable_empty(samples.shape, np.float32)
    top = float(np.iinfo(samples.dtype).max)
    if out.ndim == 0:
        out[...] = samples
        out /= top
        return out
    for row in range(0, samples.shape[0], QUANTIZE_BAND_ROWS):
        band = slice(row, row + QUANTIZE_BAND_ROWS)
        part = out[band]
        part[...] = samples[band]  # the same cast and division as ``samples.astype(np.float32) / top``
        part /= top
        if consume:
            release_rows(samples, band.start, min(band.stop, samples.shape[0]))
    return out


def quantize(values: np.ndarray, bit_depth: int, *, consume: bool = False) -> np.ndarray:
    """Float values in [0, 1] (clipped; NaN → 0) → uint8 (``bit_depth`` 8) or uint16 (16),
    rounding to the nearest level (``np.round(x * 65535)``), so 16-bit data read with
    :func:`to_unit_float` comes back bit-exact. Works :data:`QUANTIZE_BAND_ROWS` rows at a time.
    ``consume``: ``values`` are read no more; their rows are released as they are converted
    (:func:`release_rows`, where ``values`` allow it)."""
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
        if consume and not flat:
            release_rows(values, band.start, band.start + len(part))
    return out
