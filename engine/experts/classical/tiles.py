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

    ``in_place``: write the result over ``image`` (float32, C-contiguous) and return it. ``fn``
    then gets the very same views of ``image`` as without it (the same values, strides and
    addresses, so the same result): a tile's core is written only once no later tile of its
    row reads it, and the ``overlap`` rows above a row of tiles, which the row before already
    overwrote, hold their input again while that row runs. Scratch: two strips of ``overlap``
    rows and the pending tiles' cores, not a second full-size array nor a whole row of tiles.
    If ``fn`` or ``progress`` raises, ``image`` is partly overwritten.
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
    held = image[:0].copy()  # in place: the input of the rows above the current row of tiles (up to ``overlap``)
    for y0 in ys:
        y1 = min(y0 + tile, h)
        py0, py1 = max(y0 - overlap, 0), min(y1 + overlap, h)
        if in_place:
            # the next row's top context, taken before this row writes its cores
            below = max(y1 - overlap, 0)
            next_held = np.concatenate([held[len(held) - (y0 - below):] if below < y0 else held[:0],
                                        image[max(below, y0):y1]])
            written = image[py0:y0].copy()  # this row's top context holds output: its input goes back meanwhile
            image[py0:y0] = held[len(held) - (y0 - py0):]
        pending: list[tuple[int, int, np.ndarray]] = []
        for x0 in xs:
            x1 = min(x0 + tile, w)
            px0, px1 = max(x0 - overlap, 0), min(x1 + overlap, w)
            while pending and pending[0][1] <= px0:  # no tile from here on reads that core
                a, b, core = pending.pop(0)
                out[y0:y1, a:b] = core
            result = fn(image[py0:py1, px0:px1])
            core = result[y0 - py0:y1 - py0, x0 - px0:x1 - px0]
            if in_place:
                pending.append((x0, x1, np.array(core, dtype=np.float32)))
            else:
                out[y0:y1, x0:x1] = core
            del result, core
            done += 1
            progress(done / total)
        for a, b, core in pending:
            out[y0:y1, a:b] = core
        if in_place:
            image[py0:y0] = written
            held = next_held
    return out
