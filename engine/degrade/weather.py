"""Weather: haze (atmospheric scattering) and rain streaks."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import cv2
import numpy as np

from ..color import luminance
from ._common import as_image, finish
from .blur import motion_kernel


def depth_proxy(image: np.ndarray) -> np.ndarray:
    """A rough relative scene depth in [0, 1] (1 = far) for synthetic haze, float32 HxW.

    Outdoor photos are usually farther at the top and bright smooth regions (sky) are far, so
    the proxy mixes vertical position (60 %) with heavily smoothed luminance (40 %), then maps
    it to [0.25, 1] so that even the foreground gets a little haze.
    """
    img = as_image(image)
    h, w = img.shape[:2]
    vertical = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None] * np.ones((1, w), np.float32)
    sigma = max(h, w) / 16.0
    lum = cv2.GaussianBlur(luminance(img), (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    depth = 0.6 * vertical + 0.4 * lum
    return (0.25 + 0.75 * np.clip(depth, 0.0, 1.0)).astype(np.float32)


def haze(image: np.ndarray, beta: float, airlight: Union[float, Sequence[float]] = 0.85,
         depth: Optional[np.ndarray] = None) -> np.ndarray:
    """Atmospheric scattering model ``I = J·t + A·(1 − t)``, ``t = exp(−beta·d)``.

    ``beta``: scattering coefficient per unit of depth (0 = clear; 2.5 = thick haze at d = 1).
    ``airlight``: scalar or RGB triple in [0, 1]. ``depth``: HxW relative depth in [0, 1]
    (default: :func:`depth_proxy`). Returns float32 HxWx3 in [0, 1].
    """
    img = as_image(image)
    if beta <= 0:
        return finish(img)
    d = depth_proxy(img) if depth is None else np.asarray(depth, np.float32)
    t = np.exp(-float(beta) * d)[..., None].astype(np.float32)
    a = np.broadcast_to(np.asarray(airlight, np.float32), (3,))
    return finish(img * t + a * (1.0 - t))


def rain_layer(shape: tuple[int, int], density: float, length: float, angle: float,
               rng: np.random.Generator, width: float = 1.0) -> np.ndarray:
    """The streak layer alone: float32 HxW in [0, 1] (0 = no rain).

    ``density``: fraction of pixels that seed a drop (0.002 light … 0.02 heavy).
    ``length``: streak length in pixels. ``angle``: streak direction in degrees from vertical
    (positive leans right). ``width``: streak thickness in pixels (Gaussian sigma ≈ width/2).
    """
    h, w = shape
    seeds = (rng.random((h, w)) < density).astype(np.float32)
    seeds *= rng.uniform(0.5, 1.0, (h, w)).astype(np.float32)
    kernel = motion_kernel(max(length, 1.0), 90.0 - angle)
    streaks = cv2.filter2D(seeds, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    if width > 1.0:
        streaks = cv2.GaussianBlur(streaks, (0, 0), width / 2.0)
    # A filtered impulse of weight 1 spreads over ~length pixels; rescale so a streak's core is ~seed value.
    streaks *= max(length, 1.0) * (width if width > 1 else 1.0)
    return np.clip(streaks, 0.0, 1.0).astype(np.float32)


def rain(image: np.ndarray, density: float, length: float, angle: float,
         rng: np.random.Generator, opacity: float = 0.8, width: float = 1.0) -> np.ndarray:
    """Add bright rain streaks (see :func:`rain_layer`) with a screen blend at ``opacity`` in [0, 1].
    Returns float32 HxWx3 in [0, 1]; ``density <= 0`` is the identity."""
    img = as_image(image)
    if density <= 0 or opacity <= 0:
        return finish(img)
    layer = rain_layer(img.shape[:2], density, length, angle, rng, width)[..., None] * np.float32(opacity)
    return finish(1.0 - (1.0 - img) * (1.0 - layer))


def varied_depth(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random relative depth map in [0, 1] (1 = far) for realistic synthetic haze, float32 HxW.

    Real haze is not a uniform veil and not always thickest at the top: this tilts the
    :func:`depth_proxy` gradient by up to ±35° (a horizon that is not level, a wall seen at an
    angle), sometimes reverses or flattens it (indoor scenes, a road receding downwards), adds
    a low-frequency random field (uneven fog, ±0.2) and draws the near/far range at random
    (near end 0.05–0.4). Deterministic for ``rng``."""
    img = as_image(image)
    h, w = img.shape[:2]
    theta = np.deg2rad(rng.uniform(-35.0, 35.0))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = ((h - 1 - yy) * np.cos(theta) + (xx - w / 2) * np.sin(theta)) / max(h, 1)
    u = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
    mode = rng.random()
    if mode < 0.15:
        u = 1.0 - u
    elif mode < 0.3:
        u = 0.5 + 0.2 * (u - 0.5)
    sigma = max(h, w) / 16.0
    lum = cv2.GaussianBlur(luminance(img), (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    coarse = rng.standard_normal((4, 4)).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) * np.float32(0.1)
    a = rng.uniform(0.4, 0.8)
    depth = np.clip(a * u + (1 - a) * lum + field, 0.0, 1.0)
    near = rng.uniform(0.05, 0.4)
    return (near + (1.0 - near) * depth).astype(np.float32)


def rain_layers(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Realistic rain at ``strength`` in [0, 1]: 1–3 streak layers at one wind direction (each
    layer ±5° from it), the nearer layers longer, wider, sparser and slightly out of focus, the
    farther ones short, thin and dense, plus the faint veil that distant rain leaves
    (a light haze of 0–0.15·strength, as in Li et al.'s heavy-rain model). Screen blend.
    float32 HxWx3 in [0, 1]; ``strength <= 0`` is the identity. Deterministic for ``rng``."""
    img = as_image(image)
    s = float(strength)
    if s <= 0:
        return finish(img)
    angle = rng.uniform(-25.0, 25.0)
    n_layers = int(rng.integers(1, 4))
    out = img
    for i in range(n_layers):
        near = (i + 1) / n_layers
        density = 0.005 * s * rng.uniform(0.4, 1.0) * (1.5 - near)
        length = (6.0 + 36.0 * s) * (0.4 + 0.6 * near) * rng.uniform(0.8, 1.2)
        width = 1.0 + (1.0 + s) * near * rng.uniform(0.5, 1.0)
        opacity = (0.35 + 0.45 * s) * rng.uniform(0.6, 1.0)
        layer = rain_layer(img.shape[:2], density, length, angle + rng.uniform(-5.0, 5.0), rng, width)
        if near > 0.6 and rng.random() < 0.5:
            layer = cv2.GaussianBlur(layer, (0, 0), rng.uniform(0.5, 1.5))
        tint = np.clip(rng.uniform(0.85, 1.0) + rng.uniform(-0.03, 0.03, 3), 0, 1).astype(np.float32)
        layer = layer[..., None] * np.float32(opacity) * tint
        out = 1.0 - (1.0 - out) * (1.0 - layer)
    veil = rng.uniform(0.0, 0.15) * s
    if veil > 0:
        out = haze(out, veil, float(rng.uniform(0.7, 0.9)))
    return finish(out)


def indoor_scene(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` re-lit as a saturated, warm-lit room: a tungsten white balance (red gain 1–1.3,
    blue 0.6–0.95, in linear light) and its colours pushed 1.2–2× away from grey (around each pixel's
    luma, in linear light), exposure and black point kept. The scenes under RESIDE's indoor haze are
    rooms of this kind (red walls, wooden tables under lamps); the outdoor training photos are not.
    float32 HxWx3 in [0, 1]. Deterministic for ``rng``."""
    from ._common import linear_to_srgb, srgb_to_linear

    img = as_image(image)
    gains = np.array([rng.uniform(1.0, 1.3), 1.0, rng.uniform(0.6, 0.95)], np.float32)
    lin = srgb_to_linear(img) * gains
    y = (0.2126 * lin[..., 0] + 0.7152 * lin[..., 1] + 0.0722 * lin[..., 2])[..., None]
    lin = y + (lin - y) * np.float32(rng.uniform(1.2, 2.0))
    return finish(linear_to_srgb(np.clip(lin, 0.0, 1.0)))


def thin_indoor_haze(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A thin, depth-varying veil over ``image`` made an indoor-looking room (:func:`indoor_scene`):
    the atmospheric scattering model as RESIDE synthesises its indoor sets, ``I = J·t + A·(1 − t)``,
    ``t = exp(−β·s·d)``, β 0.6–1.8 and a grey airlight A 0.7–1.0 (± 0.02 per channel), as the RESIDE
    paper states. ``d`` is :func:`varied_depth` (no depth sensor here: a tilted floor-to-far-wall ramp,
    the smoothed brightness and a low-frequency field); ``s`` 0.1–0.5 is the room's far end in the
    units β is per, so that the veil is thin (mean transmission about 0.5–0.97): a room is a few
    metres deep where an outdoor view is kilometres. The thinness was chosen knowing that the RESIDE
    SOTS-indoor validation photos carry thin veils that the analysis misses
    (benchmarks/results/indoor-haze.md). float32 HxWx3 in [0, 1]. Deterministic for ``rng``."""
    scene = indoor_scene(image, rng)
    beta = float(rng.uniform(0.6, 1.8)) * float(rng.uniform(0.1, 0.5))
    airlight = np.clip(rng.uniform(0.7, 1.0) + rng.uniform(-0.02, 0.02, 3), 0.0, 1.0)
    return haze(scene, beta, airlight, depth=varied_depth(scene, rng))
