"""Classical dehazing: He et al.'s dark channel prior with guided-filter transmission refinement."""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from ..base import Backend, Expert, ExpertContext, ExpertInfo
from ...color import luminance
from .guided_filter import guided_filter_gray
from .tiles import run_whole

#: Fraction of haze removed, as a function of how hazy the photo measures (``omega_for``). He et al.
#: use a fixed 0.95. Under thin haze the scene's own dark channel (a clean photo's dark pixels are
#: not black) is a larger share of what the dark channel reads, so a fixed omega over-removes: the
#: veil's "removal" darkens and over-saturates. Fitted on synthetic haze (engine.degrade, depth-
#: varying) of 12 clean training photos at strengths 0.2/0.4/0.6, the best omega was 0.7/0.85/0.95;
#: past 0.85 the RESIDE validation pairs (real depth, benchmarks/results/real-pairs.md) lose
#: 1–2 dB per photo, so the ramp stops there: haze severity ≤ 0.2 → 0.70, ≥ 0.4 → 0.85.
OMEGA_THIN, OMEGA_THICK = 0.70, 0.85
SEVERITY_THIN, SEVERITY_THICK = 0.2, 0.4
#: The previous fixed value, kept for callers that ask for a fixed omega.
OMEGA = 0.90
#: Floor on the transmission, so dense haze is not amplified into noise.
T_FLOOR = 0.15
#: Fraction of brightest dark-channel pixels the airlight is taken from.
AIRLIGHT_FRACTION = 0.001
#: Regularisation of the guided filter that refines the coarse transmission (squared luminance units).
#: He et al. use 1e-3, which copies the photo's texture into the transmission. Fitted on TRAINING photos
#: (``benchmarks/dehaze_fit.py``: 66 cases of depth-varying synthetic haze of 40 training photos and warm
#: copies, half through the camera pipeline): mean gain +6.56 dB at 1e-3, +6.60 at 3e-3, +6.66 at 1e-2,
#: +6.68 at 3e-2, +6.69 from 0.1 up (worst +1.36 → +1.38); the smallest value within 0.01 dB of the
#: best is kept.
GUIDED_EPS = 0.03


def dark_channel(image: np.ndarray, radius: int) -> np.ndarray:
    """Min over colour channels, then min over a (2r+1)^2 square: float32 H x W."""
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * radius + 1, 2 * radius + 1))
    return cv2.erode(image.min(axis=2).astype(np.float32), k, borderType=cv2.BORDER_REFLECT)


def estimate_airlight(image: np.ndarray, dark: np.ndarray, grey: bool = True) -> np.ndarray:
    """Airlight (RGB float32 in [0, 1]): mean colour of the 0.1 % haziest pixels (highest dark
    channel), which avoids picking a single white object. ``grey``: use their mean brightness in
    all three channels. Those pixels are often a lamp or a lit wall, not the fog: on RESIDE indoor
    pairs they read (0.98, 0.93, 0.83) for a grey veil and tinted the result; grey airlight gained
    0.1–0.5 dB on every validation pair and +0.2 dB on synthetic haze."""
    flat = dark.ravel()
    count = max(int(flat.size * AIRLIGHT_FRACTION), 1)
    idx = np.argpartition(flat, flat.size - count)[-count:]
    colour = image.reshape(-1, 3)[idx].mean(axis=0).astype(np.float32)
    return np.full(3, colour.mean(), np.float32) if grey else colour


def haze_severity(image: np.ndarray) -> float:
    """The analysis' haze severity (0..1) of ``image`` (float32 HxWx3 in [0, 1]; measured on a
    copy of at most 1024 px, as the analysis does)."""
    from ...analysis.analyser import working_copy
    from ...analysis.calibration import severity_from
    from ...analysis.measurements import haze_statistics

    return severity_from("haze", haze_statistics(working_copy(image)[0]))


def omega_for(severity: float) -> float:
    """Fraction of haze to remove for a photo of this haze severity (0..1): :data:`OMEGA_THIN` at
    :data:`SEVERITY_THIN` and below, :data:`OMEGA_THICK` at :data:`SEVERITY_THICK` and above."""
    return float(np.interp(severity, (SEVERITY_THIN, SEVERITY_THICK), (OMEGA_THIN, OMEGA_THICK)))


def transmission(image: np.ndarray, airlight: np.ndarray, radius: int, omega: float) -> np.ndarray:
    """Coarse transmission 1 - omega * dark(I / A): float32 H x W in [0, 1]."""
    normalised = image / np.maximum(airlight, 1e-3)
    return np.clip(1.0 - omega * dark_channel(normalised, radius), 0.0, 1.0)


def dehaze(image: np.ndarray, omega: Optional[float] = None, t_floor: float = T_FLOOR,
           work_side: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Remove haze from ``image`` (float32 H x W x 3 in [0, 1]). Returns (restored, transmission),
    restored unclipped float32, transmission float32 H x W in [t_floor, 1]. ``omega``: fraction
    of the haze removed (``None``: :func:`omega_for` the photo's measured haze severity).

    Airlight and transmission are estimated on a copy whose long side is at most ``work_side``
    px (patch radius long side / 80, guided-filter radius 4x that, as in the paper at ~600 px);
    the transmission is then upsampled and snapped to full-resolution edges by a small guided
    filter, so big photos cost little more than a resize.
    """
    img = image.astype(np.float32, copy=False)
    h, w = img.shape[:2]
    factor = min(1.0, work_side / max(h, w))
    small = img if factor == 1.0 else cv2.resize(img, (max(int(w * factor), 1), max(int(h * factor), 1)),
                                                 interpolation=cv2.INTER_AREA)
    if omega is None:
        omega = omega_for(haze_severity(img))
    radius = patch_radius(small)
    airlight = estimate_airlight(small, dark_channel(small, radius))
    t = refined_transmission(small, airlight, radius, omega)
    if factor < 1.0:
        t = cv2.resize(t, (w, h), interpolation=cv2.INTER_LINEAR)
        t = guided_filter_gray(luminance(img), t, max(int(round(2 / factor)), 4), 1e-3)
    t = np.clip(t, t_floor, 1.0)
    return recovered(img, airlight, t), t


def patch_radius(image: np.ndarray) -> int:
    """The dark channel's patch radius (px) for ``image``: its long side / 80, at least 3."""
    return max(int(round(max(image.shape[:2]) / 80)), 3)


def refined_transmission(image: np.ndarray, airlight: np.ndarray, radius: int, omega: float) -> np.ndarray:
    """:func:`transmission` smoothed by the guided filter on ``image``'s luminance (radius 4 x the
    patch radius, :data:`GUIDED_EPS`): float32 H x W."""
    return guided_filter_gray(luminance(image), transmission(image, airlight, radius, omega), radius * 4, GUIDED_EPS)


def recovered(image: np.ndarray, airlight: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The scene radiance ``(I − A) / t + A`` (unclipped) for transmission ``t`` (H x W, already floored)."""
    return (image - airlight) / t[..., None] + airlight


class DarkChannelDehaze(Expert):
    """Removes haze and fog. Needs the whole image (airlight is a global estimate)."""

    info = ExpertInfo(
        id="classical.dehaze.dcp",
        name="Dark channel prior dehaze",
        tasks=("haze",),
        backend=Backend.CLASSICAL,
        version="3",
        tile_overlap=0,
        memory_factor=120.0,
        description="He et al.'s dark channel prior: grey airlight from the haziest pixels, "
                    "transmission refined by a smooth guided filter, omega 0.7 (thin haze) to 0.85 "
                    "(thick) by the measured haze, floor 0.15.",
    )

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        return run_whole(image, ctx, dehaze)
