"""The fit of the blur stage's keep/drop rule (benchmarks/blur_keep_fit.py, pnp_deblur.UNSURE_*)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from blur_keep_fit import best_pair, best_threshold, held_out, kept  # noqa: E402


def test_the_threshold_keeps_the_most_summed_gain_and_drops_no_more_than_it_must():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    gain = np.array([+1.0, +0.5, -2.0, +0.2, -3.0])
    t, total = best_threshold(x, gain, above=True)  # drop x > t: dropping 3, 4, 5 sums -4.8 of them
    assert (t, total) == (2.0, 1.5)
    t, total = best_threshold(x, gain[::-1], above=False)  # the mirror image: drop x < t
    assert (t, total) == (4.0, 1.5)
    assert best_threshold(x, np.abs(gain), above=True) == (np.inf, float(np.abs(gain).sum()))  # nothing to drop


def test_two_readings_drop_only_where_both_say_so():
    radius = np.array([8.0, 8.0, 3.0, 3.0])
    agreement = np.array([0.5, 0.95, 0.5, 0.95])
    gain = np.array([-5.0, +2.0, +1.0, +1.0])
    t1, t2, total = best_pair(radius, agreement, gain)
    assert total == 4.0 and (radius > t1).tolist() == [True, True, False, False]
    assert (agreement < t2).tolist() == [True, False, True, False]


def test_held_out_verdicts_come_from_the_other_folds():
    """Two photos that lose above a radius, the same in every fold: each is dropped by the threshold
    the other folds fit; a fold whose training part never lost keeps its stages."""
    names = [f"p{i}" for i in range(40)]
    rows = [{"name": n, "radius_px": float(i % 10), "aligned": -3.0 if i % 10 >= 8 else 0.5}
            for i, n in enumerate(names)]
    drop, ts = held_out(rows, "radius_px", above=True)
    assert all(7.0 <= t < 8.0 for t in ts)
    assert drop.tolist() == [r["radius_px"] >= 8 for r in rows]


def test_only_the_stages_the_plan_keeps_are_judged():
    rows = [{"blur_stage": True, "stage_in": 20.0, "severity_drops": False, "old_guard_drops": False},
            {"blur_stage": True, "stage_in": 20.0, "severity_drops": True, "old_guard_drops": False},
            {"blur_stage": True, "stage_in": 20.0, "severity_drops": False, "old_guard_drops": True},
            {"blur_stage": False}]
    assert kept(rows) == rows[:1]
