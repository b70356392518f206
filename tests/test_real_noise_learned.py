"""benchmarks/real_noise_learned.py: the JPEG-domain features read sensor grain in flat blocks, the
threshold keeps to its false-positive budget, the smoothest window is found, and the training cases
are reproducible with or without their references."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from engine.analysis.jpeg_tables import STD_CHROMA, STD_LUMA, ijg_table
from engine.degrade.camera import jpeg_round_trip
from testdata import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import real_noise_learned as rl  # noqa: E402

LUMA, CHROMA = ijg_table(STD_LUMA, 75).astype(np.float64), ijg_table(STD_CHROMA, 75).astype(np.float64)


def _flat(noise_255: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.full((128, 128, 3), 0.45, np.float32)
    return jpeg_round_trip(np.clip(base + rng.normal(0, noise_255 / 255, base.shape).astype(np.float32), 0, 1), 75)


def test_features_have_their_names_and_see_grain_in_flat_blocks():
    clean, noisy = rl.features(_flat(0.0), LUMA, CHROMA), rl.features(_flat(6.0), LUMA, CHROMA)
    assert clean.shape == noisy.shape == (rl.N_FEATURES,)
    assert np.isfinite(clean).all() and np.isfinite(noisy).all()
    any_hi = rl.FEATURE_NAMES.index("flat_hi_any")
    assert clean[any_hi] == 0.0
    flat = rl.FEATURE_NAMES.index("flat_share")
    assert clean[flat] == 1.0 and noisy[flat] < 1.0
    assert noisy[rl.FEATURE_NAMES.index("log_lap_all")] > clean[rl.FEATURE_NAMES.index("log_lap_all")] + 1.0


def test_threshold_keeps_the_budget():
    neg = np.random.default_rng(1).normal(size=1000)
    for budget in (0.005, 0.02, 0.1):
        assert (neg > rl.threshold_at(neg, budget)).mean() <= budget


def test_smoothest_window_is_the_flat_half():
    rng = np.random.default_rng(2)
    photo = np.full((100, 200, 3), 0.5, np.float32)
    photo[:, :100] += rng.normal(0, 0.1, (100, 100, 3)).astype(np.float32)
    y0, x0 = rl.smoothest_window(photo, 50)
    assert x0 >= 100


@pytest.mark.parametrize("index", [3])
def test_cases_are_reproducible_and_references_do_not_change_them(index):
    rng = np.random.default_rng(4)
    photo = np.clip(0.5 + 0.2 * rng.standard_normal((300, 320, 3)), 0, 1).astype(np.float32)
    a, b = rl.make_cases(index, photo), rl.make_cases(index, photo, refs=True)
    for kind in rl.KINDS:
        assert a[kind].shape == (rl.SIDE, rl.SIDE, 3)
        assert np.array_equal(a[kind], b[kind])
        assert b[f"ref_{kind}"].shape == (rl.SIDE, rl.SIDE, 3)
    assert np.array_equal(a["quality"], b["quality"])
    assert (70 <= a["quality"]).all() and (a["quality"] <= 80).all()
    # the noisy kinds differ from their references by more than the clean ones do
    err = {k: float(np.abs(b[k] - b[f"ref_{k}"]).mean()) for k in rl.KINDS}
    assert err["noisy"] > err["cleancam"] and err["noisy_big"] > err["cleancam_big"]
