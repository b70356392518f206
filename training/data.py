"""Training data: random crops of clean photos, degraded on the fly with ``engine.degrade``.

Images are split into train and validation *by file name* (a hash, so the split never depends
on the order or the number of files), never by crop. Each degraded sample is a *recipe*: a
list of ``(kind, strength)`` applied in a physically sensible order (scene → optics → sensor →
codec). Degrading is costly on one core, so :class:`CropPool` degrades whole photos once and
cuts several crops from each, keeping a pool of uint8 crops that the training loops refresh
periodically.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image

from engine.degrade import degrade_chain
from engine.kinds import BLUR, HAZE, JPEG, KINDS, LOWLIGHT, NOISE, RAIN

#: ``../shared/data/clean`` next to the repository.
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clean"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")

#: One in this many photos (by file-name hash) is held out for validation (≈ 10 %).
VALIDATION_MODULUS = 10

#: Mixtures the issue asks for, plus a few more pairs and triples (kinds in any order here;
#: :func:`physical_order` sorts them before degrading).
MIXTURES: tuple[tuple[str, ...], ...] = (
    (LOWLIGHT, NOISE), (BLUR, NOISE), (NOISE, JPEG), (BLUR, JPEG), (HAZE, RAIN), (LOWLIGHT, BLUR),
    (HAZE, NOISE), (RAIN, JPEG), (HAZE, JPEG), (RAIN, NOISE),
    (BLUR, NOISE, JPEG), (LOWLIGHT, NOISE, JPEG), (HAZE, RAIN, JPEG), (LOWLIGHT, BLUR, NOISE),
)
#: The mixtures the evaluation reports on (the six the issue names, and the triples).
EVAL_MIXTURES: tuple[tuple[str, ...], ...] = MIXTURES[:6] + MIXTURES[10:]

#: Where each kind happens in image formation: atmosphere/scene (haze, rain) → optics (blur) and
#: exposure (lowlight, linear scaling: commutes with blur) → sensor noise → JPEG codec.
#: Kinds of equal rank are applied in random order.
PHYSICAL_RANK: dict[str, int] = {HAZE: 0, RAIN: 0, BLUR: 1, LOWLIGHT: 1, NOISE: 2, JPEG: 3}

Recipe = list  # list[tuple[str, float]]


def list_images(root: Path | str = DEFAULT_DATA) -> list[Path]:
    """Image files directly inside ``root``, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"training data folder not found: {root}")
    return sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def is_validation(path: Path | str) -> bool:
    """Whether a photo belongs to the validation split (deterministic hash of its file name)."""
    digest = hashlib.sha256(Path(path).name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") % VALIDATION_MODULUS == 0


def split(paths: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """``(train, validation)`` lists, each sorted by name."""
    train = [p for p in paths if not is_validation(p)]
    val = [p for p in paths if is_validation(p)]
    return train, val


def load_uint8(path: Path | str) -> np.ndarray:
    """An RGB photo as uint8 HxWx3."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 → float32 in [0, 1]."""
    return image.astype(np.float32) / np.float32(255.0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] → uint8 (rounded)."""
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def physical_order(kinds: Sequence[str], rng: np.random.Generator) -> list[str]:
    """Sort ``kinds`` by :data:`PHYSICAL_RANK`, breaking ties at random."""
    keyed = [(PHYSICAL_RANK[k], float(rng.random()), k) for k in kinds]
    return [k for _, _, k in sorted(keyed)]


@dataclass(frozen=True)
class RecipeSampler:
    """Draws degradation recipes.

    ``p_clean``, ``p_single``, ``p_pair`` (the rest are triples): how often a sample is left
    clean, has one kind, two kinds (a listed mixture or a random pair) or three (a listed
    triple). Strengths are uniform in ``[min_strength, max_strength]``.
    """

    p_clean: float = 0.06
    p_single: float = 0.44
    p_pair: float = 0.32
    min_strength: float = 0.1
    max_strength: float = 1.0
    p_listed_pair: float = 0.7

    def sample(self, rng: np.random.Generator) -> Recipe:
        u = rng.random()
        if u < self.p_clean:
            kinds: Sequence[str] = ()
        elif u < self.p_clean + self.p_single:
            kinds = (KINDS[rng.integers(len(KINDS))],)
        elif u < self.p_clean + self.p_single + self.p_pair:
            pairs = [m for m in MIXTURES if len(m) == 2]
            if rng.random() < self.p_listed_pair:
                kinds = pairs[rng.integers(len(pairs))]
            else:
                kinds = tuple(rng.choice(KINDS, size=2, replace=False))
        else:
            triples = [m for m in MIXTURES if len(m) == 3]
            kinds = triples[rng.integers(len(triples))]
        return [(k, float(rng.uniform(self.min_strength, self.max_strength)))
                for k in physical_order(kinds, rng)]


def labels(recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
    """``(presence, severity)``: float32 vectors of length 6 in :data:`KINDS` order."""
    presence = np.zeros(len(KINDS), np.float32)
    severity = np.zeros(len(KINDS), np.float32)
    for kind, strength in recipe:
        i = KINDS.index(kind)
        presence[i] = 1.0
        severity[i] = max(severity[i], strength)
    return presence, severity


#: Camera noise whose measured std (noisy − same pipeline without noise, before the camera's
#: JPEG, 8-bit levels, over all channels) reaches this is labelled present: real DSLR crops at
#: ISO 1600–6400 measure 2.3–7.1 (shared/data/pairs/noise_real_polyu_crops, noisy − mean of
#: many frames), and a denoiser gains several dB on all of them.
CAMERA_NOISE_PRESENT_255 = 2.0
#: Camera-noise severity label = measured std / this (the same 50-level scale as the Gaussian
#: noise of engine.degrade: strength s ↔ σ = 50·s), raised to the presence threshold when present.
CAMERA_NOISE_FULL_SCALE_255 = 50.0


def degrade_realistic(image: np.ndarray, recipe: Recipe, seed: int, p_camera: float = 0.5,
                      threshold: float = 0.15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Degrade ``image`` (float32 HxWx3) by ``recipe``; with probability ``p_camera`` the sample
    goes through the camera pipeline (:mod:`engine.degrade.camera`) instead: a noise step becomes
    camera noise (Bayer mosaic, Poisson–Gaussian, demosaic, tone curve, sharpening, camera JPEG at
    q 86–96) at the recipe's position (after scene/optics kinds, before a JPEG kind), and a recipe
    without noise still gets the camera's processing without noise (so sharpening and camera
    JPEG alone are not read as noise). Returns ``(degraded, presence, severity)``; a camera-noise
    label comes from the measured noise std (:data:`CAMERA_NOISE_PRESENT_255`)."""
    from engine.degrade.camera import camera_pipeline, jpeg_round_trip, sample_camera_params
    from dataclasses import replace as _replace

    rng = np.random.default_rng([int(seed), 0xCA3])
    presence, severity = labels(recipe)
    if rng.random() >= p_camera:
        return degrade_chain(image, recipe, seed=seed), presence, severity
    kinds = [k for k, _ in recipe]
    cut = kinds.index(NOISE) if NOISE in kinds else next((i for i, k in enumerate(kinds) if k == JPEG), len(kinds))
    before = recipe[:cut]
    after = recipe[cut + 1:] if NOISE in kinds else recipe[cut:]
    x = degrade_chain(image, before, seed=seed) if before else image
    noise_strength = dict(recipe).get(NOISE, 0.0)
    params = sample_camera_params(rng, noise_strength=noise_strength, jpeg=bool(rng.random() < 0.6),
                                  second_order=False)
    if params.jpeg_quality is not None:
        params = _replace(params, jpeg_quality=int(rng.integers(86, 97)))
    # The noise is measured before the camera's JPEG: measured after it, the difference of two
    # encodings adds both encodings' quantisation errors (≈ 3 levels at q 90 even for faint noise).
    before_jpeg = _replace(params, jpeg_quality=None)
    noisy, _ = camera_pipeline(x, seed, before_jpeg, noise=NOISE in kinds)
    if NOISE in kinds:
        reference, _ = camera_pipeline(x, seed, _replace(before_jpeg, shot=0.0, read=0.0), noise=False)
        sigma = float((noisy - reference).std()) * 255.0
        i = KINDS.index(NOISE)
        present = sigma >= CAMERA_NOISE_PRESENT_255
        presence[i] = 1.0 if present else 0.0
        severity[i] = min(1.0, max(sigma / CAMERA_NOISE_FULL_SCALE_255, threshold)) if present else 0.0
    if params.jpeg_quality is not None:
        noisy = jpeg_round_trip(noisy, params.jpeg_quality)
    out = degrade_chain(noisy, after, seed=seed + 1) if after else noisy
    return out, presence, severity


def random_crops(shape: tuple[int, int], size: int, count: int,
                 rng: np.random.Generator, align: int = 1) -> list[tuple[int, int]]:
    """``count`` top-left corners of ``size`` x ``size`` crops inside an image of ``shape`` (H, W),
    on multiples of ``align`` (8 keeps a JPEG block grid at the same phase in every crop)."""
    h, w = shape
    return [(int(rng.integers(0, (h - size) // align + 1)) * align,
             int(rng.integers(0, (w - size) // align + 1)) * align) for _ in range(count)]


class CropPool:
    """A pool of degraded crops (uint8 N x H x W x 3) with their clean crops and labels.
    ``align``: crop corners on multiples of this many pixels.

    ``images``: uint8 photos (each at least ``crop`` px on both sides). ``refresh(seed)``
    regenerates the whole pool deterministically from ``seed``: for every ``crops_per_image``
    crops it picks a photo, a recipe and degrades the whole photo once.
    ``describe``: optional ``f(degraded whole photo float32) -> float32 vector of 6``, stored per
    crop in :attr:`described` (e.g. what the app's analysis says about the whole photo).
    ``degrade``: optional ``f(photo float32, recipe, seed) -> (degraded, presence, severity)``
    replacing ``degrade_chain`` + :func:`labels` (e.g. :func:`degrade_realistic`).
    """

    def __init__(self, images: Sequence[np.ndarray], size: int, crop: int,
                 sampler: RecipeSampler = RecipeSampler(), crops_per_image: int = 4, align: int = 1,
                 describe: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                 degrade: Optional[Callable[[np.ndarray, Recipe, int], tuple[np.ndarray, np.ndarray, np.ndarray]]]
                 = None) -> None:
        self.images = [im for im in images if min(im.shape[:2]) >= crop]
        if not self.images:
            raise ValueError(f"no training image is at least {crop} px on both sides")
        self.size, self.crop, self.sampler, self.crops_per_image = size, crop, sampler, crops_per_image
        self.align = align
        self.degraded = np.zeros((size, crop, crop, 3), np.uint8)
        self.clean = np.zeros((size, crop, crop, 3), np.uint8)
        self.presence = np.zeros((size, len(KINDS)), np.float32)
        self.severity = np.zeros((size, len(KINDS)), np.float32)
        self.describe = describe
        self.degrade = degrade
        self.described = np.zeros((size, len(KINDS)), np.float32)

    def refresh(self, seed: int) -> None:
        rng = np.random.default_rng([int(seed), 0x5EED])
        n = 0
        while n < self.size:
            image = self.images[int(rng.integers(len(self.images)))]
            recipe = self.sampler.sample(rng)
            seed = int(rng.integers(2 ** 31))
            if self.degrade is None:
                degraded = to_uint8(degrade_chain(to_float(image), recipe, seed=seed))
                presence, severity = labels(recipe)
            else:
                out, presence, severity = self.degrade(to_float(image), recipe, seed)
                degraded = to_uint8(out)
            described = self.describe(to_float(degraded)) if self.describe is not None else None
            for y, x in random_crops(image.shape[:2], self.crop, min(self.crops_per_image, self.size - n), rng,
                                     self.align):
                self.degraded[n] = degraded[y:y + self.crop, x:x + self.crop]
                self.clean[n] = image[y:y + self.crop, x:x + self.crop]
                self.presence[n], self.severity[n] = presence, severity
                if described is not None:
                    self.described[n] = described
                n += 1

    def batch(self, indices: np.ndarray, rng: np.random.Generator,
              flip: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """float32 ``(degraded, clean)`` as N x 3 x H x W in [0, 1], and ``(presence, severity)``.
        ``flip``: random horizontal flips (the only flip that keeps rain near-vertical and haze
        denser at the top)."""
        deg = self.degraded[indices].astype(np.float32) / 255.0
        cln = self.clean[indices].astype(np.float32) / 255.0
        if flip:
            mask = rng.random(len(indices)) < 0.5
            deg[mask] = deg[mask, :, ::-1]
            cln[mask] = cln[mask, :, ::-1]
        return (np.ascontiguousarray(deg.transpose(0, 3, 1, 2)), np.ascontiguousarray(cln.transpose(0, 3, 1, 2)),
                self.presence[indices], self.severity[indices])


def load_split(root: Path | str = DEFAULT_DATA, limit: Optional[int] = None) -> tuple[list[Path], list[Path]]:
    """``(train, validation)`` paths of ``root``; ``limit`` keeps the first N of each (smoke tests)."""
    train, val = split(list_images(root))
    if limit is not None:
        train, val = train[:limit], val[:limit]
    return train, val


def validation_cases(paths: Sequence[Path], cases: Sequence[Recipe], seed: int = 0,
                     crop: Optional[int] = None) -> list[tuple[str, Recipe, np.ndarray, np.ndarray]]:
    """Deterministic validation set: every photo in ``paths`` degraded by every recipe in ``cases``.

    ``crop``: if given, the centre ``crop`` x ``crop`` region of the *degraded* photo (the photo
    is degraded whole). Returns ``[(name, recipe, clean float32, degraded float32), …]``.
    """
    out = []
    for i, path in enumerate(paths):
        clean = to_float(load_uint8(path))
        for j, recipe in enumerate(cases):
            deg = degrade_chain(clean, recipe, seed=seed * 100003 + i * 101 + j)
            c, d = clean, deg
            if crop is not None:
                h, w = clean.shape[:2]
                y, x = max((h - crop) // 2, 0), max((w - crop) // 2, 0)
                c, d = clean[y:y + crop, x:x + crop], deg[y:y + crop, x:x + crop]
            out.append((path.name, list(recipe), c, d))
    return out
