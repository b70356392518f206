"""Paths to the shared test data and small deterministic crops of it (importable by tests)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: ``../shared`` next to the repository (``$RESTORA_SHARED`` overrides it, e.g. in a git worktree).
SHARED = Path(os.environ.get("RESTORA_SHARED") or REPO.parent / "shared")
SHARED_DATA = SHARED / "data"
SHARED_WEIGHTS = SHARED / "weights"


def clean_photo(index: int = 0, size: int = 128) -> np.ndarray:
    """A centre crop (size×size, float32 HxWx3 in [0, 1]) of the index-th clean shared photo; the
    calling test is skipped when ``../shared`` is not there."""
    import pytest
    from PIL import Image

    files = sorted((SHARED_DATA / "clean").glob("*.jpg"))
    if len(files) <= index:
        pytest.skip("../shared/data/clean is not present")
    img = np.asarray(Image.open(files[index]).convert("RGB"), dtype=np.float32) / 255.0
    h, w = img.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(img[y:y + size, x:x + size])


def scene(index: int = 0, size: int = 128) -> np.ndarray:
    """A deterministic synthetic photo (float32 size×size×3 in [0, 1]): smooth shading, hard
    edges and fine texture, so the analysis and restorers have something photo-like to work on
    without the shared data."""
    rng = np.random.default_rng(1000 + index)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = np.stack([0.35 + 0.4 * x, 0.3 + 0.35 * y, 0.55 - 0.25 * x * y], axis=2)
    for _ in range(6):  # a few flat-coloured discs and boxes: edges
        cy, cx, r = rng.uniform(0.15, 0.85, 2).tolist() + [rng.uniform(0.06, 0.2)]
        colour = rng.uniform(0.1, 0.9, 3).astype(np.float32)
        mask = ((y - cy) ** 2 + (x - cx) ** 2 < r * r) if rng.random() < 0.5 else (
            (np.abs(y - cy) < r) & (np.abs(x - cx) < r * 0.6))
        base[mask] = colour
    texture = 0.04 * np.sin(x * size / 2.3 + index) * np.cos(y * size / 3.1)
    return np.clip(base + texture[:, :, None], 0.0, 1.0).astype(np.float32)


def photo(index: int = 0, size: int = 128) -> np.ndarray:
    """:func:`clean_photo` when ``../shared/data`` is present, else :func:`scene`."""
    return clean_photo(index, size) if (SHARED_DATA / "clean").is_dir() else scene(index, size)
