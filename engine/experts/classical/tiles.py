"""How a classical operator runs: tile by tile with overlap (:func:`map_tiles`), or on the
whole image (:func:`run_whole`), reporting progress.

Tiles are for the classical experts whose result at a pixel depends only on a bounded
neighbourhood (denoise, deblock, deblur's Wiener filter): they bound the memory of the wide
intermediate arrays and give the progress callback (a cancellation point) a chance to run
often. Unlike :func:`engine.runtime.tiling.run_tiled` (the networks' tiler: near-equal tiles,
feathered seams, virtual padding to a size multiple, smaller tiles after an out-of-memory
error), tiles here start on a fixed grid of ``tile`` pixels and are stitched without blending,
which keeps block-based operators on the JPEG 8-pixel grid and makes local ones exact.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from ...progress import Progress
from ..base import ExpertContext


def run_whole(image: np.ndarray, ctx: Optional[ExpertContext],
              operator: Callable[[np.ndarray], tuple[np.ndarray, object]]) -> np.ndarray:
    """Run ``operator`` (image → ``(restored, anything)``) on the whole ``image``, with progress
    0 then 1; returns the restored image clipped to [0, 1], float32."""
    ctx = ctx or ExpertContext()
    ctx.progress(0.0)
    restored, _ = operator(image)
    ctx.progress(1.0)
    return np.clip(restored, 0.0, 1.0).astype(np.float32, copy=False)


def tile_starts(length: int, tile: int) -> list[int]:
    """Start offsets of tiles of edge ``tile`` covering ``[0, length)`` without gaps."""
    if length <= tile:
        return [0]
    return list(range(0, length, tile))


def map_tiles(image: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], tile: int, overlap: int,
              progress: Progress, *, in_place: bool = False) -> np.ndarray:
    """Apply ``fn`` to overlapping tiles of ``image`` (H x W x C) and stitch the cores.

    ``fn`` receives a float32 tile padded by up to ``overlap`` pixels of real context on every
    side (less at the image border) and must return an array of the same height and width.
    ``progress`` is called with the fraction of tiles done (0..1), so it may raise
    :class:`engine.errors.Cancelled`. Returns a new float32 array; ``image`` is not modified.

    ``in_place``: write the result over ``image`` (float32, C-contiguous) and return it, with
    one row of tiles of the input (plus its overlap) as scratch instead of a second full-size
    array. ``fn`` sees the same input values, in a band with the same strides, so the result is
    the same; if ``fn`` or ``progress`` raises, ``image`` is partly overwritten.
    """
    h, w = image.shape[:2]
    tile = max(int(tile), 16)
    ys, xs = tile_starts(h, tile), tile_starts(w, tile)
    if in_place:
        if image.dtype != np.float32 or not image.flags.c_contiguous or not image.flags.writeable:
            raise ValueError("map_tiles in place needs a writeable C-contiguous float32 image")
        out = image
    else:
        out = np.empty(image.shape, dtype=np.float32)
    total, done = len(ys) * len(xs), 0
    progress(0.0)
    held: Optional[np.ndarray] = None  # in place: the input rows of the last band (its top rows are overwritten)
    held_top = 0
    for y0 in ys:
        y1 = min(y0 + tile, h)
        py0, py1 = max(y0 - overlap, 0), min(y1 + overlap, h)
        if in_place:
            band = np.empty((py1 - py0,) + image.shape[1:], np.float32)
            if y0 > py0:  # rows above this band's core already hold output: their input is in ``held``
                band[:y0 - py0] = held[py0 - held_top:y0 - held_top]
            band[y0 - py0:] = image[y0:py1]
            source, top = band, py0
        else:
            source, top = image, 0
        for x0 in xs:
            x1 = min(x0 + tile, w)
            px0, px1 = max(x0 - overlap, 0), min(x1 + overlap, w)
            result = fn(source[py0 - top:py1 - top, px0:px1])
            out[y0:y1, x0:x1] = result[y0 - py0:y1 - py0, x0 - px0:x1 - px0]
            done += 1
            progress(done / total)
        if in_place:
            held, held_top = band, py0
    return out
