"""Low light decided per photo: how far to brighten from the photo's own highlights, which
brightener from measurements of its outputs, then the amplified noise removed by the noise-map
denoiser and a remaining colour cast corrected.

1. **Dark scene or under-exposed photo.** A photo whose brightest parts (99.9th percentile of
   luma) already reach the top of the range was exposed for them: a night street with its lamps,
   a dim room with a lit window. Brightening it all would wash out what the photographer kept
   dark, so the change is scaled down by :func:`brightening_share` (1 below
   :data:`HEADROOM_FULL`, :data:`DARK_SCENE_SHARE` from :data:`HEADROOM_NONE` up). A photo whose
   highlights stay far below white (LOL: 99.9th percentile 0.1–0.6) is under-exposed as a whole.
2. **Which brightener.** The candidates run in order of preference (IAT-LOL, then the LIME-style
   classical expert); the first whose output passes :func:`acceptable` (it clips at most
   :data:`MAX_NEW_CLIPPED` more of the photo to white and its mean luma stays below
   :data:`MAX_MEAN_LUMA`) is kept, else the one with the best :func:`exposure_score`. No ground
   truth is used. (A score alone chose badly: on 2 of 19 LOL pairs it preferred the classical
   output, 9–11 dB worse, because its mean luma was nearer a nominal target.)
   IAT-LOL given a photo the noise stage has just denoised, or one darkened by only 1–2 stops,
   sometimes brightens it too little; :func:`exposure_corrected` then adds a global gain towards
   :data:`TARGET_MEAN_LUMA` (in linear light, bounded by :data:`MAX_EXPOSURE_GAIN` and by the
   clipping :func:`acceptable` allows) when its output is still below that mean and it brightened
   the photo by less than :data:`GAIN_BELOW_BRIGHTENING` (benchmarks/results/lowlight-choice.md).
3. **Noise.** Brightening multiplies the sensor noise by the gain. The noise-level function is
   measured on the brightened photo and FFDNet is told that per-pixel map, scaled by
   :data:`DENOISE_SIGMA_SCALE`.
4. **Colour cast.** A brightener without its own colour correction (the classical one keeps
   hue; IAT has a learned colour matrix, and grey world after it cost 0.4 dB on LOL) gets one:
   when the channel means of the mid-tones differ by more than :data:`CAST_TOLERANCE`, they are
   pulled :data:`CAST_CORRECTION` of the way to grey (grey world), which undoes the colour of a
   tungsten-lit or sodium-lit dark room only partly, on purpose.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .base import Backend, Expert, ExpertContext, ExpertInfo
from ..color import luminance

#: 99.9th percentile of luma (sRGB-encoded, 0..1) below which the photo counts as under-exposed as
#: a whole (brightened fully) and above which as a dark scene exposed for its highlights.
#: (Real under-exposed LOL photos read 0.10–0.60; a real DSLR crop of a dark room exposed for its
#: lamp, PolyU chair_11, reads 0.76 and must stay dark: brightening it cost dB against its ground truth.)
HEADROOM_FULL = 0.6
HEADROOM_NONE = 0.75
#: Share of the brightening a dark scene (highlights at white) keeps. A quarter still cost 21 dB on
#: synthetic night scenes (benchmarks/expert_ranking.py): a quarter of a tenfold gain is a lot.
DARK_SCENE_SHARE = 0.0
#: Mean luma (sRGB-encoded) the candidates are judged against: a well exposed photo's typical mean.
TARGET_MEAN_LUMA = 0.42
#: Weight of newly clipped highlights (fraction of pixels at ≥ 0.98 the candidate added) and of the
#: remaining colour cast (chroma offset of the mean, 0..1 units) in the score.
CLIP_WEIGHT = 4.0
CAST_WEIGHT = 2.0
#: Colour cast (largest deviation of a channel's mid-tone mean from their average, relative) that is
#: tolerated, and the share of the rest a correction removes.
CAST_TOLERANCE = 0.08
CAST_CORRECTION = 0.6
#: A candidate's output is accepted when it clips at most this fraction of the photo to white beyond
#: what the input had (well exposed photos keep a few % at white: sky, lamps, windows; 2 % rejected
#: IAT's faithful output of a LOL photo with a window), and its mean luma stays below MAX_MEAN_LUMA (not washed out).
MAX_NEW_CLIPPED = 0.10
MAX_MEAN_LUMA = 0.7
#: A candidate in ``exposure_corrected`` that raised the mean luma by less than this factor and left it below
#: TARGET_MEAN_LUMA gets a global gain towards that mean, at most MAX_EXPOSURE_GAIN (linear light). Fitted on 120
#: darkened TRAINING cases (benchmarks/lowlight_choice.py): above 1.8 the gain brightened photos whose scene is
#: darker than the target (losses up to 6.6 dB); LOL's real under-exposures are brightened 3x and more by IAT-LOL.
#: The training cases needed gains up to about 2.5 (bounds 2.5, 3 and 4 scored within 0.01 dB); a bound of 4
#: brightened a dark validation scene 4x (−5.1 dB), so the smallest bound that training does not tell apart is kept.
GAIN_BELOW_BRIGHTENING = 1.8
MAX_EXPOSURE_GAIN = 2.5
#: Share of the measured σ map FFDNet is told. On 12 synthetic low-light crops (engine.degrade,
#: validation photos of shared/data/clean) after IAT the full measured map cost 0.1–0.4 dB (the
#: brightened photo's texture reads partly as noise); half of it was neutral there and on LOL.
DENOISE_SIGMA_SCALE = 0.5
#: Noise below this σ (8-bit levels, FFDNet told) is left alone: the denoiser would only soften.
MIN_DENOISE_SIGMA_255 = 1.0


def robust_peak(image: np.ndarray) -> float:
    """99.9th percentile of luma (0..1): the photo's brightest parts, ignoring a few hot pixels."""
    lum = luminance(image[::2, ::2] if image.shape[0] * image.shape[1] > 1_000_000 else image)
    return float(np.percentile(lum, 99.9))


def brightening_share(peak: float) -> float:
    """Share (0..1) of a full low-light correction a photo whose 99.9th-percentile luma is ``peak``
    gets: 1 when its highlights are far from white (under-exposed), :data:`DARK_SCENE_SHARE` when
    they reach it (a dark scene exposed for its lights), linear in between."""
    t = float(np.clip((peak - HEADROOM_FULL) / (HEADROOM_NONE - HEADROOM_FULL), 0.0, 1.0))
    return 1.0 - t * (1.0 - DARK_SCENE_SHARE)


def colour_cast(image: np.ndarray) -> np.ndarray:
    """Per-channel gains (3,) that would make the mean of the mid-tones (luma 0.1..0.9) grey, and
    the relative cast they correct is ``max |gain − 1|``."""
    lum = luminance(image)
    mask = (lum > 0.1) & (lum < 0.9)
    if int(mask.sum()) < 100:
        return np.ones(3, np.float32)
    means = image[mask].mean(axis=0).astype(np.float64)
    return (means.mean() / np.maximum(means, 1e-4)).astype(np.float32)


def correct_cast(image: np.ndarray, tolerance: float = CAST_TOLERANCE,
                 correction: float = CAST_CORRECTION) -> np.ndarray:
    """``image`` with a colour cast beyond ``tolerance`` pulled ``correction`` of the way to grey
    world (per-channel gains, luma kept); unchanged when the cast is within the tolerance."""
    gains = colour_cast(image)
    cast = float(np.abs(gains - 1.0).max())
    if cast <= tolerance:
        return image
    partial = 1.0 + correction * (1.0 - tolerance / cast) * (gains - 1.0)
    out = image * partial.astype(np.float32)
    y_in, y_out = luminance(image), luminance(out)
    out *= (y_in.mean() / max(float(y_out.mean()), 1e-6))
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def exposure_score(before: np.ndarray, after: np.ndarray) -> float:
    """How well exposed ``after`` (a brightened ``before``) looks without a reference; lower is
    better: |mean luma − :data:`TARGET_MEAN_LUMA`| + :data:`CLIP_WEIGHT` · highlights clipped
    beyond the input's + :data:`CAST_WEIGHT` · colour cast left."""
    cast = float(np.abs(colour_cast(after) - 1.0).max())
    return (abs(float(luminance(after).mean()) - TARGET_MEAN_LUMA) + CLIP_WEIGHT * max(new_clipped(before, after), 0.0)
            + CAST_WEIGHT * cast)


def new_clipped(before: np.ndarray, after: np.ndarray) -> float:
    """Fraction of pixels whose luma ``after`` is at white (≥ 0.98) beyond those ``before``."""
    return float((luminance(after) >= 0.98).mean() - (luminance(before) >= 0.98).mean())


def acceptable(before: np.ndarray, after: np.ndarray) -> bool:
    """Whether a brightened ``after`` neither clips more than :data:`MAX_NEW_CLIPPED` of the photo
    nor is washed out (mean luma ≥ :data:`MAX_MEAN_LUMA`)."""
    return new_clipped(before, after) <= MAX_NEW_CLIPPED and float(luminance(after).mean()) < MAX_MEAN_LUMA


def exposure_corrected(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, float]:
    """``after`` (a brightened ``before``, HxWx3 sRGB-encoded in [0, 1]) times a global linear-light gain
    in [1, :data:`MAX_EXPOSURE_GAIN`] that brings its mean luma up to :data:`TARGET_MEAN_LUMA`, lowered
    (by 5 % steps) until at most :data:`MAX_NEW_CLIPPED` of the photo is at white beyond ``before``.
    Unchanged (gain 1) when ``after``'s mean luma is already at the target or is at least
    :data:`GAIN_BELOW_BRIGHTENING` times ``before``'s. Returns (float32 image, gain)."""
    from ..degrade._common import linear_to_srgb, srgb_to_linear

    mean_after = float(luminance(after).mean())
    if mean_after >= TARGET_MEAN_LUMA or mean_after >= GAIN_BELOW_BRIGHTENING * float(luminance(before).mean()):
        return after, 1.0
    lin = srgb_to_linear(after)
    probe = lin[::4, ::4]

    def mean_at(gain: float) -> float:
        return float(luminance(linear_to_srgb(probe * np.float32(gain))).mean())

    gain = MAX_EXPOSURE_GAIN
    if mean_at(gain) > TARGET_MEAN_LUMA:
        lo, hi = 1.0, gain
        for _ in range(20):  # bisection: the mean luma grows with the gain
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if mean_at(mid) < TARGET_MEAN_LUMA else (lo, mid)
        gain = lo
    out = linear_to_srgb(lin * np.float32(gain))
    while gain > 1.0 and new_clipped(before, out) > MAX_NEW_CLIPPED:
        gain = max(1.0, gain / 1.05)
        out = linear_to_srgb(lin * np.float32(gain))
    return out, gain


def measured_noise_sigma(image: np.ndarray) -> tuple[Optional[np.ndarray], float]:
    """The noise map to tell a denoiser for ``image`` (HxWx3 or (3,) in 0..1 units, or ``None``)
    and the σ told (8-bit levels), from the noise-level function measured on ``image`` itself."""
    from ..analysis.noise_level import nlf_measurements, two_scale_noise_sigma_for

    m = nlf_measurements([image])
    # The two-scale rule this expert was measured with (benchmarks/results/real-pairs.md): the
    # camera-JPEG σ of engine.analysis.noise_sigma was fitted on sensor noise, not on the noise a
    # brightening lifted out of a dark photo.
    return two_scale_noise_sigma_for(image, m), float(m["sigma_two_scale_255"])


class AdaptiveLowLight(Expert):
    """Per-photo low light: the first of ``candidates`` (best first) whose output is
    :func:`acceptable`, else the best by :func:`exposure_score`, scaled by
    :func:`brightening_share`, denoised by ``denoiser`` told the measured noise map. Candidates
    whose id is not in ``colour_correcting`` get :func:`correct_cast`; those in ``exposure_corrected``
    get :func:`exposure_corrected` (before the share). Needs the whole photo (exposure, highlights and
    the cast are global)."""

    def __init__(self, candidates: Sequence[Expert], denoiser: Optional[Expert] = None, *,
                 colour_correcting: Sequence[str] = (), exposure_corrected: Sequence[str] = (),
                 version: str = "2") -> None:
        if not candidates:
            raise ValueError("AdaptiveLowLight needs at least one candidate brightener")
        self.candidates = list(candidates)
        self.denoiser = denoiser
        self.colour_correcting = frozenset(colour_correcting)
        self.exposure_corrected = frozenset(exposure_corrected)
        parts = self.candidates + ([denoiser] if denoiser is not None else [])
        backend = min((p.info.backend for p in parts),
                      key=lambda b: (Backend.TORCH, Backend.ONNX, Backend.CLASSICAL).index(b))
        self.info = ExpertInfo(
            id="lowlight.adaptive",
            name="Low light by measurement: " + " or ".join(c.info.name for c in self.candidates)
                 + (f", then {denoiser.info.name}" if denoiser is not None else ""),
            tasks=("lowlight",),
            backend=backend,
            version=version + "." + ".".join(p.info.version for p in parts),
            tile_overlap=max(p.info.tile_overlap for p in parts),
            memory_factor=max(p.info.memory_factor for p in parts) + 200.0,
            model_id="+".join(p.info.model_id for p in parts if p.info.model_id) or None,
            description="Brightening scaled by the photo's highlight headroom (a dark scene exposed for "
                        "its lights stays dark); the best of the candidate brighteners by exposure, "
                        "clipping and colour cast; the amplified noise removed by the noise-map "
                        "denoiser; a remaining colour cast partly corrected.",
        )
        self.last_choice: str = ""
        #: The gain :func:`exposure_corrected` gave the kept candidate in the last run (1: none).
        self.last_gain: float = 1.0

    def is_available(self) -> bool:
        return any(c.is_available() for c in self.candidates)

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        ctx = ctx or ExpertContext()
        img = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
        ctx.progress(0.0, "choosing a brightener")
        share = brightening_share(robust_peak(img))
        scored: list[tuple[float, str, np.ndarray, float]] = []
        available = [c for c in self.candidates if c.is_available()]
        for i, cand in enumerate(available):
            sub = ctx.progress.sub(0.6 * i / len(available), 0.6 * (i + 1) / len(available))
            cctx = ExpertContext(severity=ctx.severity, measurements=ctx.measurements, progress=sub,
                                 device=ctx.device, tile=ctx.tile)
            try:
                out = np.clip(cand.run(img, cctx).astype(np.float32), 0.0, 1.0)
            except Exception:  # noqa: BLE001 - a failing network leaves the other candidates
                if cand is available[-1] and not scored:
                    raise
                continue
            if cand.info.id not in self.colour_correcting:
                out = correct_cast(out)
            gain = 1.0
            if cand.info.id in self.exposure_corrected and share > 0.0:
                out, gain = exposure_corrected(img, out)
            out = img + np.float32(share) * (out - img)
            if acceptable(img, out):
                scored = [(0.0, cand.info.id, out, gain)]
                break
            scored.append((exposure_score(img, out), cand.info.id, out, gain))
        _, self.last_choice, out, self.last_gain = min(scored, key=lambda t: t[0])
        if self.denoiser is not None and self.denoiser.is_available():
            sigma, told = measured_noise_sigma(out)
            if sigma is not None and told >= MIN_DENOISE_SIGMA_255:
                dctx = ExpertContext(noise_sigma=sigma * np.float32(DENOISE_SIGMA_SCALE),
                                     progress=ctx.progress.sub(0.6, 0.95), device=ctx.device, tile=ctx.tile)
                out = np.clip(self.denoiser.run(out, dctx).astype(np.float32), 0.0, 1.0)
        ctx.progress(1.0)
        return out


#: Bundled models the adaptive expert is built from (``models/catalog.toml``).
IAT_LOL_MODEL_ID = "iat-lol-v1"
FFDNET_MODEL_ID = "ffdnet-color"


def lowlight_restorers(neural: Sequence[Expert], classical: Sequence[Expert]) -> list[Expert]:
    """The adaptive low-light expert over IAT-LOL (when bundled) and the classical brightener,
    with FFDNet as its denoiser when bundled; empty without any brightener."""
    candidates = [e for e in neural if e.info.model_id == IAT_LOL_MODEL_ID]
    candidates += [e for e in classical if "lowlight" in e.info.tasks]
    if not candidates:
        return []
    ffdnet = next((e for e in neural if e.info.model_id == FFDNET_MODEL_ID), None)
    iat = [e.info.id for e in candidates if e.info.model_id == IAT_LOL_MODEL_ID]
    return [AdaptiveLowLight(candidates, ffdnet, colour_correcting=iat, exposure_corrected=iat)]
