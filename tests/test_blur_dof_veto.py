"""The depth-of-field veto study (benchmarks/blur_dof_veto.py): its constructions and its veto count."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from blur_dof_veto import degraded, vetoed  # noqa: E402


def test_the_veto_counts_areas_under_the_threshold_as_the_estimator_does():
    # 2 of 6 areas under 0.8 (a third: at least a quarter) veto; under 0.5 none does
    entry = {"kernel": 31, "confidence": 0.5, "evidence": [0.6, 0.76, 1.1, 1.2, 1.3, 1.4]}
    assert vetoed(entry, 0.8) and not vetoed(entry, 0.5)
    assert not vetoed({"kernel": 31, "evidence": [0.1, 0.2, 0.3]}, 0.8)  # under 4 detailed areas: no check


def test_a_side_subject_stays_sharp_and_a_shaken_photo_is_blurred_everywhere():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:96, :128] / 8.0
    img = np.repeat((0.5 + 0.4 * np.sin(xx) * np.cos(yy))[..., None], 3, axis=2).astype(np.float32)
    side = degraded(img, "side-disc", np.random.default_rng(1))
    kept = np.all(np.isclose(side, img), axis=(0, 2))
    assert 0.3 * 128 - 1 <= kept.sum() <= 0.45 * 128 + 1 and (kept[:10].all() or kept[-10:].all())
    shaken = degraded(img, "shake", rng)
    assert np.abs(shaken - img)[8:-8, 8:-8].mean() > 0.02
