"""JPEG restoration that reads the file: a denoiser told a noise level matched to the file's own
quantisation, then quantisation-constraint projection (QCP) onto the file's own tables.

The denoiser (the prior) removes blocking, ringing and colour bleeding as if they were noise of
standard deviation :func:`prior_sigma_255`; the projection
(:mod:`engine.experts.classical.jpeg_qcp`) then puts back every DCT coefficient the prior moved
out of the interval the file guarantees, luma and subsampled chroma alike. A photo whose file
says it was saved at quality :data:`engine.analysis.jpeg_tables.CLEAN_QUALITY` or higher comes
out untouched. Without the file's tables (a PNG of a decoded JPEG, or a stage after a resize)
the expert hands the photo to its blockiness-driven fallback.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..analysis.jpeg_tables import CLEAN_QUALITY, JpegQuantisation, estimate_quality
from .base import Expert, ExpertContext, ExpertInfo, TilingMode
from .classical.jpeg_qcp import project_upright

#: The prior is told σ = SIGMA_GAIN · step ** SIGMA_EXPONENT (0..255 levels), where step is the
#: mean of the luma table's 3x3 lowest frequencies (0..255 DCT units). Fitted on the training
#: split of shared/data/clean (benchmarks/jpeg_restoration.py --fit-sigma): the best single σ for
#: FFDNet + QCP at qualities 10/20/30 (low-frequency steps 65/33/22).
SIGMA_GAIN = 2.0
SIGMA_EXPONENT = 0.6


def low_frequency_step(quant: JpegQuantisation) -> float:
    """Mean quantisation step of the luma table's 3x3 lowest frequencies (0..255 DCT units)."""
    return float(np.asarray(quant.luma, np.float64)[:3, :3].mean())


def prior_sigma_255(quant: JpegQuantisation) -> float:
    """The noise level (0..255 levels) the prior is told for a file quantised with ``quant``."""
    return SIGMA_GAIN * low_frequency_step(quant) ** SIGMA_EXPONENT


class JpegQcpRestorer(Expert):
    """``prior`` (a denoiser that reads ``ExpertContext.noise_sigma``, e.g. FFDNet) + QCP with
    the file's tables from ``ExpertContext.jpeg``; ``fallback`` (blockiness-driven) when the
    tables are unknown. Needs the whole photo (the 8x8 grid starts at the file's corner)."""

    def __init__(self, prior: Expert, fallback: Expert, *, version: str = "1") -> None:
        self.prior = prior
        self.fallback = fallback
        self.info = ExpertInfo(
            id=f"jpeg.qcp.{prior.info.id}",
            name=f"JPEG restoration: {prior.info.name} + quantisation constraints",
            tasks=("jpeg",),
            backend=prior.info.backend,
            version=f"{version}.{prior.info.version}",
            tiling=TilingMode.NONE,
            tile_overlap=prior.info.tile_overlap,
            memory_factor=max(prior.info.memory_factor, 400.0),
            model_id=prior.info.model_id,
            description="The file's quantisation tables set the denoiser's noise level, then every "
                        "DCT coefficient (luma and subsampled chroma) is projected back into the "
                        "interval the file guarantees.",
        )

    def is_available(self) -> bool:
        return self.prior.is_available() and self.fallback.is_available()

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        ctx = ctx or ExpertContext()
        source = ctx.jpeg
        if source is None or source.decoded.shape != image.shape:
            return self.fallback.run(image, ctx)
        ctx.progress(0.0)
        quant = source.quantisation
        if estimate_quality(quant).quality >= CLEAN_QUALITY:
            ctx.progress(1.0)
            return np.clip(image, 0.0, 1.0).astype(np.float32)
        sigma = np.float32(prior_sigma_255(quant) / 255.0)
        prior_ctx = ExpertContext(severity=ctx.severity, noise_sigma=sigma, progress=ctx.progress.sub(0.0, 0.85),
                                  device=ctx.device, tile=ctx.tile)
        estimate = self.prior.run(image, prior_ctx)
        out = project_upright(estimate, source.decoded, quant)
        ctx.progress(1.0)
        return out
