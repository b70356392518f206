"""Paths to the shared test data and small deterministic crops of it (importable by tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import os

REPO = Path(__file__).resolve().parents[1]
#: ``../shared/data`` next to the repository, or ``$RESTORA_SHARED_DATA`` (a checkout elsewhere,
#: e.g. a git worktree, pointing at the shared data).
SHARED_DATA = Path(os.environ.get("RESTORA_SHARED_DATA") or REPO.parent / "shared" / "data")


def clean_photo(index: int = 0, size: int = 128) -> np.ndarray:
    """A centre crop (size×size, float32 HxWx3 in [0, 1]) of the index-th clean shared photo."""
    from PIL import Image

    files = sorted((SHARED_DATA / "clean").glob("*.jpg"))
    img = np.asarray(Image.open(files[index]).convert("RGB"), dtype=np.float32) / 255.0
    h, w = img.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(img[y:y + size, x:x + size])
