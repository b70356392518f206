"""Parameter-perturbation ensembles: how much a stage's output would move under the plausible
spread of the global parameters it had to guess (Qt-free, classical, on a small copy).

Haze, low light and rain err mostly by one level for the whole photo, and that level comes from
a few global guesses: the dehazer's airlight, the fraction of haze removed (ω) and the
transmission floor; the exposure a brightener aims for and the colour balance it keeps; how
bright a streak must be for the deraining to replace it. Re-running the stage's physics with those
guesses perturbed, on a copy whose long side is :data:`ENSEMBLE_SIDE` px, gives a per-pixel
spread (the standard deviation over the members, 8-bit levels) that is larger on photos whose
result hangs more on the guesses, the way the disagreement of a self-ensemble is larger where a
network is unsure. The spread is one of the uncertainty model's features
(:data:`engine.uncertainty.features.FEATURES`: ``ensemble_spread`` and its photo mean); the
parameters of the stages are read, never changed.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from ..color import luminance
from ..kinds import HAZE, LOWLIGHT, RAIN

#: Long side (px) of the copy the ensemble runs on. The perturbed parameters are global, so the
#: spread is smooth: a small copy carries it, and the cost stays a few ms per photo.
ENSEMBLE_SIDE = 128
#: The kinds that have an ensemble (the others' spread is 0).
ENSEMBLE_KINDS = (HAZE, LOWLIGHT, RAIN)

#: Dehazing: ω moved this far either way (clipped to [0.5, 0.95]); the airlight scaled by these
#: factors (capped at white); these transmission floors (the shipped 0.15 in the middle).
HAZE_OMEGA_STEP = 0.10
HAZE_AIRLIGHT_SCALES = (0.9, 1.0, 1.1)
HAZE_T_FLOORS = (0.10, 0.15, 0.25)
#: Low light: mean luma targets a brightener may aim for (the adaptive expert aims at 0.42), and
#: the colour balance kept as is or pulled fully to grey world.
LOWLIGHT_TARGETS = (0.30, 0.42, 0.55)
#: Rain: the streak-mask thresholds (``MASK_LOW``, ``MASK_HIGH``) scaled by these factors.
RAIN_MASK_SCALES = (0.6, 1.0, 1.6)


def small_copy(image: np.ndarray, side: int = ENSEMBLE_SIDE) -> np.ndarray:
    """``image`` (HxWx3 in [0, 1]) area-resized so that its long side is at most ``side`` px."""
    img = np.asarray(image, np.float32)
    h, w = img.shape[:2]
    f = min(1.0, side / float(max(h, w)))
    if f == 1.0:
        return np.ascontiguousarray(img)
    return cv2.resize(img, (max(int(round(w * f)), 1), max(int(round(h * f)), 1)), interpolation=cv2.INTER_AREA)


def _spread(members: list[np.ndarray]) -> np.ndarray:
    """Per-pixel standard deviation over the members (HxWx3 in [0, 1]), mean over channels, levels."""
    stack = np.clip(np.stack(members), 0.0, 1.0)
    return (stack.std(axis=0).mean(axis=2) * np.float32(255.0)).astype(np.float32)


def haze_members(before: np.ndarray, severity: float) -> list[np.ndarray]:
    """The dark-channel dehazer (``engine.experts.classical.dehaze``, its own steps) run on
    ``before`` with ω, the airlight and the transmission floor perturbed."""
    from ..experts.classical.dehaze import (dark_channel, estimate_airlight, omega_for, patch_radius, recovered,
                                            refined_transmission)

    radius = patch_radius(before)
    a0 = estimate_airlight(before, dark_channel(before, radius))
    w0 = omega_for(severity)
    members = []
    for scale in HAZE_AIRLIGHT_SCALES:
        a = np.minimum(a0 * np.float32(scale), 1.0).astype(np.float32)
        for omega in (w0 - HAZE_OMEGA_STEP, w0, w0 + HAZE_OMEGA_STEP):
            t = refined_transmission(before, a, radius, float(np.clip(omega, 0.5, 0.95)))
            for floor in HAZE_T_FLOORS:
                members.append(recovered(before, a, np.clip(t, floor, 1.0)))
    return members


def lowlight_members(before: np.ndarray, after: np.ndarray, severity: float) -> list[np.ndarray]:
    """``after`` re-exposed to each of :data:`LOWLIGHT_TARGETS` (one global gain), with its
    colour balance pulled fully to grey world, and the classical brightener's result
    (``engine.experts.classical.lowlight.enhance``) on ``before``."""
    from ..experts.classical.lowlight import enhance
    from ..experts.lowlight_adaptive import colour_cast

    mean = max(float(luminance(after).mean()), 1e-3)
    members = [after * np.float32(t / mean) for t in LOWLIGHT_TARGETS]
    members.append(after * colour_cast(after)[None, None, :])
    members.append(enhance(before, max(float(severity), 0.3))[0])
    return members


def rain_members(before: np.ndarray) -> list[np.ndarray]:
    """The streak-median deraining (``engine.experts.classical.derain``, its own steps) of
    ``before`` with its mask thresholds scaled by :data:`RAIN_MASK_SCALES`."""
    from ..experts.classical.derain import streak_evidence, streak_mask

    background, evidence = streak_evidence(before)
    members = []
    for s in RAIN_MASK_SCALES:
        mask = streak_mask(evidence, s)[..., None]
        members.append(before * (1.0 - mask) + background * mask)
    return members


def parameter_spread(before: np.ndarray, after: np.ndarray, kind: Optional[str], *,
                     severity: float = 0.0, side: int = ENSEMBLE_SIDE) -> Optional[np.ndarray]:
    """The ensemble's spread for a stage (or a composed result dominated by) ``kind``: float32
    ``h x w`` in 8-bit levels (≥ 0) on the small copy (long side ≤ ``side`` px), ``None`` for a kind
    without an ensemble. ``before``/``after``: the stage's input and output, HxWx3 in [0, 1];
    ``severity``: the analysed severity of ``kind`` at the input (0..1; the dehazer's ω follows it).
    Deterministic."""
    if kind not in ENSEMBLE_KINDS:
        return None
    b = np.clip(small_copy(before, side), 0.0, 1.0)
    if kind == HAZE:
        members = haze_members(b, severity)
    elif kind == LOWLIGHT:
        members = lowlight_members(b, np.clip(small_copy(after, side), 0.0, 1.0), severity)
    else:
        members = rain_members(b)
    return _spread(members)


def spread_rows(spread: np.ndarray, shape: tuple[int, int], top: int, bottom: int) -> np.ndarray:
    """Rows ``top:bottom`` of ``spread`` (the small copy's map) bilinearly resized to the photo's
    ``shape`` (H, W): ``(bottom − top) x W`` float32, without making the whole full-size plane."""
    h, w = shape
    hs, ws = spread.shape
    wide = cv2.resize(np.ascontiguousarray(spread, np.float32), (w, hs), interpolation=cv2.INTER_LINEAR)
    y = (np.arange(top, bottom, dtype=np.float64) + 0.5) * (hs / float(h)) - 0.5
    y = np.clip(y, 0.0, hs - 1.0)
    y0 = np.floor(y).astype(np.int64)
    y1 = np.minimum(y0 + 1, hs - 1)
    f = (y - y0).astype(np.float32)[:, None]
    return (wide[y0] * (1.0 - f) + wide[y1] * f).astype(np.float32)
