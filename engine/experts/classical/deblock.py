"""Classical JPEG artefact removal: smooth with sliding-DCT shrinkage tuned to the quantisation
step, then project back onto the quantisation constraint set.

With the file's tables (``ExpertContext.jpeg``) the quality is exact and the projection covers
luma and subsampled chroma (:mod:`.jpeg_qcp`); a file saved at quality 90 or higher is left
untouched. Without them (a PNG of a decoded JPEG) the quality is estimated from how the luma
DCT coefficients sit on the IJG lattice and only the luma is projected, on IJG tables."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...analysis.jpeg_tables import CLEAN_QUALITY
from ...analysis.jpeg_tables import estimate_quality as file_quality
from ..base import Backend, Expert, ExpertContext, ExpertInfo
from . import sliding_dct
from .color import from_ycbcr, to_ycbcr
from .jpeg_qcp import project_upright
from .jpeg_quantisation import block_dct, block_idct, estimate_quality, luma_table
from .tiles import map_tiles

#: Luma smoothing sigma (0..255 units) = LUMA_SIGMA_GAIN * step ** LUMA_SIGMA_EXPONENT, where step
#: is the mean low-frequency quantisation step (0..255 units).
LUMA_SIGMA_GAIN = 1.0
LUMA_SIGMA_EXPONENT = 0.6
#: Chroma gets this many times the luma sigma (it was subsampled and quantised harder).
CHROMA_SIGMA_FACTOR = 1.5
#: Below this lattice score the image does not look JPEG-quantised: leave it alone.
MIN_LATTICE_SCORE = 0.3
#: Quality at or above which artefacts are invisible.
MAX_QUALITY = 96


def project_luma(estimate: np.ndarray, observed: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Clamp each aligned 8x8 DCT coefficient of ``estimate`` into the quantisation cell of the
    ``observed`` coefficient (both H x W luma, 0..255 scale minus 128, H and W multiples of 8)."""
    est = block_dct(estimate)
    obs = block_dct(observed)
    centre = np.round(obs / table) * table
    lo, hi = centre - table / 2, centre + table / 2
    return block_idct(np.clip(est, lo, hi))


def deblock_tile(tile: np.ndarray, table: np.ndarray, iterations: int = 1, project: bool = True) -> np.ndarray:
    """Deblock one tile (float32 H x W x 3 RGB in [0, 1], grid-aligned at its top-left corner
    when ``project``; with ``project=False`` only the sliding-DCT smoothing is done)."""
    step = float(table[:3, :3].mean())
    sigma_y = LUMA_SIGMA_GAIN * step ** LUMA_SIGMA_EXPONENT / 255.0
    ycc = to_ycbcr(tile)
    chroma = sliding_dct.denoise(np.ascontiguousarray(ycc[..., 1:]), sigma_y * CHROMA_SIGMA_FACTOR,
                                 second_step=False)
    y_obs = ycc[..., 0]
    h8, w8 = y_obs.shape[0] // 8 * 8, y_obs.shape[1] // 8 * 8
    y = y_obs
    for _ in range(iterations):
        y = sliding_dct.denoise(np.ascontiguousarray(y[..., None]), sigma_y)[..., 0]
        if h8 and w8 and project:
            proj = project_luma(np.ascontiguousarray(y[:h8, :w8]) * 255 - 128,
                                np.ascontiguousarray(y_obs[:h8, :w8]) * 255 - 128, table)
            y = y.copy()
            y[:h8, :w8] = (proj + 128) / 255
    return from_ycbcr(np.concatenate([y[..., None], chroma], axis=2))


class DCTDeblocker(Expert):
    """Removes JPEG blocking and ringing. The quality is estimated from how the luma DCT
    coefficients sit on the IJG table's lattice (``ctx.measurements["quality"]`` overrides it).
    The 8x8 grid is assumed to start at the top-left pixel (an uncropped JPEG), so the expert
    needs the whole image; internally it tiles on the grid."""

    info = ExpertInfo(
        id="classical.jpeg.dct_qcs",
        name="DCT deblocking with quantisation constraints",
        tasks=("jpeg",),
        backend=Backend.CLASSICAL,
        version="2",
        tile_overlap=16,
        memory_factor=1200.0,
        description="Sliding-DCT shrinkage sized to the quantisation step, then projection onto "
                    "the JPEG quantisation cells (the file's own tables, luma and chroma, when known).",
    )

    def __init__(self, tile: int = 256) -> None:
        self.tile = tile

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        ctx = ctx or ExpertContext()
        ctx.progress(0.0)
        if ctx.jpeg is not None and ctx.jpeg.decoded.shape == image.shape:
            return self._run_with_tables(image, ctx)
        given = ctx.measurements.get("quality") if ctx.measurements else None
        if given is not None and 1 <= float(given) <= 100:
            quality, score = int(round(float(given))), 1.0
        else:
            quality, score = estimate_quality(image)
        ctx.progress(0.1)
        if quality >= MAX_QUALITY or score < MIN_LATTICE_SCORE:
            ctx.progress(1.0)
            return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)
        table = luma_table(quality)
        tile = max((ctx.tile or self.tile) // 16 * 16, 64)
        out = map_tiles(image.astype(np.float32, copy=False), lambda t: deblock_tile(t, table),
                        tile, self.info.tile_overlap, ctx.progress.sub(0.1, 1.0))
        return np.clip(out, 0.0, 1.0, out=out)  # map_tiles' new float32 array

    def _run_with_tables(self, image: np.ndarray, ctx: ExpertContext) -> np.ndarray:
        quant = ctx.jpeg.quantisation
        if file_quality(quant).quality >= CLEAN_QUALITY:
            ctx.progress(1.0)
            return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)
        table = quant.luma.astype(np.float32)
        tile = max((ctx.tile or self.tile) // 16 * 16, 64)
        smooth = map_tiles(image.astype(np.float32, copy=False), lambda t: deblock_tile(t, table, project=False),
                           tile, self.info.tile_overlap, ctx.progress.sub(0.0, 0.9))
        out = project_upright(smooth, ctx.jpeg.decoded, quant)
        ctx.progress(1.0)
        return out
