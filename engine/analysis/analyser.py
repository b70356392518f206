"""``analyse``: which of the six degradation kinds a photo shows, and how strongly."""

from __future__ import annotations

import math
from typing import Optional

import cv2
import numpy as np

from ..color import is_neutral
from ..kinds import BLUR, HAZE, JPEG, KINDS, LOWLIGHT, NOISE, RAIN
from ..progress import Progress
from .calibration import severity_from
from .measurements import (blockiness, chroma_noise_level, colour_line_veil, edge_width, exposure_statistics,
                           haze_statistics, noise_level, sharpest_tile_width, streak_statistics)
from .noise_level import (cap_told_by_prior, nlf_measurements, prior_severity, still_chroma_severity, still_evidence,
                          still_luma_severity)
from .report import DEFAULT_PRESENCE_THRESHOLD, DegradationReport, KindAssessment

#: Longer side of the downscaled copy used for global statistics (blur, haze, low light, rain).
WORKING_SIDE = 1024
#: Side of the full-resolution tiles sampled for pixel-level statistics (noise, JPEG grid).
TILE = 256
#: Tiles sampled per axis when the photo is larger than ``TILE_GRID * TILE`` on that axis.
TILE_GRID = 4
#: Least edge width (px) of the photo's sharpest tile (``sharpest_tile_width_px``) for blur to be
#: present: shake and misfocus blur every part of a photo, while a photo with one sharp part
#: (shallow depth of field, a soft background, a sharp subject) has nothing to deblur. Chosen on the
#: training split only (benchmarks/results/blur-verdicts.md): synthetic shallow depth of field and
#: clean photos stay under it, uniform blur of strength ≥ 0.5 goes over. Not applied from
#: :data:`BLUR_GATE_MAX_SIGMA_255` of measured noise on: noise reads as fine detail and narrows every
#: tile's edges (synthetic blur 0.6 + noise 0.5: 3.9 px).
MIN_SHARPEST_BLUR_PX = 4.0
#: Fine luma noise σ (8-bit levels, ``sigma_255``) from which the sharpest-tile condition is not
#: applied: where 2σ passes the edge measure's least contrast (0.03, :func:`measurements.edge_width`).
BLUR_GATE_MAX_SIGMA_255 = 0.03 * 255 / 2

#: Haze is present only where the lifted dark channel looks like a veil (measurements.veil_statistics):
#: its floor no more coloured than :data:`VEIL_MAX_FLOOR_CHROMA` and its airlight at least
#: :data:`VEIL_MIN_AIRLIGHT` bright. Bright, warm, flat indoor scenes (a page, a wall under tungsten
#: light) lift the dark channel as haze does but in their own colour; dehazing them with a grey airlight
#: turned real camera crops saturated yellow, 17–25 dB below their input
#: (benchmarks/results/real-noise-all60.md). Fitted on training photos only
#: (``benchmarks/haze_false_positives.py fit``, results in benchmarks/results/haze-false-positives.md):
#: the 97th percentile of the floor chroma and the 1st percentile of the airlight over synthetic
#: depth-varying haze (grey airlight, the scene also warm-white-balanced, camera noise) read hazy.
#: The airlight bound was refitted (``benchmarks/dim_haze_fit.py fit``, benchmarks/results/dim-haze.md)
#: on a population that adds the evaluation table's own haze generator over training photos and
#: over dim copies of them (1–2.7 stops darker: a veil over a dim scene is thin where the dark channel
#: is highest, so its airlight reads lower): the 1st percentile over all 864 positives read hazy is
#: 0.536 (it was 0.607 over the first 142). Among its negatives the lower bound lets through 2 more of
#: 250 flat crops and 2 more of 250 flat crops of the dim copies by the hand-made gates; the network
#: confirms only one of those four. No clean photo reads a grey floor and an airlight under 0.81.
#: The refit was made because the table's darkest validation photo (bsds500_train_43083, airlight
#: 0.57–0.61) was never dehazed; its readings were known, no number was read off them for the fit.
VEIL_MAX_FLOOR_CHROMA = 0.31
VEIL_MIN_AIRLIGHT = 0.54
#: A thin grey veil over a saturated room (RESIDE's indoor haze: a red wall is the darkest thing in
#: view) has a coloured floor, yet it is a veil: the colour lines of its patches meet the grey axis
#: above black (``veil_line_offset``, measurements.colour_line_veil), where a clear view's pass through
#: black. Such a photo is not held by the floor-colour gate when that offset is above
#: :data:`THIN_VEIL_MIN_LINE_OFFSET` and below ``1 − VEIL_MAX_FLOOR_CHROMA`` (a grey veil v added to
#: every channel leaves a floor chroma of at most 1 − v, so a larger offset under a coloured floor is
#: not that veil). Fitted on training photos only (``benchmarks/indoor_haze_fit.py fit``, results in
#: benchmarks/results/indoor-haze.md): the smallest bound at which the route fires on at most 2 % of
#: every group of training negatives (photos, through the camera pipeline, re-lit as warm rooms,
#: flat and warm-bright crops, dim scenes) — none fired at any bound, so any positive offset. The
#: training population it was built for (weather.thin_indoor_haze) was made because the RESIDE
#: SOTS-indoor validation pairs were missed; the upper bound was derived, not fitted.
THIN_VEIL_MIN_LINE_OFFSET = 0.0
#: Low light is present only where the brightest twentieth of the photo is dim too (``p95_luma`` under
#: :data:`LOWLIGHT_MAX_P95_LUMA`): under-exposure darkens the whole histogram, highlights included,
#: while a dim scene exposed for its light parts (a dark chair beside a white cloth) keeps them bright;
#: brightening such a real crop cost 10.5 dB. The 95th percentile, not the 99th: a lamp or a lit sign
#: stays bright in an under-exposed photo but rarely fills a twentieth of it. Fitted on training photos
#: only: the 99th percentile of ``p95_luma`` over synthetic under-exposure of strength 0.5–1 (the
#: automatic plan brightens from severity 0.5 on, plan.AUTO_MIN_SEVERITY).
LOWLIGHT_MAX_P95_LUMA = 0.47


def _as_rgb(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise ValueError(f"expected an HxWx3 image, got shape {arr.shape}")
    arr = arr[..., :3].astype(np.float32, copy=False)
    lo, hi = float(arr.min(initial=0.0)), float(arr.max(initial=0.0))
    if lo >= 0.0 and hi <= 1.0:  # also False when NaN is present
        return arr
    out = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0)  # a copy: clipped in place
    return np.clip(out, 0.0, 1.0, out=out)


def working_copy(image: np.ndarray, side: int = WORKING_SIDE) -> tuple[np.ndarray, float]:
    """The image area-downscaled so its longer side is at most ``side``; returns (copy, scale)."""
    h, w = image.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def full_res_tiles(image: np.ndarray, tile: int = TILE, grid: int = TILE_GRID) -> list[np.ndarray]:
    """Up to ``grid``² full-resolution tiles spread over the photo, each starting at a multiple
    of 8 (so JPEG block phases stay aligned). Small photos come back whole."""
    h, w = image.shape[:2]
    if h <= tile * grid and w <= tile * grid:
        return [image]

    def starts(n: int) -> list[int]:
        if n <= tile * grid:
            return list(range(0, max(n - tile, 0) + 1, tile))[:grid] or [0]
        return sorted({int(s) // 8 * 8 for s in np.linspace(0, n - tile, grid)})

    return [image[y:y + tile, x:x + tile] for y in starts(h) for x in starts(w)]


def measure(image: np.ndarray, progress: Optional[Progress] = None, *, iso: Optional[float] = None,
            exposure_s: Optional[float] = None, jpeg_quality: Optional[int] = None) -> dict[str, dict[str, float]]:
    """All raw measurements, grouped by kind (see :mod:`engine.analysis.measurements` and, for the
    noise-level function and still-area chroma, :mod:`engine.analysis.noise_level` for units).
    ``iso``/``exposure_s``: EXIF facts, a prior on the noise level (``None``: unknown);
    ``jpeg_quality``: the IJG quality of the JPEG file the photo decodes (from its tables;
    ``None``: not a JPEG or unknown), which sets the still-area chroma threshold."""
    progress = progress or Progress()
    img = _as_rgb(image)
    tiles = full_res_tiles(img)
    work, scale = working_copy(img)
    progress(0.05, "measuring noise")
    noise = noise_level(tiles)
    noise.update(chroma_noise_level(tiles))
    # The driving value: fine luma σ, or coarse chroma σ above the texture floor if larger.
    noise["noise_index_255"] = max(noise["sigma_255"], noise["chroma_excess_255"])
    noise.update(nlf_measurements(tiles, iso=iso, exposure_s=exposure_s, jpeg_quality=jpeg_quality))
    noise.update(still_evidence(tiles, jpeg_quality))
    cap_told_by_prior(noise, severity_from(NOISE, noise) >= DEFAULT_PRESENCE_THRESHOLD)
    progress(0.25, "measuring JPEG artefacts")
    jpeg = blockiness(tiles)
    progress(0.4, "measuring sharpness")
    # Noise std in the working copy shrinks roughly with the downscale factor.
    blur = edge_width(work, noise_sigma=noise["sigma_255"] / 255.0 * scale)
    blur["working_scale"] = scale
    blur.update(sharpest_tile_width(work))
    progress(0.7, "measuring haze and exposure")
    haze = haze_statistics(work)
    haze["black_and_white"] = float(is_neutral(work))
    if colour_gated(severity_from(HAZE, haze), haze):
        haze.update(colour_line_veil(work))  # only where it can change the verdict: it costs as much again
    exposure = exposure_statistics(work)
    progress(0.8, "measuring rain")
    rain = streak_statistics(work)
    return {NOISE: noise, BLUR: blur, JPEG: jpeg, HAZE: haze, LOWLIGHT: exposure, RAIN: rain}


def _confidences(m: dict[str, dict[str, float]], pixels: int) -> dict[str, float]:
    size = min(1.0, pixels / (128.0 * 128.0))
    noise_sigma = m[NOISE]["sigma_255"]
    blur_conf = 0.0 if math.isnan(m[BLUR]["edge_width_px"]) else min(1.0, m[BLUR]["edge_pixels"] / 2000.0)
    blur_conf /= 1.0 + (noise_sigma / 25.0) ** 2  # heavy noise hides edge widths
    aligned = m[JPEG]["best_phase_x"] == 7 or m[JPEG]["best_phase_y"] == 7
    return {
        NOISE: min(1.0, m[NOISE]["blocks"] / 16.0) if m[NOISE]["blocks"] else 0.3 * size,
        BLUR: blur_conf,
        JPEG: size * (1.0 if aligned else 0.5) / (1.0 + (noise_sigma / 15.0) ** 2),
        HAZE: size,
        LOWLIGHT: size,
        RAIN: size,
    }


def blur_severity(severity: float, blur: dict[str, float], noise_sigma_255: float = 0.0,
                  threshold: float = DEFAULT_PRESENCE_THRESHOLD) -> float:
    """The edge-width severity (in [0, 1]) held under half the presence ``threshold`` when some tile
    of the photo is sharp (``sharpest_tile_width_px`` < :data:`MIN_SHARPEST_BLUR_PX`); unchanged
    when no tile had enough edges to tell (NaN) or when the measured noise σ (8-bit levels) reaches
    :data:`BLUR_GATE_MAX_SIGMA_255`, where tiles read sharper than they are."""
    width = blur.get("sharpest_tile_width_px", float("nan"))
    if noise_sigma_255 < BLUR_GATE_MAX_SIGMA_255 and math.isfinite(width) and width < MIN_SHARPEST_BLUR_PX:
        return min(severity, threshold / 2)
    return severity


def haze_severity(severity: float, haze: dict[str, float], threshold: float = DEFAULT_PRESENCE_THRESHOLD) -> float:
    """The dark-channel haze severity (in [0, 1]) held under half the presence ``threshold`` when the
    lifted floor is not a veil: coloured (``veil_floor_chroma`` > :data:`VEIL_MAX_FLOOR_CHROMA`) unless
    the colour lines say thin veil (:func:`thin_veil`), or under a dim airlight (``veil_airlight`` <
    :data:`VEIL_MIN_AIRLIGHT`), or in a black-and-white photo (``black_and_white``: the dark channel and
    the veil's colour are colour evidence; a grey photo's floor is always "grey" and its dark channel is
    its own brightness, so real gray PolyU crops read haze 0.74–1.00 and dehazing cost 26–31 dB);
    unchanged otherwise and when those measurements are missing."""
    if (_floor_coloured(haze) and not thin_veil(haze)) or _airlight_dim(haze) or haze.get("black_and_white", 0.0) > 0:
        return min(severity, threshold / 2)
    return severity


def colour_gated(severity: float, haze: dict[str, float], threshold: float = DEFAULT_PRESENCE_THRESHOLD) -> bool:
    """Whether only the floor-colour gate stands between the dark channel's ``severity`` and haze:
    severity at least ``threshold``, a bright airlight, a floor more coloured than
    :data:`VEIL_MAX_FLOOR_CHROMA` (where :func:`thin_veil` is asked)."""
    return severity >= threshold and _floor_coloured(haze) and not _airlight_dim(haze)


def _floor_coloured(haze: dict[str, float]) -> bool:
    """``veil_floor_chroma`` above :data:`VEIL_MAX_FLOOR_CHROMA` (NaN or missing: False)."""
    chroma = haze.get("veil_floor_chroma", float("nan"))
    return math.isfinite(chroma) and chroma > VEIL_MAX_FLOOR_CHROMA


def _airlight_dim(haze: dict[str, float]) -> bool:
    """``veil_airlight`` below :data:`VEIL_MIN_AIRLIGHT` (NaN or missing: False)."""
    airlight = haze.get("veil_airlight", float("nan"))
    return math.isfinite(airlight) and airlight < VEIL_MIN_AIRLIGHT


def thin_veil(haze: dict[str, float]) -> bool:
    """Whether the patches' colour lines meet the grey axis above :data:`THIN_VEIL_MIN_LINE_OFFSET` and
    below ``1 − VEIL_MAX_FLOOR_CHROMA`` (``veil_line_offset``, NaN or missing: False)."""
    offset = haze.get("veil_line_offset", float("nan"))
    return math.isfinite(offset) and THIN_VEIL_MIN_LINE_OFFSET < offset < 1.0 - VEIL_MAX_FLOOR_CHROMA


def lowlight_severity(severity: float, exposure: dict[str, float],
                      threshold: float = DEFAULT_PRESENCE_THRESHOLD) -> float:
    """The exposure-index low-light severity (in [0, 1]) held under half the presence ``threshold``
    when the photo's brightest twentieth is bright (``p95_luma`` ≥ :data:`LOWLIGHT_MAX_P95_LUMA`): a
    dim scene exposed for its light parts, not an under-exposed photo. Unchanged otherwise."""
    p95 = exposure.get("p95_luma", float("nan"))
    if math.isfinite(p95) and p95 >= LOWLIGHT_MAX_P95_LUMA:
        return min(severity, threshold / 2)
    return severity


def analyse(image: np.ndarray, progress: Optional[Progress] = None, *, iso: Optional[float] = None,
            exposure_s: Optional[float] = None, jpeg_quality: Optional[int] = None) -> DegradationReport:
    """Detect the six degradation kinds in ``image``.

    ``image``: HxWx3 (or HxW) float in [0, 1], sRGB-encoded (uint8/uint16 are rescaled).
    Noise and the JPEG grid are measured on full-resolution tiles; blur, haze, exposure and
    rain on a copy downscaled to ``WORKING_SIDE`` px. Works on any size down to 1×1 (tiny
    photos get low confidence). ``progress`` is called with fractions in [0, 1] and is a
    cancellation point. ``iso``/``exposure_s``: the photo's EXIF, a prior on the noise level;
    ``jpeg_quality``: the quality the photo's JPEG file states (see :func:`measure`).
    Returns a :class:`DegradationReport` with every kind present.
    """
    progress = progress or Progress()
    img = _as_rgb(image)
    m = measure(img, progress.sub(0.0, 0.9), iso=iso, exposure_s=exposure_s, jpeg_quality=jpeg_quality)
    conf = _confidences(m, img.shape[0] * img.shape[1])
    severities = {k: severity_from(k, m[k]) for k in KINDS}
    # The camera's record of a high ISO, confirmed by the pixels, makes noise present (noise_level.prior_severity).
    severities[NOISE] = max(severities[NOISE], prior_severity(m[NOISE]))
    # Colour blotches on flat areas, beyond what clean photos saved alike show (noise_level.still_chroma).
    severities[NOISE] = max(severities[NOISE], still_chroma_severity(m[NOISE]))
    # Luma grain over a large flat area, beyond what clean photos saved alike show (noise_level.still_luma).
    severities[NOISE] = max(severities[NOISE], still_luma_severity(m[NOISE]))
    severities[BLUR] = blur_severity(severities[BLUR], m[BLUR], m[NOISE]["sigma_255"])
    severities[HAZE] = haze_severity(severities[HAZE], m[HAZE])
    severities[LOWLIGHT] = lowlight_severity(severities[LOWLIGHT], m[LOWLIGHT])
    kinds = {k: KindAssessment(severity=severities[k], confidence=float(conf[k]), measurements=m[k]) for k in KINDS}
    progress(1.0, "analysis done")
    return DegradationReport(kinds)
