"""The σ to tell FFDNet (a white-noise denoiser) for the noise a photo holds.

A white-noise denoiser is told one number per pixel: the std of white Gaussian noise it should
remove. Real camera noise is not white: demosaicing and the camera's noise reduction spread it over
a few pixels, and a JPEG save quantises its finest part away. Its fine-scale std (what the
noise-level function reads through a high-pass) is then far below what the denoiser must be told
to remove it: on the real PolyU crops (camera JPEGs, q ≈ 75) the best σ was 8 levels above what
the two-scale rule told (benchmarks/results/real-noise-first20.md).

:func:`told_sigma_255` combines three measurements, 8-bit levels:

- ``coarse``: the noise-level function's representative σ at the coarse high-pass
  (``nlf_coarse_255``, :data:`engine.analysis.noise_level.HIGHPASS_PX`);
- ``half``: the same measured on a ×½ (area) copy (``nlf_half_255``, :func:`half_resolution_sigma_255`).
  Averaging 2 x 2 pixels halves white noise; noise spread over several pixels averages down
  less, so ``2·half − coarse`` grows with the noise's spatial correlation (≈ 0 for white noise);
- the JPEG quality the file states: where the noise stage stands in for the JPEG stage (a noisy
  camera JPEG, engine.pipeline.plan.noise_serves_jpeg), it must remove the compression noise with
  the sensor noise, so it is told at least what the JPEG stage's FFDNet prior was told when this
  rule was fitted (:func:`jpeg_floor_255`); the two add in quadrature.

    σ = hypot(GAIN_COARSE·coarse + GAIN_CORRELATED·max(2·half − coarse, 0), GAIN_JPEG·jpeg_floor)

(with the fitted gains: σ = hypot(coarse, 1.5·jpeg_floor)).

The gains were fitted by ``benchmarks/noise_sigma_fit.py`` + ``benchmarks/noise_sigma_report.py`` on
training photos only (../shared/data/clean through the camera pipeline, engine.degrade.camera,
and white noise; the cases where FFDNet at its best σ gains ≥ 0.5 dB), choosing the gains with the
least mean PSNR lost against each case's best σ, with :data:`GAIN_COARSE` held at 1: the coarse
σ is bias-corrected for white noise, which is then told its own σ (a free fit gave 0.8, from
texture the small training crops' σ reads, and lost up to 0.9 dB on white noise of σ 25). With it
held, the fit gives the correlated excess no weight (0) and the JPEG floor 1.5. The real PolyU
crops were used only to check them (benchmarks/results/real-noise-sigma.md).
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

#: Gain on the coarse-scale σ (``nlf_coarse_255``).
GAIN_COARSE = 1.0
#: Gain on the correlated excess ``max(2·nlf_half_255 − nlf_coarse_255, 0)``; at most
#: :data:`GAIN_COARSE`, so that a larger coarse σ is never told less.
GAIN_CORRELATED = 0.0
#: Gain on the JPEG floor (:func:`jpeg_floor_255`), combined in quadrature.
GAIN_JPEG = 1.5
#: Least IJG quality of a noisy JPEG whose JPEG artefacts the noise stage removes in place of the
#: JPEG stage (engine.pipeline.plan.noise_serves_jpeg): below it the JPEG stage runs first, and
#: the noise stage, which then sees the deblocked photo, gets no JPEG floor.
NOISE_SERVES_JPEG_MIN_QUALITY = 60


def half_resolution_sigma_255(image: np.ndarray) -> float:
    """The noise-level function's representative σ (mean over channels of the median over
    measured bins; 8-bit levels of the ×½ copy) measured on an area-downscaled ×½ copy of
    ``image`` (float HxWx3 in [0, 1]); 0 when the copy is too small to measure."""
    from .noise_level import estimate_nlf

    img = np.asarray(image, np.float32)[..., :3]
    h, w = img.shape[:2]
    if min(h, w) < 32:
        return 0.0
    half = cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return float(estimate_nlf(half).per_channel().mean() * 255.0)


def jpeg_floor_255(jpeg_quality: Optional[float]) -> float:
    """The luma σ (8-bit levels) of the JPEG stage's heavy-JPEG rule for a libjpeg file saved at
    IJG ``jpeg_quality`` (:func:`engine.experts.jpeg_restore.prior_sigma_255` of the standard
    tables at that quality and :data:`engine.experts.jpeg_restore.LUMA_SIGMA_GAIN`: what that stage
    told every file when this rule was fitted; it now tells a camera's save more,
    :func:`engine.experts.jpeg_restore.luma_sigma_255`), for the qualities at which the noise stage
    stands in for the JPEG stage (:data:`NOISE_SERVES_JPEG_MIN_QUALITY` up to
    :data:`engine.analysis.jpeg_tables.CLEAN_QUALITY`, where the JPEG stage leaves a file as it is);
    else 0, and 0 for ``None`` (not a JPEG, or unknown)."""
    from .jpeg_tables import CLEAN_QUALITY, STD_LUMA, ijg_table

    if jpeg_quality is None or not np.isfinite(float(jpeg_quality)) \
            or not NOISE_SERVES_JPEG_MIN_QUALITY <= float(jpeg_quality) < CLEAN_QUALITY:
        return 0.0
    from ..experts.jpeg_restore import step_prior_sigma_255, table_low_frequency_step

    return float(step_prior_sigma_255(table_low_frequency_step(ijg_table(STD_LUMA, int(round(float(jpeg_quality)))))))


def told_sigma_255(coarse_255: float, half_255: float, jpeg_quality: Optional[float] = None) -> float:
    """The σ (8-bit levels, ≥ 0) to tell FFDNet, from the coarse-scale σ ``coarse_255``
    (``nlf_coarse_255``), the ×½ copy's σ ``half_255`` (``nlf_half_255``) and the file's JPEG
    quality (``None``: not a JPEG); see the module's formula."""
    coarse, half = max(float(coarse_255), 0.0), max(float(half_255), 0.0)
    noise = GAIN_COARSE * coarse + GAIN_CORRELATED * max(2.0 * half - coarse, 0.0)
    return float(np.hypot(noise, GAIN_JPEG * jpeg_floor_255(jpeg_quality)))
