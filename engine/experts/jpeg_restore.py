"""JPEG restoration that reads the file: a denoiser told a noise level matched to the file's own
quantisation, then quantisation-constraint projection (QCP) onto the file's own tables.

The denoiser (the prior) removes blocking, ringing and colour bleeding as if they were noise of
standard deviation :func:`prior_sigma_255`; the projection
(:mod:`engine.experts.classical.jpeg_qcp`) then puts back every DCT coefficient the prior moved
out of the interval the file guarantees, luma and subsampled chroma alike (on a camera's save the
chroma intervals are widened by the noise the file holds: :data:`CAMERA_CHROMA_NOISE_WIDEN`). A photo whose file
says it was saved at quality :data:`engine.analysis.jpeg_tables.CLEAN_QUALITY` or higher comes
out untouched. Without the file's tables (a PNG of a decoded JPEG, or a stage after a resize)
the expert hands the photo to its blockiness-driven fallback.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..analysis.jpeg_tables import CLEAN_QUALITY, STD_LUMA, JpegQuantisation, estimate_quality, ijg_table
from ..analysis.noise_sigma import NOISE_SERVES_JPEG_MIN_QUALITY
from .base import Backend, Expert, ExpertContext, ExpertInfo
from .classical.color import from_ycbcr, to_ycbcr
from .classical.jpeg_qcp import band_noise_255, constraints, project_upright, to_stored, widened

#: The prior is told σ = gain · step ** SIGMA_EXPONENT (0..255 levels), where step is the mean of
#: the luma table's 3x3 lowest frequencies (0..255 DCT units; 65/33/22 at IJG quality 10/20/30).
#: A σ-told prior runs twice: its luma is kept from the run at LUMA_SIGMA_GAIN, its chroma from the
#: run at CHROMA_SIGMA_GAIN (chroma was subsampled and quantised harder, so it needs more
#: smoothing). Fitted on training-split photos of shared/data/clean
#: (``benchmarks/jpeg_restoration.py --fit-sigma`` → benchmarks/results/jpeg-sigma-fit.md).
SIGMA_EXPONENT = 0.6
LUMA_SIGMA_GAIN = 1.6
CHROMA_SIGMA_GAIN = 3.5

#: A camera's save (IJG quality CAMERA_QUALITIES[0] up to CLEAN_QUALITY − 1, where the plan lets the
#: noise stage stand in for this one on a photo found noisy) holds the sensor noise that survived
#: the encoder, and the photos that reach this stage there are mostly the faintly noisy ones the
#: analysis does not call noisy. There the priors are told
#: luma σ = CAMERA_LUMA_SIGMA_75 · (step / step at quality 75) ** CAMERA_SIGMA_EXPONENT and
#: chroma σ = CAMERA_CHROMA_SIGMA_GAIN · step ** SIGMA_EXPONENT (0..255 levels): fitted on
#: training-split photos of shared/data/clean through the camera pipeline (engine.degrade.camera,
#: saved at q 60–89) for the most gain, with other training photos re-saved at q 60–89 without
#: noise gaining on average no less than with the rule above and none losing more than 0.1 dB
#: against it (``benchmarks/noise_jpeg_rule.py --prior-grid/--prior-fit`` →
#: benchmarks/results/jpeg-camera-prior.md; 23 + 23 photos). A term for the analysis' measured
#: noise level (luma σ = hypot(rule, a·nlf_coarse_255)) was fitted too and is not used: it added
#: 0.02 dB on average and lowered the worst noisy photo (the coarse σ of a faintly noisy camera JPEG
#: is texture as often as noise). The real PolyU crops were only measured.
CAMERA_QUALITIES = (NOISE_SERVES_JPEG_MIN_QUALITY, CLEAN_QUALITY)
CAMERA_LUMA_SIGMA_75 = 8.0
CAMERA_SIGMA_EXPONENT = 1.0
CAMERA_CHROMA_SIGMA_GAIN = 2.5

#: On a camera's save (quality in :data:`CAMERA_QUALITIES`) every chroma (Cb, Cr) interval is
#: widened, on both sides, by CAMERA_CHROMA_NOISE_WIDEN times the noise the file holds at that
#: frequency (:func:`engine.experts.classical.jpeg_qcp.band_noise_255`: what the stored
#: coefficients differ from the prior's estimate by over the estimate's flattest blocks). Real
#: sensor noise is strongest in the chroma, and where it is larger than a quantisation step the
#: exact interval puts it back. Luma keeps its exact intervals: widening them cost clean re-saves
#: up to 0.25 dB. Fitted on training photos only (``benchmarks/jpeg_noise_widen.py`` →
#: benchmarks/results/jpeg-noise-widen.md): camera-pipeline JPEGs at q 60–89 and clean re-saves,
#: the smallest widening within 0.01 dB of the best noisy mean among those that cost no clean
#: re-save more than 0.1 dB. The real PolyU crops were only measured afterwards.
CAMERA_CHROMA_NOISE_WIDEN = 1.0


def table_low_frequency_step(table: np.ndarray) -> float:
    """Mean quantisation step of an 8x8 table's 3x3 lowest frequencies (0..255 DCT units)."""
    return float(np.asarray(table, np.float64)[:3, :3].mean())


def low_frequency_step(quant: JpegQuantisation) -> float:
    """:func:`table_low_frequency_step` of the file's luma table."""
    return table_low_frequency_step(quant.luma)


#: :func:`low_frequency_step` of the standard luma table at IJG quality 75 (0..255 DCT units).
STEP_AT_QUALITY_75 = table_low_frequency_step(ijg_table(STD_LUMA, 75))


def prior_sigma_255(quant: JpegQuantisation, gain: float = LUMA_SIGMA_GAIN) -> float:
    """The noise level (0..255 levels) the prior is told for a file quantised with ``quant``."""
    return step_prior_sigma_255(low_frequency_step(quant), gain)


def step_prior_sigma_255(step: float, gain: float = LUMA_SIGMA_GAIN) -> float:
    """:func:`prior_sigma_255` for a luma table whose :func:`table_low_frequency_step` is ``step``."""
    return gain * step ** SIGMA_EXPONENT


def _camera_save(quant: JpegQuantisation) -> bool:
    return CAMERA_QUALITIES[0] <= estimate_quality(quant).quality < CAMERA_QUALITIES[1]


def luma_sigma_255(quant: JpegQuantisation) -> float:
    """The σ (0..255 levels) the luma prior is told for a file quantised with ``quant``:
    :func:`prior_sigma_255` at :data:`LUMA_SIGMA_GAIN`, or for a camera's save (quality in
    :data:`CAMERA_QUALITIES`) :data:`CAMERA_LUMA_SIGMA_75` scaled by the step's ratio to quality 75's."""
    if not _camera_save(quant):
        return prior_sigma_255(quant, LUMA_SIGMA_GAIN)
    return CAMERA_LUMA_SIGMA_75 * (low_frequency_step(quant) / STEP_AT_QUALITY_75) ** CAMERA_SIGMA_EXPONENT


def chroma_sigma_255(quant: JpegQuantisation) -> float:
    """The σ (0..255 levels) the chroma prior is told: :func:`prior_sigma_255` at
    :data:`CHROMA_SIGMA_GAIN`, or at :data:`CAMERA_CHROMA_SIGMA_GAIN` for a camera's save."""
    return prior_sigma_255(quant, CAMERA_CHROMA_SIGMA_GAIN if _camera_save(quant) else CHROMA_SIGMA_GAIN)


def chroma_noise_widened(cons, estimate_stored: np.ndarray, widen: float = CAMERA_CHROMA_NOISE_WIDEN):
    """Quantisation constraints ``cons`` (:class:`engine.experts.classical.jpeg_qcp.QuantisationConstraints`)
    with the chroma intervals widened by ``widen`` times the file's noise per frequency
    (:func:`engine.experts.classical.jpeg_qcp.band_noise_255` against ``estimate_stored``, the
    prior's estimate in the file's stored orientation, float32 H x W x 3 in [0, 1]); luma exact.
    A grey file's constraints are returned unchanged."""
    if not cons.colour or widen <= 0.0:
        return cons
    noise = band_noise_255(estimate_stored, cons, components=(1, 2))
    return widened(cons, [np.zeros((8, 8), np.float32)] + [np.float32(widen) * n for n in noise[1:]])


def luma_from(luma_source: np.ndarray, chroma_source: np.ndarray) -> np.ndarray:
    """RGB whose JFIF luma is ``luma_source``'s and whose chroma is ``chroma_source``'s (H x W x 3)."""
    ycc = to_ycbcr(chroma_source)
    ycc[..., 0] = to_ycbcr(luma_source)[..., 0]
    return from_ycbcr(ycc)


class JpegQcpRestorer(Expert):
    """Priors + QCP with the file's tables from ``ExpertContext.jpeg``; ``fallback``
    (blockiness-driven) when the tables are unknown.

    The luma of the estimate comes from ``luma_prior`` and its chroma from ``chroma_prior`` (the
    same expert by default). A prior that serves the ``noise`` task is a denoiser told
    σ through ``ExpertContext.noise_sigma`` (e.g. FFDNet: luma :func:`luma_sigma_255`, chroma
    :func:`chroma_sigma_255`); any other prior is a JPEG
    expert run as it is (e.g. DnCNN-3 on the luma). Needs the whole photo (the 8x8 grid starts
    at the file's corner)."""

    def __init__(self, luma_prior: Expert, fallback: Expert, chroma_prior: Optional[Expert] = None, *,
                 version: str = "2") -> None:
        self.luma_prior = luma_prior
        self.chroma_prior = chroma_prior or luma_prior
        self.fallback = fallback
        priors = [luma_prior] if self.chroma_prior is luma_prior else [luma_prior, self.chroma_prior]
        backend = min((p.info.backend for p in priors), key=lambda b: (Backend.TORCH, Backend.ONNX,
                                                                        Backend.CLASSICAL).index(b))
        self.info = ExpertInfo(
            id="jpeg.qcp." + "+".join(p.info.id for p in priors),
            name="JPEG restoration: " + " + ".join(p.info.name for p in priors) + " + quantisation constraints",
            tasks=("jpeg",),
            backend=backend,
            version=version + "." + ".".join(p.info.version for p in priors),
            tile_overlap=max(p.info.tile_overlap for p in priors),
            memory_factor=max(max(p.info.memory_factor for p in priors), 400.0),
            model_id="+".join(p.info.model_id for p in priors if p.info.model_id) or None,
            description="The file's quantisation tables set the denoiser's noise level, then every "
                        "DCT coefficient (luma and subsampled chroma) is projected back into the "
                        "interval the file guarantees.",
        )

    def is_available(self) -> bool:
        return all(e.is_available() for e in (self.luma_prior, self.chroma_prior, self.fallback))

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        ctx = ctx or ExpertContext()
        source = ctx.jpeg
        if source is None or source.decoded.shape != image.shape:
            return self.fallback.run(image, ctx)
        ctx.progress(0.0)
        quant = source.quantisation
        if estimate_quality(quant).quality >= CLEAN_QUALITY:
            ctx.progress(1.0)
            return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)
        luma = self._prior(self.luma_prior, image, ctx, luma_sigma_255(quant), 0.0, 0.45)
        chroma = self._prior(self.chroma_prior, image, ctx, chroma_sigma_255(quant), 0.45, 0.9)
        estimate = luma_from(luma, chroma)
        cons = constraints(to_stored(source.decoded, quant.orientation), quant)
        if _camera_save(quant):
            cons = chroma_noise_widened(cons, to_stored(estimate, quant.orientation))
        out = project_upright(estimate, source.decoded, quant, cons)
        ctx.progress(1.0)
        return out

    @staticmethod
    def _prior(prior: Expert, image: np.ndarray, ctx: ExpertContext, sigma_255: float, start: float,
               end: float) -> np.ndarray:
        told = "noise" in prior.info.tasks
        prior_ctx = ExpertContext(severity=ctx.severity, measurements=ctx.measurements,
                                  noise_sigma=np.float32(sigma_255 / 255.0) if told else None,
                                  progress=ctx.progress.sub(start, end), device=ctx.device, tile=ctx.tile,
                                  jpeg=ctx.jpeg)
        # a prior that can run plainly does (FFDNet's own half-resolution chroma pass would
        # replace the chroma this restorer takes from its chroma prior)
        return getattr(prior, "run_plain", prior.run)(image, prior_ctx)


#: The bundled denoiser whose σ map makes it the JPEG prior (``models/catalog.toml``).
FFDNET_MODEL_ID = "ffdnet-color"


def jpeg_restorers(neural: list[Expert], fallback: Expert) -> list[Expert]:
    """The file-aware JPEG restorers that ``neural`` experts make possible, best first: a
    downloaded JPEG network (DnCNN-3) for the luma with FFDNet for the chroma, then FFDNet for both
    (``benchmarks/results/jpeg-restoration.md``). Empty without FFDNet."""
    ffdnet = next((e for e in neural if e.info.model_id == FFDNET_MODEL_ID), None)
    if ffdnet is None:
        return []
    luma_nets = [e for e in neural if e.info.tasks == ("jpeg",) and not e.info.generative]
    return ([JpegQcpRestorer(net, fallback, chroma_prior=ffdnet) for net in luma_nets]
            + [JpegQcpRestorer(ffdnet, fallback)])
