"""Shared fixtures: paths to ../shared/data and small deterministic test photos."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from testdata import SHARED_DATA

# Tests never reach a hub and never read the user's model cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


# One private model cache for the whole run: the user's cache is never read or written, and
# expensive derived files (the converted Real-ESRGAN weights) are made once per run. Tests that
# need an empty cache point RESTORA_CACHE_DIR at their own tmp_path.
os.environ["RESTORA_CACHE_DIR"] = tempfile.mkdtemp(prefix="restora-test-cache-")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny torch models run far faster on one thread than on two contended ones."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
