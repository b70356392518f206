"""How a strength in [0, 1] maps to the physical parameters of each degradation, and the
``degrade`` / ``degrade_chain`` entry points built on it.

Severity has one meaning across kinds: 0 = untouched, ~0.3 = clearly visible but mild,
~0.6 = strong, 1 = about the worst a real photo would show.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..kinds import BLUR, HAZE, JPEG, KINDS, LOWLIGHT, NOISE, RAIN, check_kind
from ._common import as_image, finish
from .blur import defocus_blur, motion_blur
from .compression import jpeg
from .exposure import lowlight
from .noise import gaussian_noise, poisson_gaussian_noise
from .weather import haze, rain

#: Human-readable table of the strength → parameter mappings (``s`` = strength in [0, 1]).
#: :func:`degradation_parameters` is the executable version of this table.
KIND_PARAMETERS: dict[str, str] = {
    NOISE: "σ = 50/255·s at mid-grey. Gaussian (i.i.d. per channel) for 2 of 3 seeds; for the "
           "others Poisson–Gaussian with read σ/2 and photons = 0.5/(0.75·σ²), so the std at "
           "value 0.5 is also σ (darker pixels get less noise, brighter more).",
    BLUR: "Chosen by seed with equal odds: motion blur of length 1 + 20·s px at a uniform "
          "random angle in [0°, 180°), or defocus disk of radius 6·s px.",
    JPEG: "Real JPEG round trip (Pillow/libjpeg, 4:2:0) at quality round(95 − 85·s): "
          "s = 0.1 → q87, 0.5 → q52, 1 → q10.",
    HAZE: "I = J·t + A·(1 − t), t = exp(−β·d) with β = 2.5·s, d = depth proxy in [0.25, 1] "
          "(vertical position + smoothed luminance); airlight A grey in [0.75, 0.95] ± 0.03 "
          "per channel, chosen by seed.",
    LOWLIGHT: "Linear-light exposure factor 0.08**s (s = 1 → 3.6 stops darker), then encoded "
              "tone curve out = enc**(1 + 0.4·s), with sensor noise added in linear light "
              "before encoding: read σ = 0.0015·s and shot noise at 3000/s photons full scale.",
    RAIN: "Bright streaks, screen-blended: seed density 0.005·s of pixels, length "
          "(8 + 32·s)·U(0.8, 1.2) px, angle U(−20°, 20°) from vertical, opacity 0.45 + 0.4·s, "
          "width 1 + s px; all random choices by seed.",
}


def _check_strength(strength: float) -> float:
    s = float(strength)
    if not np.isfinite(s) or s < 0.0 or s > 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength!r}")
    return s


def degradation_parameters(kind: str, strength: float, seed: int = 0) -> dict[str, Any]:
    """The physical parameters :func:`degrade` uses for ``kind`` at ``strength`` with ``seed``.

    Returns a dict with a ``"variant"`` key (e.g. ``"gaussian"``, ``"motion"``) and the
    generator's keyword arguments. Deterministic for a given seed.
    """
    check_kind(kind)
    s = _check_strength(strength)
    rng = np.random.default_rng([int(seed), KINDS.index(kind)])
    if kind == NOISE:
        sigma = 50.0 / 255.0 * s
        if rng.random() < 2.0 / 3.0:
            return {"variant": "gaussian", "sigma": sigma}
        photons = 0.5 / (0.75 * sigma ** 2) if sigma > 0 else float("inf")
        return {"variant": "poisson_gaussian", "photons": photons, "read_sigma": sigma / 2.0, "sigma": sigma}
    if kind == BLUR:
        if rng.random() < 0.5:
            return {"variant": "motion", "length_px": 1.0 + 20.0 * s, "angle_deg": float(rng.uniform(0.0, 180.0))}
        return {"variant": "defocus", "radius_px": 6.0 * s}
    if kind == JPEG:
        return {"variant": "jpeg", "quality": int(round(95 - 85 * s))}
    if kind == HAZE:
        grey = rng.uniform(0.75, 0.95)
        airlight = np.clip(grey + rng.uniform(-0.03, 0.03, 3), 0.0, 1.0)
        return {"variant": "haze", "beta": 2.5 * s, "airlight": tuple(float(a) for a in airlight)}
    if kind == LOWLIGHT:
        return {"variant": "lowlight", "exposure": 0.08 ** s, "gamma": 1.0 + 0.4 * s,
                "noise": 0.0015 * s, "photons": 3000.0 / s if s > 0 else 0.0}
    # RAIN
    return {"variant": "rain", "density": 0.005 * s,
            "length": (8.0 + 32.0 * s) * float(rng.uniform(0.8, 1.2)),
            "angle": float(rng.uniform(-20.0, 20.0)), "opacity": 0.45 + 0.4 * s, "width": 1.0 + s}


def degrade(image: np.ndarray, kind: str, strength: float, seed: int = 0) -> np.ndarray:
    """Apply one synthetic degradation.

    ``image``: HxWx3 float in [0, 1] (not modified). ``kind``: one of :data:`engine.kinds.KINDS`.
    ``strength``: in [0, 1]; 0 returns an exact float32 copy. ``seed``: picks the random
    variant and noise; equal inputs give equal outputs. Mapping: :data:`KIND_PARAMETERS`.
    Returns float32 HxWx3 in [0, 1].
    """
    check_kind(kind)
    s = _check_strength(strength)
    img = as_image(image)
    if s == 0.0:
        return finish(img)
    p = degradation_parameters(kind, s, seed)
    rng = np.random.default_rng([int(seed), KINDS.index(kind), 1])
    v = p["variant"]
    if v == "gaussian":
        return gaussian_noise(img, p["sigma"], rng)
    if v == "poisson_gaussian":
        return poisson_gaussian_noise(img, p["photons"], p["read_sigma"], rng)
    if v == "motion":
        return motion_blur(img, p["length_px"], p["angle_deg"])
    if v == "defocus":
        return defocus_blur(img, p["radius_px"])
    if v == "jpeg":
        return jpeg(img, p["quality"])
    if v == "haze":
        return haze(img, p["beta"], p["airlight"])
    if v == "lowlight":
        return lowlight(img, p["exposure"], p["gamma"], rng, noise=p["noise"], photons=p["photons"])
    return rain(img, p["density"], p["length"], p["angle"], rng, opacity=p["opacity"], width=p["width"])


def step_seed(seed: int, index: int) -> int:
    """The seed :func:`degrade_chain` gives its ``index``-th step (deterministic, well mixed)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def degrade_chain(image: np.ndarray, steps: Sequence[tuple[str, float]], seed: int = 0) -> np.ndarray:
    """Apply ``steps`` = ``[(kind, strength), …]`` in the given order, step ``i`` with seed
    ``step_seed(seed, i)``. An empty chain returns a float32 copy. float32 HxWx3 in [0, 1]."""
    out = finish(as_image(image))
    for i, (kind, strength) in enumerate(steps):
        out = degrade(out, kind, strength, step_seed(seed, i))
    return out
