"""Classical deblurring: blind PSF choice from a disk/line bank, then Wiener deconvolution."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..base import Backend, Expert, ExpertContext, ExpertInfo
from ...color import luminance
from .deconvolution import wiener_deconvolve
from .noise_level import context_sigma
from .psf_estimation import central_region, estimate_psf
from .tiles import map_tiles

#: Gradient-prior weight for a noise-free input: absorbs the bank's quantisation of the true PSF.
BASE_REGULARISATION = 5e-3
#: Extra weight per unit of noise variance ([0, 1] units).
NOISE_REGULARISATION = 20.0


class WienerDeblur(Expert):
    """Removes defocus and straight camera-shake blur. The PSF is chosen once for the whole image
    (a central 512 px crop) by spectral likelihood, so the expert needs the whole image;
    deconvolution itself runs in overlapping tiles. With no blur found it
    returns the input unchanged. About 1 s per megapixel plus ~2 s for the PSF search. Where stages
    ran before (``ExpertContext.original`` differs from the input), the photo as loaded must confirm a
    blur first, as for the plug-and-play deblurrer it stands in for
    (:func:`engine.experts.pnp_deblur.loaded_blur`); else the input comes back unchanged and
    the expert says why."""

    info = ExpertInfo(
        id="classical.deblur.wiener",
        name="Wiener deblur (PSF bank)",
        tasks=("blur",),
        backend=Backend.CLASSICAL,
        version="1",
        tile_overlap=64,
        memory_factor=96.0,
        description="Picks a defocus disk or motion line PSF by spectral likelihood, then "
                    "deconvolves with a gradient-regularised Wiener filter and tapered borders.",
    )

    def __init__(self, tile: int = 1024) -> None:
        self.tile = tile

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        return self._deblur(image, ctx, in_place=False)

    def run_in_place(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        """The same result as :meth:`run`, written over ``image`` (float32, C-contiguous, writeable)
        and returned: a one-shot restoration of a large photo then holds one full-size array, not
        two (:meth:`engine.pipeline.session.RestorationSession.run_stage`). If it raises, ``image``
        is partly overwritten."""
        return self._deblur(image, ctx, in_place=True)

    def _deblur(self, image: np.ndarray, ctx: Optional[ExpertContext], *, in_place: bool) -> np.ndarray:
        ctx = ctx or ExpertContext()
        ctx.progress(0.0)
        sigma = context_sigma(image, ctx)
        if not in_place:
            from ..pnp_deblur import loaded_blur, stages_ran_before

            if stages_ran_before(image, ctx):
                # the same check as the plug-and-play deblurrer (this expert is its fallback): the
                # earlier stages' smoothing reads as blur, so the photo as loaded must show one
                why = loaded_blur(ctx, float(np.mean(sigma))).why
                if why:
                    ctx.note(why)
                    ctx.progress(1.0)
                    return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)
        # the estimate reads only the central crop: its luminance, not a full-size one
        psf = estimate_psf(luminance(image[central_region(*image.shape[:2])]), sigma)
        ctx.progress(0.3)
        if psf.family == "none":
            ctx.progress(1.0)
            if in_place:
                return np.clip(image, 0.0, 1.0, out=image)
            return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)
        reg = BASE_REGULARISATION + NOISE_REGULARISATION * sigma ** 2
        overlap = max(psf.kernel.shape) * 3 + 16
        out = map_tiles(image.astype(np.float32, copy=False),
                        lambda t: wiener_deconvolve(t, psf.kernel, reg),
                        ctx.tile or self.tile, overlap, ctx.progress.sub(0.3, 1.0), in_place=in_place)
        return np.clip(out, 0.0, 1.0, out=out)  # map_tiles' new float32 array, or ``image`` in place
