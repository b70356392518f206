"""Shared fixtures: paths to ../shared/data and small deterministic test photos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Tests never reach a hub and never read the user's model cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test gets a private model cache so nothing leaks between tests or from the user."""
    if "RESTORA_TEST_KEEP_CACHE" not in os.environ:
        monkeypatch.setenv("RESTORA_CACHE_DIR", str(tmp_path_factory.mktemp("restora-cache")))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def clean_photo(index: int = 0, size: int = 128) -> np.ndarray:
    """A centre crop (size×size, float32 HxWx3 in [0, 1]) of the index-th clean shared photo."""
    from PIL import Image

    files = sorted((SHARED_DATA / "clean").glob("*.jpg"))
    img = np.asarray(Image.open(files[index]).convert("RGB"), dtype=np.float32) / 255.0
    h, w = img.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(img[y:y + size, x:x + size])
