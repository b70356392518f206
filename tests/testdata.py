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
    """A centre crop (size×size, float32 HxWx3 in [0, 1]) of the index-th clean shared photo."""
    from PIL import Image

    files = sorted((SHARED_DATA / "clean").glob("*.jpg"))
    img = np.asarray(Image.open(files[index]).convert("RGB"), dtype=np.float32) / 255.0
    h, w = img.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(img[y:y + size, x:x + size])
