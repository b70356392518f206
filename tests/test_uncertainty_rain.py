"""The rain models' refit and its gate (issue 15, twelfth pass: ``benchmarks/uncertainty.py rain``,
``gate-rain``, ``collect --which rain-realistic|rain-heavy``). Nothing of it shipped (the gate failed:
``benchmarks/results/uncertainty.md``); these tests hold the rule and the training rain it was fitted on."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from testdata import clean_photo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


BEFORE = {"composed/real/rain": 0.15, "composed/synthetic/rain": 0.73, "composed/synthetic-auto/rain": 0.51,
          "stage/synthetic/rain": 0.73, "composed/real/haze": 0.06, "stage/real/lowlight": 0.41,
          "stage-any/real/noise": -0.17}
COST = {"before": 5.0, "after": 5.0}


def test_the_rain_gate_ships_only_when_every_check_holds():
    from uncertainty import GATE_RAIN_COST, GATE_RAIN_REAL, GATE_TOLERANCE, rain_verdict
    good = dict(BEFORE, **{"composed/real/rain": GATE_RAIN_REAL})
    assert rain_verdict(BEFORE, good, COST)["ship"]
    rise = dict(BEFORE, **{"composed/real/rain": 0.26})  # below 0.30, but risen by 0.11 with nothing lost
    assert rain_verdict(BEFORE, rise, COST)["ship"]
    assert not rain_verdict(BEFORE, dict(rise, **{"composed/real/haze": 0.06 - GATE_TOLERANCE - 0.01}), COST)["ship"]
    assert not rain_verdict(BEFORE, dict(BEFORE, **{"composed/real/rain": 0.20}), COST)["ship"]  # +0.05 only
    for key, value in (("composed/synthetic-auto/rain", 0.49), ("stage/synthetic/rain", 0.49),
                       ("composed/synthetic/rain", 0.73 - GATE_TOLERANCE - 0.01),
                       ("stage/real/lowlight", 0.41 - GATE_TOLERANCE - 0.01)):
        assert not rain_verdict(BEFORE, dict(good, **{key: value}), COST)["ship"], key
    assert rain_verdict(BEFORE, dict(good, **{"stage-any/real/noise": -0.5}), COST)["ship"]  # a record, not a row
    assert not rain_verdict(BEFORE, good, {"before": 5.0, "after": 5.0 * (1 + GATE_RAIN_COST) + 0.01})["ship"]
    assert not rain_verdict(BEFORE, good, None)["ship"]


def test_the_refit_judges_each_rain_family_and_the_rows_rain_judges():
    from uncertainty import RAIN_FAMILIES, _rain_family, rain_rows
    assert _rain_family("train") == "table" and _rain_family("train-auto") == "table"
    assert _rain_family("train-rainreal-only") == "realistic" and _rain_family("train-whole") == "realistic"
    assert _rain_family("train-rainheavy-auto") == "heavy"
    assert _rain_family("real:rain_synthetic") == "" and _rain_family("synthetic") == ""
    assert set(RAIN_FAMILIES) == {"table", "realistic", "heavy"}
    sev = {k: 0.0 for k in ("noise", "blur", "jpeg", "haze", "lowlight", "rain")}
    rows = [{"group": "train", "kind": "rain", "stage": "rain", "photo": "a"},
            {"group": "train", "kind": "noise", "stage": "rain", "photo": "b"},  # a rain stage on a noise photo
            {"group": "train-auto", "kind": "rain", "stage": "composed", "photo": "a", "kept": ["rain"],
             "sev_in": dict(sev, rain=0.6)},
            {"group": "train-auto", "kind": "noise", "stage": "composed", "photo": "b", "kept": ["noise"],
             "sev_in": dict(sev, noise=0.5, rain=0.7)},  # rain found, noise kept: noise judges it
            {"group": "synthetic", "kind": "rain", "stage": "composed", "photo": "c", "kept": ["rain"],
             "sev_in": dict(sev, rain=0.6)}]  # validation: never fitted on
    assert [r["photo"] for r in rain_rows(rows, "rain")] == ["a"]
    assert [r["photo"] for r in rain_rows(rows, "composed:rain")] == ["a"]


class _Recorder:
    """Stands in for the benchmark's Collector: keeps what it is asked to restore."""

    def __init__(self) -> None:
        self.calls = []

    def restore(self, degraded, truth, options, group, kind, photo, **_):
        self.calls.append((degraded, truth, options, group, kind, photo))


def _streak_share(degraded: np.ndarray, truth: np.ndarray) -> float:
    return float(((degraded - truth).mean(axis=2) * 255.0 > 8.0).mean())


def test_heavy_training_rain_covers_most_of_the_crop_where_the_realistic_rain_does_not(tmp_path, monkeypatch):
    import uncertainty
    from PIL import Image
    shares = {}
    crops = [clean_photo(i, 128) for i in range(4)]
    names = []
    for i, crop in enumerate(crops):
        names.append(f"photo{i}.png")
        Image.fromarray(np.round(crop * 255).astype(np.uint8)).save(tmp_path / names[-1])
    monkeypatch.setattr(uncertainty, "CLEAN", tmp_path)
    for name, collect in (("realistic", uncertainty.rain_realistic), ("heavy", uncertainty.rain_heavy)):
        rec = _Recorder()
        collect(names, 128, rec, f"train-rain{name}")
        assert len(rec.calls) == 2 * len(names)
        assert {c[3] for c in rec.calls} == {f"train-rain{name}-auto", f"train-rain{name}-only"}
        assert all(c[4] == "rain" for c in rec.calls)
        only = [c[2] for c in rec.calls if c[3].endswith("-only")]
        assert all(o.only == ("rain",) and not o.auto for o in only)
        for degraded, truth, *_ in rec.calls:
            assert degraded.shape == truth.shape == (128, 128, 3)
            assert _streak_share(degraded, truth) > 0.02  # streaks there to remove
        shares[name] = np.mean([_streak_share(c[0], c[1]) for c in rec.calls[::2]])
        again = _Recorder()
        collect(names, 128, again, "x")
        assert all(np.array_equal(a[0], b[0]) for a, b in zip(rec.calls, again.calls, strict=True))  # seeded
    # the real rain pairs' streaks cover 88 % of their pixels, the realistic generator's about a quarter
    assert shares["heavy"] > 0.6 > 0.4 > shares["realistic"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
