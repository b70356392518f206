"""Quantisation-constraint projection (QCP) for JPEG restoration, with the file's real tables.

A JPEG stores, for every 8x8 block of each component (Y at full size, Cb/Cr after chroma
subsampling), DCT coefficients rounded to multiples of the table's step. Whatever the original
photo was, its coefficient lay within half a step of the stored one. Given a restored estimate,
:func:`project` moves each of its coefficients into that interval (and changes nothing else), so
a restoration can smooth away blocking and ringing but never contradict what the file says.

The stored coefficients are recovered from the decoded pixels: luma exactly (up to rounding) by
re-transforming Y; chroma by undoing the decoder's "fancy" (triangle) upsampling of the
subsampled planes (2x2 averaging of the decoded plane gives the stored plane filtered by
[1, 6, 1]/8 on each axis, which is inverted by a few fixed-point steps). Blocks that contain
clipped pixels (0 or 255 in any channel) cannot be recovered reliably and are left free.

Sample values here are on the 0..255 scale; Y is centred by −128 and Cb/Cr are centred on 0,
as the encoder sees them. Arrays are in the file's stored orientation (grid at the top-left).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...analysis.jpeg_tables import JpegQuantisation
from ...imageio.orientation import apply_orientation
from .color import YCBCR, YCBCR_INV
from .jpeg_quantisation import block_dct, block_idct

#: Fixed-point steps that undo the decoder's chroma upsampling; the error shrinks at least 2x per step.
UNSMOOTH_STEPS = 10
#: A decoded value at or beyond these 0..255 levels may have been clipped by the decoder.
CLIP_LOW, CLIP_HIGH = 0.5, 254.5

_INVERSE_ORIENTATION = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}


def to_stored(image: np.ndarray, orientation: int) -> np.ndarray:
    """An upright photo (as the loader returns it) back in the file's stored orientation."""
    return apply_orientation(image, _INVERSE_ORIENTATION.get(int(orientation), 1))


def to_upright(image: np.ndarray, orientation: int) -> np.ndarray:
    """Inverse of :func:`to_stored`."""
    return apply_orientation(image, int(orientation) if 1 <= int(orientation) <= 8 else 1)


def _ycc255(rgb: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] → Y−128, Cb, Cr on the 0..255 scale (float32 H x W x 3)."""
    ycc = rgb.astype(np.float32, copy=False) @ (YCBCR.T * np.float32(255.0))
    ycc[..., 0] -= 128.0
    return ycc


def _rgb01(ycc: np.ndarray) -> np.ndarray:
    y = ycc.copy()
    y[..., 0] += 128.0
    return (y @ YCBCR_INV.T) / np.float32(255.0)


def _box_down(plane: np.ndarray, fy: int, fx: int) -> np.ndarray:
    h, w = plane.shape[0] // fy, plane.shape[1] // fx
    return plane[:h * fy, :w * fx].reshape(h, fy, w, fx).mean(axis=(1, 3), dtype=np.float32)


def _triangle(plane: np.ndarray, axis: int) -> np.ndarray:
    """[1, 6, 1]/8 along ``axis`` with edge replication (what 2x2 averaging of a fancy-upsampled plane is)."""
    pad = [(0, 0), (0, 0)]
    pad[axis] = (1, 1)
    p = np.pad(plane, pad, mode="edge")
    n = plane.shape[axis]
    lo = np.take(p, np.arange(0, n), axis=axis)
    mid = np.take(p, np.arange(1, n + 1), axis=axis)
    hi = np.take(p, np.arange(2, n + 2), axis=axis)
    return (lo + 6 * mid + hi) / np.float32(8.0)


def _unsmooth(avg: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """The stored chroma plane whose fancy upsampling, 2x2-averaged, gives ``avg``."""
    axes = ([0] if fy == 2 else []) + ([1] if fx == 2 else [])
    if not axes:
        return avg
    est = avg.copy()
    for _ in range(UNSMOOTH_STEPS):
        k = est
        for ax in axes:
            k = _triangle(k, ax)
        est = est + (avg - k)
    return est


@dataclass
class QuantisationConstraints:
    """Per component: the interval [low, high] each aligned block's DCT coefficient must stay in
    (arrays ``(H/8, W/8, 8, 8)`` over the complete blocks of that component's plane), and which
    blocks are constrained at all (``free``: blocks left unconstrained)."""

    low: list[np.ndarray]
    high: list[np.ndarray]
    free: list[np.ndarray]
    factors: tuple[int, int]
    colour: bool


def _intervals(plane: np.ndarray, table: np.ndarray, clipped: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h8, w8 = plane.shape[0] // 8 * 8, plane.shape[1] // 8 * 8
    coefs = block_dct(np.ascontiguousarray(plane[:h8, :w8]))
    q = table.astype(np.float32)
    centre = np.round(coefs / q) * q
    free = clipped[:h8, :w8].reshape(h8 // 8, 8, w8 // 8, 8).any(axis=(1, 3))
    return centre - q / 2, centre + q / 2, free


def constraints(decoded: np.ndarray, quant: JpegQuantisation) -> QuantisationConstraints:
    """The quantisation intervals of a decoded JPEG (float32 H x W x 3 in [0, 1], the file's
    stored orientation, exactly as decoded)."""
    ycc = _ycc255(decoded)
    clipped = ((decoded * 255.0 <= CLIP_LOW) | (decoded * 255.0 >= CLIP_HIGH)).any(axis=2)
    if not quant.is_colour:
        lo, hi, free = _intervals(ycc[..., 0], quant.luma, clipped)
        return QuantisationConstraints([lo], [hi], [free], (1, 1), False)
    fy, fx = quant.chroma_factors
    low, high, frees = [], [], []
    lo, hi, free = _intervals(ycc[..., 0], quant.luma, clipped)
    low.append(lo), high.append(hi), frees.append(free)
    clipped_small = _box_down(clipped.astype(np.float32), fy, fx) > 0
    for c in (1, 2):
        plane = _unsmooth(_box_down(ycc[..., c], fy, fx), fy, fx)
        lo, hi, free = _intervals(plane, quant.tables[c], clipped_small)
        low.append(lo), high.append(hi), frees.append(free)
    return QuantisationConstraints(low, high, frees, (fy, fx), True)


def _project_plane(plane: np.ndarray, lo: np.ndarray, hi: np.ndarray, free: np.ndarray) -> np.ndarray:
    """The change (same shape as ``plane``'s complete-block area) that moves ``plane``'s block
    coefficients into [lo, hi] (zero in free blocks)."""
    a, b = lo.shape[:2]
    coefs = block_dct(np.ascontiguousarray(plane[:a * 8, :b * 8]))
    clipped = np.clip(coefs, lo, hi)
    clipped[free] = coefs[free]
    return block_idct(clipped - coefs)


#: Share of a component's constrained blocks, the flattest in the estimate, over which
#: :func:`band_noise_255` measures the noise a file holds.
FLAT_SHARE = 0.25


def _planes(ycc: np.ndarray, cons: QuantisationConstraints) -> list[np.ndarray]:
    """The planes the constraints are on: Y, then (colour) Cb and Cr box-downsampled as libjpeg does."""
    planes = [ycc[..., 0]]
    if cons.colour:
        fy, fx = cons.factors
        planes += [_box_down(ycc[..., c], fy, fx) for c in (1, 2)]
    return planes


def band_noise_255(estimate: np.ndarray, cons: QuantisationConstraints, flat_share: float = FLAT_SHARE,
                   components: tuple[int, ...] = (0, 1, 2)) -> list[np.ndarray]:
    """Per component (Y, then Cb, Cr): an 8x8 array, for every DCT frequency the RMS difference
    (DCT units, 0..255 scale) between the file's stored coefficient (the centre of its interval)
    and ``estimate``'s, over the ``flat_share`` of constrained blocks whose AC energy in
    ``estimate`` is least. Where the estimate is a denoised photo, that is what the file holds
    besides a flat block's content: noise the encoder kept (and, on a clean file, what the
    estimate smoothed away). ``estimate``: float32 H x W x 3 RGB in [0, 1], stored orientation.
    Zero for a component with fewer than 16 constrained blocks or not in ``components``."""
    out = []
    for c, plane in enumerate(_planes(_ycc255(estimate), cons)):
        lo, hi, free = cons.low[c], cons.high[c], cons.free[c]
        if c not in components:
            out.append(np.zeros((8, 8), np.float32))
            continue
        a, b = lo.shape[:2]
        ok = ~free
        if ok.sum() < 16:
            out.append(np.zeros((8, 8), np.float32))
            continue
        coefs = block_dct(np.ascontiguousarray(plane[:a * 8, :b * 8]))
        ac = (coefs ** 2).sum(axis=(2, 3)) - coefs[:, :, 0, 0] ** 2
        flat = ok & (ac <= np.quantile(ac[ok], flat_share))
        residual = ((lo + hi) * np.float32(0.5) - coefs)[flat]
        out.append(np.sqrt((residual.astype(np.float64) ** 2).mean(axis=0)).astype(np.float32))
    return out


def widened(cons: QuantisationConstraints, margins: list[np.ndarray]) -> QuantisationConstraints:
    """``cons`` with every interval of component ``c`` widened by ``margins[c]`` (an 8x8 array,
    DCT units, broadcast over the blocks) on both sides."""
    low = [lo - m for lo, m in zip(cons.low, margins, strict=True)]
    high = [hi + m for hi, m in zip(cons.high, margins, strict=True)]
    return QuantisationConstraints(low, high, cons.free, cons.factors, cons.colour)


def project(estimate: np.ndarray, cons: QuantisationConstraints) -> np.ndarray:
    """``estimate`` (float32 H x W x 3 RGB in [0, 1], stored orientation) with every constrained
    DCT coefficient moved into its quantisation interval. Chroma is projected in the subsampled
    domain (2x2 box average, as libjpeg downsamples) and the change spread evenly over the pixels
    each chroma sample covers, which is the smallest change that satisfies the constraint.
    Returns float32 RGB, unclipped (the caller clips)."""
    ycc = _ycc255(estimate)
    a, b = cons.low[0].shape[:2]
    ycc[:a * 8, :b * 8, 0] += _project_plane(ycc[..., 0], cons.low[0], cons.high[0], cons.free[0])
    if cons.colour:
        fy, fx = cons.factors
        for c in (1, 2):
            small = _box_down(ycc[..., c], fy, fx)
            delta = _project_plane(small, cons.low[c], cons.high[c], cons.free[c])
            up = np.repeat(np.repeat(delta, fy, axis=0), fx, axis=1)
            ycc[:up.shape[0], :up.shape[1], c] += up
    return _rgb01(ycc)


def violation(estimate: np.ndarray, cons: QuantisationConstraints) -> float:
    """Largest distance (DCT units, 0..255 scale) of any constrained coefficient of ``estimate``
    outside its interval; 0 when ``estimate`` satisfies every constraint."""
    ycc = _ycc255(estimate)
    worst = 0.0
    planes = [(ycc[..., 0], 0)]
    if cons.colour:
        fy, fx = cons.factors
        planes += [(_box_down(ycc[..., c], fy, fx), c) for c in (1, 2)]
    for plane, c in planes:
        a, b = cons.low[c].shape[:2]
        coefs = block_dct(np.ascontiguousarray(plane[:a * 8, :b * 8]))
        out = np.maximum(cons.low[c] - coefs, coefs - cons.high[c])
        out[cons.free[c]] = 0.0
        worst = max(worst, float(out.max(initial=0.0)))
    return worst


def project_upright(estimate: np.ndarray, decoded: np.ndarray, quant: JpegQuantisation,
                    cons: Optional[QuantisationConstraints] = None) -> np.ndarray:
    """:func:`project` for upright photos (as loaded): undo the EXIF orientation, project against
    the constraints of ``decoded`` (or the given ones), turn back. Returns float32 in [0, 1]."""
    stored = to_stored(estimate, quant.orientation)
    cons = cons or constraints(to_stored(decoded, quant.orientation), quant)
    return np.clip(to_upright(project(stored, cons), quant.orientation), 0.0, 1.0).astype(np.float32, copy=False)
