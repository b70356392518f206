"""Realistic degradation mixtures for fine-tuning the generalist (issue 12, item 4).

:func:`degrade_realistic_mix` degrades a clean photo by a recipe ``[(kind, strength), …]`` (the
same recipes and strength scale as :mod:`training.data`), with each kind made the way it happens
in a real photo, in physical order:

- **haze**: ``I = J·t + A·(1 − t)``, ``t = exp(−2.5·s·d)`` over a *varied* depth map
  (:func:`engine.degrade.weather.varied_depth`: tilted, sometimes reversed or flat, uneven fog)
  and a tinted airlight (grey 0.7–0.95, ±0.05 per channel: bluish or warm);
- **rain**: 1–3 streak layers at one wind direction with a faint distant-rain veil
  (:func:`engine.degrade.weather.rain_layers`);
- **blur** in linear light (:func:`engine.degrade.blur.convolve_linear`): a camera-shake
  trajectory (45 %, extent 1 + 20·s px, :func:`~engine.degrade.blur.shake_kernel`), a defocus
  disc (30 %, radius 6·s px) or a soft-lens Gaussian (25 %, σ 0.3 + 2.7·s px);
- **low light**: exposure 0.08**s × U(0.8, 1.25) in linear light, tone ``enc**(1 + 0.4·s)`` and a
  white-balance cast (red and blue gains exp(N(0, 0.12))), and always some sensor noise (a dark
  shot is a noisy shot: camera noise strength ≥ U(0.15, 0.45));
- **noise**: the camera pipeline (:mod:`engine.degrade.camera`: Bayer mosaic, Poisson–Gaussian
  with shot and read drawn jointly, demosaic, colour matrix, tone curve, in-camera NR and
  sharpening) at shot level ``shot_for_strength(s)``; its label is the *measured* noise std, as
  in :func:`training.data.degrade_realistic` (present from 2 levels, severity σ/50);
- **jpeg**: quality round(95 − 85·s), 4:2:0 chroma, and with probability 0.25 a second-order
  chain (downscale to 0.5–0.9 and back, re-compressed at quality + U(0, 15)).

Photos without noise or low light still go through the camera's processing (without noise)
with probability :attr:`RealisticSampler.p_camera`, with a camera JPEG at 86–96 when no JPEG kind
is in the recipe (so camera sharpening and a camera's own JPEG are not the kinds to remove).
With probability :attr:`RealisticSampler.p_legacy` a sample instead uses the original
generators (:func:`engine.degrade.degrade_chain`), so that the synthetic evaluation table,
which uses them, does not regress. The target is always the clean photo.

Everything is seeded: equal photos, recipes and seeds give equal outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from engine.degrade import degrade_chain
from engine.degrade.blur import convolve_linear, disk_kernel, gaussian_kernel, shake_kernel
from engine.degrade.camera import camera_pipeline, jpeg_round_trip, sample_camera_params
from engine.degrade.exposure import colour_cast, lowlight
from engine.degrade.weather import haze, rain_layers, varied_depth
from engine.kinds import BLUR, HAZE, JPEG, KINDS, LOWLIGHT, NOISE, RAIN

from .data import CAMERA_NOISE_FULL_SCALE_255, CAMERA_NOISE_PRESENT_255, Recipe, RecipeSampler, labels

#: Human-readable strength → parameter table of the realistic generators (``s`` in [0, 1]).
REALISTIC_PARAMETERS: dict[str, str] = {
    HAZE: "β = 2.5·s over varied_depth (tilt ±35°, 15 % reversed, 15 % flat, uneven fog ±0.2, near end "
          "0.05–0.4); airlight grey U(0.7, 0.95) ± 0.05 per channel",
    RAIN: "rain_layers(s): 1–3 layers, density ≈ 0.005·s, length (6 + 36·s)·depth, width 1–3 px, "
          "angle U(−25°, 25°) ± 5° per layer, distant-rain veil β ≤ 0.15·s",
    BLUR: "linear light; 45 % shake trajectory (extent 1 + 20·s px, anxiety U(0.05, 0.6)), 30 % disc "
          "radius 6·s px, 25 % Gaussian σ 0.3 + 2.7·s px",
    LOWLIGHT: "exposure 0.08**s·U(0.8, 1.25), tone enc**(1 + 0.4·s), WB cast exp(N(0, 0.12)) on R and B, "
              "camera noise at strength ≥ U(0.15, 0.45)",
    NOISE: "camera pipeline at shot_for_strength(s); label = measured σ/50 (present from 2 levels)",
    JPEG: "quality round(95 − 85·s), 4:2:0; 25 %: resize 0.5–0.9 and re-compress at q + U(0, 15)",
}


@dataclass(frozen=True)
class RealisticSampler:
    """Draws a recipe (:class:`training.data.RecipeSampler`) and degrades by it realistically.

    ``p_legacy``: fraction of samples made by the original generators instead. ``p_camera``:
    probability that a photo with neither noise nor low light still goes through the camera's
    noise-free processing."""

    recipes: RecipeSampler = RecipeSampler()
    p_legacy: float = 0.25
    p_camera: float = 0.5

    def __call__(self, image: np.ndarray, recipe: Recipe, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``degrade`` hook of :class:`training.data.CropPool`: ``(degraded, presence, severity)``."""
        rng = np.random.default_rng([int(seed), 0x1E6])
        if recipe and rng.random() < self.p_legacy:
            presence, severity = labels(recipe)
            return degrade_chain(image, recipe, seed=seed), presence, severity
        return degrade_realistic_mix(image, recipe, seed, p_camera=self.p_camera)


def blur_kernel(strength: float, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """A realistic PSF for a blur strength in (0, 1]: ``(variant, kernel)``."""
    s = float(strength)
    u = rng.random()
    if u < 0.45:
        return "shake", shake_kernel(1.0 + 20.0 * s, rng, anxiety=float(rng.uniform(0.05, 0.6)))
    if u < 0.75:
        return "defocus", disk_kernel(max(6.0 * s, 0.5))
    return "gaussian", gaussian_kernel(0.3 + 2.7 * s)


def degrade_realistic_mix(image: np.ndarray, recipe: Recipe, seed: int, p_camera: float = 0.5,
                          threshold: float = 0.15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Degrade ``image`` (float32 HxWx3 in [0, 1], not modified) by ``recipe`` realistically (see
    the module docstring). Returns ``(degraded float32 HxWx3, presence, severity)``, the labels as
    float32 vectors of 6 in :data:`engine.kinds.KINDS` order; a camera-noise label is measured."""
    rng = np.random.default_rng([int(seed), 0x12EA])
    presence, severity = labels(recipe)
    strengths = dict(recipe)
    x = np.asarray(image, np.float32)
    if not recipe:
        return x.copy(), presence, severity
    for kind, s in recipe:
        if kind == HAZE:
            grey = rng.uniform(0.7, 0.95)
            airlight = tuple(float(a) for a in np.clip(grey + rng.uniform(-0.05, 0.05, 3), 0.0, 1.0))
            x = haze(x, 2.5 * s, airlight, depth=varied_depth(x, rng))
        elif kind == RAIN:
            x = rain_layers(x, s, rng)
        elif kind == BLUR:
            x = convolve_linear(x, blur_kernel(s, rng)[1])
        elif kind == LOWLIGHT:
            exposure = min(0.08 ** s * float(rng.uniform(0.8, 1.25)), 1.0)
            x = lowlight(x, exposure, 1.0 + 0.4 * s)
            gains = (float(np.exp(rng.normal(0.0, 0.12))), 1.0, float(np.exp(rng.normal(0.0, 0.12))))
            x = colour_cast(x, gains)
    noise_strength = strengths.get(NOISE, 0.0)
    if LOWLIGHT in strengths:
        noise_strength = max(noise_strength, float(rng.uniform(0.15, 0.45)))
    jpeg_s = strengths.get(JPEG)
    use_camera = noise_strength > 0 or rng.random() < p_camera
    if use_camera:
        params = sample_camera_params(rng, noise_strength=noise_strength or None, jpeg=False, second_order=False)
        if noise_strength <= 0:
            params = replace(params, shot=0.0, read=0.0)
        noisy, _ = camera_pipeline(x, seed, params, noise=noise_strength > 0)
        i = KINDS.index(NOISE)
        if noise_strength > 0:
            reference, _ = camera_pipeline(x, seed, replace(params, shot=0.0, read=0.0), noise=False)
            sigma = float((noisy - reference).std()) * 255.0
            present = sigma >= CAMERA_NOISE_PRESENT_255
            presence[i] = 1.0 if present else 0.0
            severity[i] = min(1.0, max(sigma / CAMERA_NOISE_FULL_SCALE_255, threshold)) if present else 0.0
        x = noisy
        if jpeg_s is None and rng.random() < 0.6:
            x = jpeg_round_trip(x, int(rng.integers(86, 97)))
    if jpeg_s is not None:
        q = int(round(95 - 85 * jpeg_s))
        x = jpeg_round_trip(x, q)
        if rng.random() < 0.25:
            x = second_order(x, float(rng.uniform(0.5, 0.9)), min(q + int(rng.integers(0, 16)), 95))
    return np.clip(x, 0.0, 1.0).astype(np.float32), presence, severity


def second_order(image: np.ndarray, factor: float, quality: Optional[int]) -> np.ndarray:
    """A web re-share: downscale by ``factor`` (area), upscale back (bicubic), re-compress at
    ``quality`` (4:2:0; ``None``: no re-compression). float32 HxWx3 in [0, 1]."""
    import cv2

    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    out = np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
    return jpeg_round_trip(out, quality) if quality is not None else out


def sample_grid(out: str, photos: int = 3, seed: int = 0, width: int = 240) -> None:
    """Write a picture of samples to ``out`` (format by suffix; a JPEG at quality 90): per
    validation photo (rows), the clean crop, each kind alone at 0.6 and two mixtures at 0.4 per kind."""
    from PIL import Image

    from .data import load_split, load_uint8, to_float, to_uint8

    recipes = [[(k, 0.6)] for k in KINDS] + [[(HAZE, 0.4), (RAIN, 0.4), (JPEG, 0.4)],
                                             [(BLUR, 0.4), (LOWLIGHT, 0.4), (NOISE, 0.4)]]
    rows = []
    for n, path in enumerate(load_split()[1][:photos]):
        image = to_float(load_uint8(path))
        h, w = image.shape[:2]
        crop = (slice((h - width * 3 // 4) // 2, (h - width * 3 // 4) // 2 + width * 3 // 4),
                slice((w - width) // 2, (w - width) // 2 + width))
        cells = [image[crop]] + [degrade_realistic_mix(image, r, seed + 100 * n + i)[0][crop]
                                 for i, r in enumerate(recipes)]
        rows.append(np.concatenate(cells, 1))
    Image.fromarray(to_uint8(np.concatenate(rows, 0))).save(out, quality=90)


if __name__ == "__main__":
    import sys

    sample_grid(sys.argv[1] if len(sys.argv) > 1 else "docs/images/realistic-mixtures.jpg")
