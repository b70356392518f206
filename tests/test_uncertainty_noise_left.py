"""The noise stage map's levels judged by the error left for that stage to fix (issue 15, eighth pass,
``benchmarks/uncertainty.py noise-left``): which training rows count, and that the held-out comparison
scores the map a person sees (its levels, ties included), not only the score under it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_only_rows_degraded_by_noise_count_for_the_noise_stage():
    """A noise stage row of a photo degraded by another kind (the automatic plan ran the noise stage on
    a low-light crop) carries that kind's error and is left out; the composed result is no stage row."""
    from uncertainty import counts_for_noise_stage
    assert counts_for_noise_stage({"stage": "noise", "kind": "noise"})
    assert not counts_for_noise_stage({"stage": "noise", "kind": "lowlight"})
    assert not counts_for_noise_stage({"stage": "noise", "kind": "jpeg"})
    assert not counts_for_noise_stage({"stage": "composed", "kind": "noise"})


def test_the_held_out_comparison_scores_the_maps_levels():
    """Rows whose error grows with one feature: levels refitted on them rank the error and sit at its
    level; a committed model with the same score but flat levels far above the error ranks nothing (ties)
    and is far off in level, on the same held-out rows."""
    from engine.uncertainty.features import FEATURES
    from engine.uncertainty.model import KindModel, fit_levels
    from uncertainty import _map_held_out, strictly_increasing

    rng = np.random.default_rng(0)
    n_feat = 1 + len(FEATURES)
    stacks, errs, photos, families = [], [], [], []
    for i in range(16):
        x = rng.uniform(0.0, 1.0, 400).astype(np.float32)
        st = np.zeros((n_feat, x.size), np.float32)
        st[0], st[1] = 1.0, x
        stacks.append(st)
        errs.append((2.0 + 6.0 * x + rng.normal(0.0, 0.5, x.size)).astype(np.float32))
        photos.append(f"p{i // 2}")
        families.append("synthetic" if i % 2 else "camera")
    coef = np.zeros(n_feat)
    coef[1] = 1.0
    flat = KindModel(coef, np.array([0.0, 1.0]), np.array([16.0, 16.0]))

    def refit(s, e):
        return strictly_increasing(fit_levels(coef, flat.score(np.concatenate(s, axis=1)), np.concatenate(e)))

    report = _map_held_out(stacks, errs, photos, families, refit, flat)
    for fam in ("synthetic", "camera"):
        assert report["candidate"]["rho"][fam] > 0.8
        assert report["shipped"]["rho"][fam] == 0.0
        assert report["candidate"]["level_gap"][fam] < 0.1 < report["shipped"]["level_gap"][fam]
