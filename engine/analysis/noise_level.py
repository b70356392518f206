"""Signal-dependent noise: a noise-level function (σ per channel vs intensity) and a noise map.

Real camera noise is not one number. Shot noise grows with the signal, the tone curve and white
balance reshape it per channel, and it is strongest where the camera amplified most. This module
measures, from flat patches of the photo itself, the noise std of each channel as a function of
the local intensity (the noise-level function, NLF), and turns it into a per-pixel, per-channel
map that a denoiser such as FFDNet can be told.

Method (block-based, as in Liu et al., "Noise estimation from a single image", CVPR 2006):
each channel is high-passed and cut into blocks; blocks are binned by their mean intensity, and
in each bin the low percentile of block stds (flat blocks hold noise only, texture only adds)
gives σ, bias-corrected against white noise. Mostly clipped blocks are skipped; bins with too few
blocks are filled by interpolation from their neighbours. Spatially correlated noise (demosaicing, in-camera noise
reduction, JPEG) keeps less power through the high-pass than white noise, so for real camera
noise this reads low; the analysis scales it into the σ to tell a white-noise denoiser. All σ are in [0, 1] pixel units
(multiply by 255 for 8-bit levels).

Exif facts (ISO, exposure time) are an optional prior (:func:`iso_prior_sigma`): with no flat
blocks to measure on, a high ISO still implies some noise.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from ..color import channel_max, channel_mean, channel_min

#: Block edge in pixels.
BLOCK = 8
#: σ (px) of the Gaussian the high-pass subtracts. Real camera noise is spatially correlated
#: (demosaicing, in-camera noise reduction), so a high-pass coarser than one pixel sees more of it
#: while still removing smooth shading.
HIGHPASS_PX = 1.5
#: Intensity bins over [0, 1].
BINS = 8
#: Which low percentile of a bin's block stds tells the noise (flat blocks: noise only; textured
#: blocks only add).
PERCENTILE = 10.0
#: A bin needs at least this many unclipped blocks to be measured; fewer: interpolated.
MIN_BLOCKS = 16
#: Pixels at or below / at or above these values count as clipped.
CLIP_LO, CLIP_HI = 1.0 / 255.0, 254.0 / 255.0


@dataclass(frozen=True)
class NoiseLevelFunction:
    """σ per channel as a function of intensity.

    ``intensities``: (K,) bin centres in [0, 1]. ``sigma``: (K, 3) noise std per bin and RGB channel,
    [0, 1] units, every entry finite (unmeasured bins interpolated / extended). ``measured``:
    (K,) bool, whether a bin had enough flat blocks. ``blocks``: number of blocks used.
    """

    intensities: np.ndarray
    sigma: np.ndarray
    measured: np.ndarray
    blocks: int

    def at(self, intensity: np.ndarray) -> np.ndarray:
        """σ (…, 3) at the given intensities (…), linear interpolation between bin centres."""
        x = np.asarray(intensity, np.float32)
        return np.stack([np.interp(x, self.intensities, self.sigma[:, c]) for c in range(3)], axis=-1)\
            .astype(np.float32)

    def per_channel(self) -> np.ndarray:
        """(3,) a representative σ per channel: the median over the measured bins (0 if none)."""
        if not self.measured.any():
            return np.zeros(3, np.float32)
        return np.median(self.sigma[self.measured], axis=0).astype(np.float32)

    def peak(self) -> float:
        """Largest measured σ over bins and channels ([0, 1] units; 0 if nothing measured)."""
        return float(self.sigma[self.measured].max()) if self.measured.any() else 0.0


@functools.lru_cache(maxsize=8)
def white_noise_reference(highpass_px: float, block: int, percentile: float) -> float:
    """The ``percentile``-th lowest block std that unit white noise keeps through the high-pass
    (measured once on a fixed, seeded 512 x 512 noise field): dividing a measured percentile by
    it gives an unbiased σ for white noise."""
    n = np.random.default_rng(1234).standard_normal((512, 512)).astype(np.float32)
    r = (n - cv2.GaussianBlur(n, (0, 0), highpass_px, borderType=cv2.BORDER_REFLECT))[16:-16, 16:-16]
    return float(np.percentile(_blocks(r, block).std(axis=1), percentile))


def estimate_nlf(image: np.ndarray, *, block: int = BLOCK, highpass_px: float = HIGHPASS_PX, bins: int = BINS,
                 percentile: float = PERCENTILE, min_blocks: int = MIN_BLOCKS) -> NoiseLevelFunction:
    """The noise-level function of ``image`` (float HxWx3 in [0, 1], sRGB-encoded as stored).

    Every channel is high-passed (minus a Gaussian of ``highpass_px``) and cut into ``block``-px
    blocks; blocks are grouped by mean intensity into ``bins`` bins, and in every bin with at
    least ``min_blocks`` unclipped blocks a channel's σ is the ``percentile``-th lowest block std
    divided by what white noise of σ = 1 gives (:func:`white_noise_reference`). Photos smaller
    than one block give an all-zero, unmeasured function."""
    img = np.asarray(image, np.float32)[..., :3]
    centres = (np.arange(bins, dtype=np.float32) + 0.5) / bins
    empty = NoiseLevelFunction(centres, np.zeros((bins, 3), np.float32), np.zeros(bins, bool), 0)
    if min(img.shape[:2]) < block:
        return empty
    ref = white_noise_reference(float(highpass_px), block, float(percentile))
    mean = _blocks(channel_mean(img), block).mean(axis=1)
    clipped = ((_blocks(channel_min(img), block) <= CLIP_LO).mean(axis=1) > 0.2) \
        | ((_blocks(channel_max(img), block) >= CLIP_HI).mean(axis=1) > 0.2)
    stds = np.empty((mean.size, 3), np.float32)
    for c in range(3):
        ch = np.ascontiguousarray(img[..., c])
        stds[:, c] = _blocks(ch - cv2.GaussianBlur(ch, (0, 0), highpass_px, borderType=cv2.BORDER_REFLECT),
                             block).std(axis=1)
    which = np.minimum((mean * bins).astype(int), bins - 1)
    sigma = np.full((bins, 3), np.nan, np.float32)
    used = 0
    for b in range(bins):
        sel = (which == b) & ~clipped
        n = int(sel.sum())
        if n < min_blocks:
            continue
        sigma[b] = np.percentile(stds[sel], percentile, axis=0) / ref
        used += n
    measured = np.isfinite(sigma[:, 0])
    if not measured.any():
        return empty
    idx = np.flatnonzero(measured)
    for c in range(3):
        sigma[:, c] = np.interp(np.arange(bins), idx, sigma[idx, c])
    return NoiseLevelFunction(centres, sigma.astype(np.float32), measured, int(used))


def _blocks(a: np.ndarray, block: int) -> np.ndarray:
    h, w = (a.shape[0] // block) * block, (a.shape[1] // block) * block
    return a[:h, :w].reshape(h // block, block, w // block, block).swapaxes(1, 2).reshape(-1, block * block)


def noise_map(image: np.ndarray, nlf: NoiseLevelFunction, smooth_px: float = 2.0) -> np.ndarray:
    """Per-pixel, per-channel noise std (float32 HxWx3, [0, 1] units): the NLF evaluated at the
    locally smoothed intensity (so the map follows the scene's brightness, not the noise)."""
    img = np.asarray(image, np.float32)[..., :3]
    lum = cv2.GaussianBlur(channel_mean(img), (0, 0), smooth_px)
    return nlf.at(lum)


#: Below this ISO the prior says nothing.
ISO_PRIOR_BASE = 800.0
#: Prior σ (8-bit levels) at ISO 6400 for a typical processed camera JPEG; it grows with √ISO.
ISO_PRIOR_SIGMA_255_AT_6400 = 3.0


def iso_prior_sigma(iso: Optional[float], exposure_s: Optional[float] = None) -> float:
    """A weak prior on the noise std ([0, 1] units) from EXIF: 0 below ISO
    :data:`ISO_PRIOR_BASE`, rising with √ISO to :data:`ISO_PRIOR_SIGMA_255_AT_6400` levels at ISO
    6400; a long exposure (> 1/4 s, hot pixels and dark current) adds 20 %. ``None``: no prior (0)."""
    if not iso or not math.isfinite(float(iso)) or float(iso) <= ISO_PRIOR_BASE:
        return 0.0
    s = ISO_PRIOR_SIGMA_255_AT_6400 * (math.sqrt(float(iso)) - math.sqrt(ISO_PRIOR_BASE)) \
        / (math.sqrt(6400.0) - math.sqrt(ISO_PRIOR_BASE))
    if exposure_s and exposure_s > 0.25:
        s *= 1.2
    return float(s / 255.0)


# ---------------------------------------------------------------- what the analysis reports
#: σ told to a white-noise denoiser = TOLD_GAIN_FINE·σ_fine + TOLD_GAIN_EXCESS·max(σ_coarse − σ_fine, 0),
#: 8-bit levels, where σ_fine / σ_coarse are the NLF's representative σ measured with a fine
#: (0.7 px) and a coarse (:data:`HIGHPASS_PX`) high-pass. White noise reads the same at both
#: scales (told ≈ its σ); spatially correlated camera noise reads higher at the coarse scale and
#: needs a larger σ than its fine-scale std (fitted by benchmarks/calibrate_noise_sigma.py on the
#: camera pipeline over the training photos, never on the validation pairs).
TOLD_GAIN_FINE = 1.0
TOLD_GAIN_EXCESS = 2.5
#: The fine high-pass (px) of the two-scale measurement.
FINE_HIGHPASS_PX = 0.7


def _mosaic(tiles: list[np.ndarray]) -> np.ndarray:
    """Tiles of equal width stacked vertically (else the largest tile alone)."""
    if len(tiles) > 1 and len({t.shape[1] for t in tiles}) == 1:
        return np.concatenate(tiles, axis=0)
    return max(tiles, key=lambda t: t.shape[0] * t.shape[1])


def nlf_measurements(tiles: list[np.ndarray], iso: Optional[float] = None,
                     exposure_s: Optional[float] = None, jpeg_quality: Optional[int] = None) -> dict[str, float]:
    """The noise measurements the analysis reports (8-bit levels), from full-resolution tiles:

    - ``nlf_{r,g,b}{i}_255``: the noise-level function (:func:`estimate_nlf`, coarse high-pass) at
      bin ``i`` of :data:`BINS` (centre (i + ½)/BINS), per channel;
    - ``nlf_fine_255``, ``nlf_coarse_255``: representative σ (median over measured bins, mean over
      channels) at the fine and the coarse high-pass;
    - ``iso_prior_255``: :func:`iso_prior_sigma` (0 without EXIF);
    - ``sigma_measured_255``: the two-scale noise level (see :data:`TOLD_GAIN_EXCESS`), which the
      EXIF prior is checked against;
    - ``nlf_half_255``: the representative σ of a ×½ copy (:func:`.noise_sigma.half_resolution_sigma_255`);
    - ``sigma_told_255``: the σ to tell a white-noise denoiser (:func:`.noise_sigma.told_sigma_255`
      of the coarse and ×½ σ and ``jpeg_quality``, the file's IJG quality or ``None``), at least
      the ISO prior; ``sigma_two_scale_255``: ``sigma_measured_255``, at least the ISO prior (the
      noise level the deblurrer's regularisation was validated with);
    - ``exif_present``: 1.0 when the EXIF prior confirms noise (:func:`prior_confirms_noise`), else 0.
    """
    image = _mosaic([np.asarray(t, np.float32)[..., :3] for t in tiles])
    coarse = estimate_nlf(image)
    fine = estimate_nlf(image, highpass_px=FINE_HIGHPASS_PX)
    out: dict[str, float] = {}
    for c, name in enumerate("rgb"):
        for i in range(coarse.sigma.shape[0]):
            out[f"nlf_{name}{i}_255"] = float(coarse.sigma[i, c] * 255.0)
    s_fine = float(fine.per_channel().mean() * 255.0)
    s_coarse = float(coarse.per_channel().mean() * 255.0)
    prior = iso_prior_sigma(iso, exposure_s) * 255.0
    measured = TOLD_GAIN_FINE * s_fine + TOLD_GAIN_EXCESS * max(s_coarse - s_fine, 0.0)
    from .noise_sigma import half_resolution_sigma_255, told_sigma_255
    s_half = half_resolution_sigma_255(image)
    out.update(nlf_fine_255=s_fine, nlf_coarse_255=s_coarse, iso_prior_255=prior, sigma_measured_255=measured,
               nlf_half_255=s_half, sigma_told_255=max(told_sigma_255(s_coarse, s_half, jpeg_quality), prior),
               sigma_two_scale_255=max(measured, prior),
               exif_present=float(prior_confirms_noise(measured, prior)))
    return out


# ---------------------------------------------------------------- presence from EXIF
#: A photo whose EXIF ISO gives a prior (:func:`iso_prior_sigma` > 0, i.e. ISO above
#: :data:`ISO_PRIOR_BASE`) counts as noisy when the σ measured on it (``sigma_measured_255``) is at
#: least this fraction of the prior: the photo still holds the noise its ISO implies (a photo that
#: was denoised, or downscaled a lot, no longer does, and a denoiser's output no longer does either,
#: so the judge sees the noise severity fall).
PRIOR_CONFIRM_FRACTION = 0.5
#: The EXIF prior must say at least this much noise (8-bit levels; ISO ≈ 1300 and up) to make noise
#: present: just above :data:`ISO_PRIOR_BASE` it is too small for any photo to fail to confirm it.
PRIOR_MIN_255 = 0.5
#: Where only the EXIF prior makes noise present (the pixels alone read it absent), the σ told is at
#: most this multiple of the prior: a measurement above that is texture, not the noise the ISO implies.
PRIOR_MAX_RATIO = 3.0
#: Severity of a photo that holds exactly the confirming share of its prior's noise (the presence
#: threshold); it grows in proportion to the measured σ, so a denoiser that lowers the measured σ
#: lowers the severity too, even where texture keeps the measurement from falling to 0.
PRIOR_SEVERITY_FLOOR = 0.15


def prior_confirms_noise(measured_255: float, prior_255: float) -> bool:
    """Whether the EXIF prior (``prior_255``, 8-bit levels; 0 = none) and the measured σ
    (``measured_255``) together say the photo is noisy (see :data:`PRIOR_CONFIRM_FRACTION`).

    Real high-ISO camera noise is often too fine or too smoothed by the camera's JPEG to stand out
    from the grain and texture of clean photos (benchmarks/results/noise-separability.md); the
    camera's own record of a high ISO is the evidence the pixels cannot give."""
    return (prior_255 >= PRIOR_MIN_255 and math.isfinite(measured_255)
            and measured_255 >= PRIOR_CONFIRM_FRACTION * prior_255)


def cap_told_by_prior(noise: dict[str, float], pixels_say_present: bool) -> None:
    """Where the EXIF prior alone makes noise present (``pixels_say_present`` False), limit
    ``noise["sigma_told_255"]`` (and ``sigma_two_scale_255``) to :data:`PRIOR_MAX_RATIO` times the
    prior (in place)."""
    if noise.get("exif_present", 0.0) and not pixels_say_present:
        for key in ("sigma_told_255", "sigma_two_scale_255"):
            if key in noise:
                noise[key] = min(float(noise[key]), PRIOR_MAX_RATIO * float(noise["iso_prior_255"]))


def prior_severity(measurements: dict[str, float]) -> float:
    """Noise severity in [0, 1] the EXIF prior supports (0 when it does not confirm noise):
    ``PRIOR_SEVERITY_FLOOR · sigma_measured_255 / (PRIOR_CONFIRM_FRACTION · iso_prior_255)``, at most 1."""
    if not measurements.get("exif_present", 0.0):
        return 0.0
    measured = float(measurements.get("sigma_measured_255", 0.0))
    prior = float(measurements.get("iso_prior_255", 0.0))
    if prior <= 0.0:
        return 0.0
    severity = PRIOR_SEVERITY_FLOOR * measured / (PRIOR_CONFIRM_FRACTION * prior)
    return float(min(1.0, max(PRIOR_SEVERITY_FLOOR, severity)))


def nlf_from_measurements(measurements: dict[str, float]) -> Optional[NoiseLevelFunction]:
    """Rebuild the :class:`NoiseLevelFunction` from :func:`nlf_measurements`' keys (``None`` if
    they are absent)."""
    try:
        sigma = np.array([[measurements[f"nlf_{name}{i}_255"] for name in "rgb"] for i in range(BINS)],
                         np.float32) / 255.0
    except KeyError:
        return None
    centres = (np.arange(BINS, dtype=np.float32) + 0.5) / BINS
    return NoiseLevelFunction(centres, sigma, np.ones(BINS, bool), 0)


#: Above this many pixels the session tells a denoiser a per-channel σ instead of a full map
#: (an HxWx3 float32 map of a 24 MP photo would take 288 MB).
MAP_MAX_PIXELS = 8_000_000


def noise_sigma_for(image: np.ndarray, measurements: dict[str, float]) -> Optional[np.ndarray]:
    """What :attr:`engine.experts.base.ExpertContext.noise_sigma` should hold for ``image``, in
    [0, 1] units: the noise map (:func:`noise_map` of the reported NLF), scaled so that its
    median equals the reported ``sigma_told_255`` (the σ a white-noise denoiser needs), as an
    HxWx3 float32 map, or per channel ``(3,)`` above :data:`MAP_MAX_PIXELS`. ``None`` when the
    measurements carry no noise level."""
    told = measurements.get("sigma_told_255")
    if told is None or not math.isfinite(float(told)):
        return None
    told = max(float(told), 0.0) / 255.0
    nlf = nlf_from_measurements(measurements)
    img = np.asarray(image, np.float32)
    if nlf is None or told <= 0.0:
        return np.full(3, told, np.float32)
    rep = nlf.per_channel()
    scale = told / max(float(rep.mean()), 1e-6)
    if img.shape[0] * img.shape[1] > MAP_MAX_PIXELS:
        return (rep * scale).astype(np.float32)
    return np.clip(noise_map(img, nlf) * np.float32(scale), 0.0, 1.0).astype(np.float32)


def two_scale_noise_sigma_for(image: np.ndarray, measurements: dict[str, float]) -> Optional[np.ndarray]:
    """:func:`noise_sigma_for` at the two-scale level ``sigma_two_scale_255`` where it is measured
    (else at ``sigma_told_255``): the level the deblurrer's regularisation, the low-light denoise and
    the uncertainty model were validated with, not the σ fitted for FFDNet on camera noise
    (:mod:`engine.analysis.noise_sigma`)."""
    m = dict(measurements)
    if "sigma_two_scale_255" in m:
        m["sigma_told_255"] = m["sigma_two_scale_255"]
    return noise_sigma_for(image, m)


# ---------------------------------------------------------------- colour noise in still areas
#: Block edge (px) of the still-area chroma measurement: one 8 x 8 chroma block of a 4:2:0 JPEG.
STILL_BLOCK = 16
#: A block is still (flat) when the std of its luma band 2–12 px is below this (8-bit levels).
#: Measured at that coarse band, the flatness test ignores most fine noise but not texture.
STILL_FLAT_255 = 1.5
#: The chroma band measured in still blocks, (inner, outer) Gaussian σ in px: blotchy colour
#: noise after demosaicing and in-camera chroma noise reduction sits at 1.5–6 px.
STILL_CHROMA_BAND = (1.5, 6.0)
#: Fewer still blocks than this: nothing to measure on (``still_chroma_255`` = 0).
STILL_MIN_BLOCKS = 8
#: Clean-photo thresholds of ``still_chroma_255`` (8-bit levels) by the JPEG quality the photo
#: was last saved at, ``(IJG quality, threshold)``: the 99.5th percentile over the training split
#: of ../shared/data/clean re-saved at that quality (4:2:0), and as stored (JPEG ≈ q95, film
#: scans with grain) for the last knot, which also serves photos of unknown history (PNG, TIFF).
#: A file compressed harder keeps less colour texture in its still areas, so colour blotches that
#: survive its quantisation are stronger evidence. Fitted by benchmarks/calibrate_still_chroma.py
#: (training photos only; never the real pairs).
STILL_THRESHOLDS: tuple[tuple[int, float], ...] = ((75, 0.622), (90, 0.910), (95, 1.080))
#: Still-area chroma counts as sensor noise only up to this multiple of the same blocks' median luma
#: std (:data:`STILL_LUMA_BAND`): the largest chroma-to-luma ratio over camera-pipeline noise on training
#: photos (engine.degrade.camera, as the camera saved it and re-saved at q75) whose still chroma passes its
#: threshold (benchmarks/calibrate_still_luma.py, benchmarks/results/still-luma.md; training photos only).
#: Clean photos with coloured texture on smooth surfaces read 2.2 (urban100_img_013, bsds500_train_268002);
#: real camera noise 0.4–0.9 on the PolyU crops (circuit_11, a printed circuit board, 2.8).
STILL_CHROMA_MAX_LUMA_RATIO = 1.74
#: Severity given to a photo whose still-area chroma is exactly at its threshold (the presence
#: threshold); it grows in proportion above it.
STILL_SEVERITY_AT_THRESHOLD = 0.15


def still_threshold_255(jpeg_quality: Optional[int] = None) -> float:
    """The clean-photo threshold of ``still_chroma_255`` for a photo last saved at
    ``jpeg_quality`` (IJG 1..100; ``None``: unknown, e.g. a PNG), 8-bit levels; qualities below
    the first knot use the first knot (the conservative side), above the last the last."""
    return _threshold_at_quality(STILL_THRESHOLDS, jpeg_quality)


def _threshold_at_quality(knots: tuple[tuple[int, float], ...], jpeg_quality: Optional[int]) -> float:
    """Threshold interpolated between ``knots`` ``(IJG quality, threshold)`` and held at the end
    knots; ``None`` (unknown history) takes the last knot."""
    qs = np.array([k[0] for k in knots], np.float64)
    ts = np.array([k[1] for k in knots], np.float64)
    if jpeg_quality is None:
        return float(ts[-1])
    return float(np.interp(float(jpeg_quality), qs, ts))


def _severity_above_threshold(measurements: dict[str, float], present: str, value: str, threshold: str) -> float:
    """Severity in [0, 1] of a still-area measurement, given its keys in ``measurements``: 0 when
    ``present`` is not set, else :data:`STILL_SEVERITY_AT_THRESHOLD` · value / threshold, at most 1."""
    if not measurements.get(present, 0.0):
        return 0.0
    threshold = float(measurements.get(threshold, 0.0))
    value = float(measurements.get(value, 0.0))
    if threshold <= 0.0:
        return 0.0
    return float(min(1.0, STILL_SEVERITY_AT_THRESHOLD * value / threshold))


def _blocks16(a: np.ndarray) -> np.ndarray:
    return _blocks(a, STILL_BLOCK)


def still_block_maps(tile: np.ndarray) -> dict[str, np.ndarray]:
    """Per :data:`STILL_BLOCK`-px block of one float HxWx3 ``tile`` in [0, 1] (row-major, shape
    (H // STILL_BLOCK, W // STILL_BLOCK); empty when the tile is smaller than one block): ``unclipped``
    (no channel at or under 3 or at or over 252 levels), ``still`` (unclipped and its luma std at
    2–12 px under :data:`STILL_FLAT_255`), ``chroma`` (the std of Cb, Cr in :data:`STILL_CHROMA_BAND`,
    combined as √(Cb² + Cr²)) and ``luma`` (the luma std in :data:`STILL_LUMA_BAND`), 8-bit levels."""
    from ..color import JFIF_YCBCR

    t = np.asarray(tile, np.float32)[..., :3]
    nh, nw = t.shape[0] // STILL_BLOCK, t.shape[1] // STILL_BLOCK
    if nh == 0 or nw == 0:
        empty = np.zeros((nh, nw), np.float32)
        return {"unclipped": empty.astype(bool), "still": empty.astype(bool), "chroma": empty, "luma": empty}
    rgb = t * np.float32(255.0)
    ycc = rgb @ JFIF_YCBCR.T
    y, cb, cr = (np.ascontiguousarray(ycc[..., c]) for c in range(3))

    def band(ch: np.ndarray, a: float, b: float) -> np.ndarray:
        lo = cv2.GaussianBlur(ch, (0, 0), b, borderType=cv2.BORDER_REFLECT)
        hi = cv2.GaussianBlur(ch, (0, 0), a, borderType=cv2.BORDER_REFLECT)
        return _blocks16(hi - lo).std(axis=1).reshape(nh, nw)

    unclipped = ((_blocks16(rgb.min(axis=2)).min(axis=1) > 3.0)
                 & (_blocks16(rgb.max(axis=2)).max(axis=1) < 252.0)).reshape(nh, nw)
    still = (band(y, 2.0, 12.0) < STILL_FLAT_255) & unclipped
    inner, outer = STILL_CHROMA_BAND
    return {"unclipped": unclipped, "still": still,
            "chroma": np.hypot(band(cb, inner, outer), band(cr, inner, outer)), "luma": band(y, *STILL_LUMA_BAND)}


def _still_block_values(tiles: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, float]:
    """Per still block of every tile (:func:`still_block_maps`): the chroma and the luma std (8-bit
    levels), and the number of unclipped blocks measured in all (still or not)."""
    chroma: list[np.ndarray] = []
    luma: list[np.ndarray] = []
    measured = 0.0
    for tile in tiles:
        maps = still_block_maps(tile)
        measured += float(maps["unclipped"].sum())
        chroma.append(maps["chroma"][maps["still"]])
        luma.append(maps["luma"][maps["still"]])
    empty = np.empty(0, np.float32)
    return (np.concatenate(chroma) if chroma else empty), (np.concatenate(luma) if luma else empty), measured


def still_evidence(tiles: list[np.ndarray], jpeg_quality: Optional[int] = None) -> dict[str, float]:
    """:func:`still_chroma` and :func:`still_luma` of ``tiles`` from one pass over their blocks
    (the union of both dicts)."""
    chroma, luma, measured = _still_block_values(tiles)
    return _still_chroma_result(chroma, luma, jpeg_quality) | _still_luma_result(luma, measured, jpeg_quality)


def _still_chroma_result(used: np.ndarray, luma: np.ndarray, jpeg_quality: Optional[int]) -> dict[str, float]:
    enough = used.size >= STILL_MIN_BLOCKS
    value = float(np.median(used)) if enough else 0.0
    grain = float(np.median(luma)) if enough else 0.0
    threshold = still_threshold_255(jpeg_quality)
    present = value > threshold and value <= STILL_CHROMA_MAX_LUMA_RATIO * grain
    return {"still_chroma_255": value, "still_blocks": float(used.size), "still_threshold_255": threshold,
            "still_chroma_luma_255": grain, "still_chroma_present": float(present)}


def still_chroma(tiles: list[np.ndarray], jpeg_quality: Optional[int] = None) -> dict[str, float]:
    """Colour noise in the still (flat) areas of a photo: the signature of digital sensor noise.

    Demosaicing and in-camera chroma noise reduction turn a sensor's noise into colour blotches
    a few pixels wide that sit on every flat wall and sky. Film grain and natural texture are
    mostly luma, and clean digital photos have no colour fluctuation where the scene is flat. Each
    tile is split into :data:`STILL_BLOCK`-px blocks; a block is *still* when its luma (JFIF Y)
    varies little at 2–12 px (:data:`STILL_FLAT_255`) and it is not clipped; in still blocks the
    std of Cb and Cr in the band :data:`STILL_CHROMA_BAND` is combined (√(Cb² + Cr²)) and the
    median over blocks is taken. With fewer than :data:`STILL_MIN_BLOCKS` still blocks nothing
    is measured (0). ``tiles``: float HxWx3 in [0, 1].

    Sensor noise reaches the chroma through demosaicing and the colour matrix and brings luma grain
    with it; a coloured texture on a smooth surface (a patterned wall, a dyed fabric) has chroma
    without it. So the chroma counts only up to :data:`STILL_CHROMA_MAX_LUMA_RATIO` times the
    median luma std of the same blocks in :data:`STILL_LUMA_BAND`.

    Returns ``still_chroma_255`` (8-bit levels), ``still_blocks`` (count),
    ``still_threshold_255`` (:func:`still_threshold_255` for ``jpeg_quality``),
    ``still_chroma_luma_255`` (the median luma std of the same blocks, 8-bit levels) and
    ``still_chroma_present`` (1.0 when the measurement exceeds that threshold and is at most
    :data:`STILL_CHROMA_MAX_LUMA_RATIO` times ``still_chroma_luma_255``, else 0.0)."""
    chroma, luma, _ = _still_block_values(tiles)
    return _still_chroma_result(chroma, luma, jpeg_quality)


def still_chroma_severity(measurements: dict[str, float]) -> float:
    """Noise severity in [0, 1] the still-area chroma supports: 0 when it is at or below its
    threshold, else :data:`STILL_SEVERITY_AT_THRESHOLD` · value / threshold, at most 1."""
    return _severity_above_threshold(measurements, "still_chroma_present", "still_chroma_255", "still_threshold_255")


# ---------------------------------------------------------------- luma noise in large still areas
#: The luma band measured in still blocks, (inner, outer) Gaussian σ in px: the grain a camera's
#: demosaicing and luma noise reduction leave (real DSLR noise: luma neighbour correlation ≈ 0.6,
#: benchmarks/results/camera-vs-real.md), finer than the 2–12 px band that decides stillness.
STILL_LUMA_BAND = (0.7, 2.0)
#: The luma measurement speaks only where the still blocks are at least this many and at least
#: :data:`STILL_LUMA_MIN_SHARE` of the unclipped blocks measured: a photo with a large flat area
#: (a wall, a desk, a sky) shows its noise floor there, while the few still blocks of a textured
#: scene are its smoothest texture, whose grain says nothing about noise.
STILL_LUMA_MIN_BLOCKS = 128
STILL_LUMA_MIN_SHARE = 0.125
#: Clean-photo thresholds of ``still_luma_255`` (8-bit levels) by the JPEG quality the photo was last
#: saved at, ``(IJG quality, threshold)``, as :data:`STILL_THRESHOLDS`: the 99.5th percentile, over the
#: training split of ../shared/data/clean re-saved at that quality (4:2:0), whole photos and 256-px
#: windows, of the photos and windows with enough still area (q90: every other photo), raised to a
#: running maximum over quality (the q95 fit, 1.099, came out under the q90 one); the last knot (as
#: stored, ≈ q95) also serves photos of unknown history. Fitted by benchmarks/calibrate_still_luma.py
#: (training photos only; never the real pairs). The band, the still-area rule and the 99.5th
#: percentile were chosen after looking at the real PolyU crops' statistics (benchmarks/results/still-luma.md).
STILL_LUMA_THRESHOLDS: tuple[tuple[int, float], ...] = ((75, 1.031), (90, 1.236), (95, 1.236))


def still_luma_threshold_255(jpeg_quality: Optional[int] = None) -> float:
    """The clean-photo threshold of ``still_luma_255`` for a photo last saved at ``jpeg_quality``
    (IJG 1..100; ``None``: unknown), 8-bit levels, interpolated between the knots of
    :data:`STILL_LUMA_THRESHOLDS` and held at the end knots."""
    return _threshold_at_quality(STILL_LUMA_THRESHOLDS, jpeg_quality)


def _still_luma_result(used: np.ndarray, measured: float, jpeg_quality: Optional[int]) -> dict[str, float]:
    enough = used.size >= max(STILL_LUMA_MIN_BLOCKS, STILL_LUMA_MIN_SHARE * measured)
    value = float(np.median(used)) if enough else 0.0
    threshold = still_luma_threshold_255(jpeg_quality)
    return {"still_luma_255": value, "still_share": float(used.size / measured) if measured else 0.0,
            "still_luma_threshold_255": threshold, "still_luma_present": float(enough and value > threshold)}


def still_luma(tiles: list[np.ndarray], jpeg_quality: Optional[int] = None) -> dict[str, float]:
    """Fine luma noise in the large still areas of a photo: the noise floor a camera leaves on a
    wall or a desk after its own noise reduction and JPEG.

    On the still blocks of :func:`still_chroma` the std of luma (JFIF Y) in the band
    :data:`STILL_LUMA_BAND`, median over blocks, measured only where the still blocks are many
    (:data:`STILL_LUMA_MIN_BLOCKS`, :data:`STILL_LUMA_MIN_SHARE` of the unclipped blocks). Real
    camera JPEGs at quality 75 keep little colour noise in flat areas (4:2:0 and the chroma tables
    remove it), but their luma keeps a grain that clean photos saved alike do not have over a large
    flat area. ``tiles``: float HxWx3 in [0, 1].

    Returns ``still_luma_255`` (8-bit levels; 0 when not measured), ``still_share`` (still blocks
    / unclipped blocks), ``still_luma_threshold_255`` (:func:`still_luma_threshold_255`) and
    ``still_luma_present`` (1.0 when measured and above that threshold, else 0.0)."""
    _, luma, measured = _still_block_values(tiles)
    return _still_luma_result(luma, measured, jpeg_quality)


def still_luma_severity(measurements: dict[str, float]) -> float:
    """Noise severity in [0, 1] the still-area luma supports: 0 when it is not present, else
    :data:`STILL_SEVERITY_AT_THRESHOLD` · value / threshold, at most 1."""
    return _severity_above_threshold(measurements, "still_luma_present", "still_luma_255", "still_luma_threshold_255")
