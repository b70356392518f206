"""Classical rain-streak removal: find thin bright streaks along the dominant rain direction and
replace them by a median taken across the streaks."""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np
from scipy import ndimage

from ..base import Backend, Expert, ExpertContext, ExpertInfo
from ...color import luminance
from .tiles import run_whole

#: Candidate streak angles in degrees from vertical (positive leans right).
ANGLES = tuple(range(-30, 31, 5))
#: Length (px) of the cross-streak median; must exceed a streak's apparent width.
CROSS_LENGTH = 9
#: Length (px) of the along-streak averaging that tells streaks from isolated bright dots.
ALONG_LENGTH = 15
#: Residual brightness (in [0, 1]) where the soft streak mask starts and where it is full.
MASK_LOW, MASK_HIGH = 0.08, 0.20
#: A pixel counts as streak only up to this multiple of the mean layer along its line.
ALONG_WEIGHT = 1.5


def line_footprint(length: int, angle_from_vertical: float) -> np.ndarray:
    """Boolean odd-sized square footprint of a 1-px line through the centre."""
    r = length // 2
    theta = np.deg2rad(angle_from_vertical)
    t = np.linspace(-r, r, 4 * length + 1)
    xs = np.round(r + t * np.sin(theta)).astype(int)
    ys = np.round(r + t * np.cos(theta)).astype(int)
    fp = np.zeros((2 * r + 1, 2 * r + 1), bool)
    fp[ys, xs] = True
    return fp


def line_mean(a: np.ndarray, length: int, angle_from_vertical: float) -> np.ndarray:
    """Mean of ``a`` (float32 H x W) along a line of ``length`` px at the given angle."""
    fp = line_footprint(length, angle_from_vertical).astype(np.float32)
    return cv2.filter2D(a, cv2.CV_32F, fp / fp.sum(), borderType=cv2.BORDER_REFLECT)


def streak_angle(residual: np.ndarray) -> float:
    """Dominant streak direction (degrees from vertical) of a positive residual H x W: the angle
    whose along-line mean keeps the most energy."""
    energies = [float(np.mean(line_mean(residual, ALONG_LENGTH, a) ** 2)) for a in ANGLES]
    return float(ANGLES[int(np.argmax(energies))])


def rain_layer_estimate(image: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Screen-blend rain layer L (float32 H x W in [0, 1]) that would turn ``background`` into
    ``image``: rain brightens every channel alike, so the smallest per-channel estimate is kept
    (a coloured highlight raises only some channels and gets a small L)."""
    per_channel = 1.0 - (1.0 - image) / np.maximum(1.0 - background, 1e-3)
    return np.clip(per_channel.min(axis=2), 0.0, 1.0)


def derain(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove bright rain streaks from ``image`` (float32 H x W x 3 in [0, 1]). Returns
    (restored float32 H x W x 3, soft streak mask float32 H x W in [0, 1])."""
    img = image.astype(np.float32, copy=False)
    background, evidence = streak_evidence(img)
    mask = streak_mask(evidence)
    restored = img * (1.0 - mask[..., None]) + background * mask[..., None]
    return restored, mask


def streak_evidence(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(background, evidence)`` of ``img`` (float32 H x W x 3 in [0, 1]): the median across the
    dominant streak direction (H x W x 3) and how much brighter than it each pixel is along a streak
    (H x W)."""
    y = luminance(img)
    across = line_footprint(CROSS_LENGTH, 90.0)
    residual = np.maximum(y - ndimage.median_filter(y, footprint=across, mode="reflect"), 0.0)
    angle = streak_angle(residual)
    across = line_footprint(CROSS_LENGTH, angle + 90.0)
    background = np.stack([ndimage.median_filter(img[..., c], footprint=across, mode="reflect")
                           for c in range(3)], axis=2)
    layer = rain_layer_estimate(img, background)
    along = line_mean(layer, ALONG_LENGTH, angle)
    return background, np.minimum(layer, along * ALONG_WEIGHT)


def streak_mask(evidence: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """The soft streak mask (H x W in [0, 1]) of ``evidence`` between :data:`MASK_LOW` and
    :data:`MASK_HIGH`, both times ``scale``."""
    low, high = MASK_LOW * scale, MASK_HIGH * scale
    return np.clip((evidence - low) / (high - low), 0.0, 1.0)


class StreakMedianDerain(Expert):
    """Removes rain streaks. Needs the whole image (the rain direction is a global estimate)."""

    info = ExpertInfo(
        id="classical.derain.streak_median",
        name="Oriented streak median derain",
        tasks=("rain",),
        backend=Backend.CLASSICAL,
        version="1",
        tile_overlap=16,
        memory_factor=80.0,
        description="Detects thin bright streaks along the dominant rain angle and replaces them "
                    "by a median across the streak direction.",
    )

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        return run_whole(image, ctx, derain)
