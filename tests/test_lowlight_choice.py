"""The training population and the rule families of benchmarks/lowlight_choice.py
(benchmarks/results/lowlight-choice.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from testdata import scene

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from lowlight_choice import IAT, LIME, degraded_cases, halves, rules, today  # noqa: E402

from engine.color import luminance  # noqa: E402


def test_each_photo_gives_a_table_case_and_a_camera_case_both_darker_than_the_photo():
    clean = scene(8, 96)
    for index in range(2):
        made = degraded_cases(index, clean)
        assert [name.split(":")[0] for name, _, _ in made] == ["table", "camera"]
        for _, steps, x in made:
            assert x.shape == clean.shape and steps[0][0] in ("lowlight", "blur")
            assert float(luminance(x).mean()) < float(luminance(clean).mean()) - 0.05
        assert np.array_equal(made[1][2], degraded_cases(index, clean)[1][2])  # seeded


def _case(index: int, iat_mean: float, input_mean: float, acceptable: bool = True) -> dict:
    cand = {"mean": iat_mean, "psnr": 20.0, "acceptable": acceptable, "score": 0.3, "new_clipped": 0.0}
    return {"index": index, "tag": f"{index:03d}-0", "input mean": input_mean,
            "candidates": {IAT: cand, LIME: dict(cand, mean=0.36, score=0.2, psnr=18.0)}}


def test_the_halves_split_photos_not_cases_and_the_gain_rule_respects_the_brightening_bound():
    cases = [_case(i, 0.25, 0.2) for i in range(10)] + [_case(i, 0.25, 0.1) for i in range(10)]
    fit, held = halves(cases)
    assert fit and held and not fit & held and fit | held == set(range(10))
    gained = {c["tag"]: {"mean": 0.42, "psnr": 22.0, "new_clipped": 0.0, "score": 0.1} for c in cases}
    chosen = rules(cases, {"0.420/2.50": gained})["IAT+gain 0.420/2.50 when IAT's brightening < 1.8x"]
    # IAT lifted 0.2 -> 0.25 (1.25x): gained; 0.1 -> 0.25 (2.5x): left to today's choice
    assert all(isinstance(ch, dict) for ch in chosen[:10])
    assert chosen[10:] == [IAT] * 10 == [today(c) for c in cases[10:]]
