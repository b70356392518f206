"""The fit of the automatic plan's haze gate beside rain (benchmarks/haze_with_rain_fit.py,
plan.AUTO_MIN_HAZE_WITH_RAIN)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from haze_with_rain_fit import decided, fitted  # noqa: E402


def row(label: str, haze: float, present: tuple[str, ...] = ("rain", "haze")) -> dict:
    return {"label": label, "severity": {"haze": haze}, "present": list(present)}


def test_only_rows_with_rain_and_haze_found_decide_the_gate():
    rows = [row("haze+", 0.4), row("haze+", 0.4, ("haze",)), row("haze-", 0.2, ("rain",)), row("haze-", 0.25)]
    assert [r["severity"]["haze"] for r in decided(rows)] == [0.4, 0.25]


def test_the_gate_is_the_middle_of_the_gates_of_least_balanced_error():
    rows = [row("haze+", h) for h in (0.3, 0.35, 0.5)] + [row("haze-", h) for h in (0.2, 0.24)]
    f = fitted(rows)
    assert f["best error"] == 0.0
    assert f["tied"] == pytest.approx([0.25, 0.26, 0.27, 0.28, 0.29, 0.3])
    assert f["gate"] == pytest.approx(0.28)
    # a veil of rain that never reads haze present leaves the gate at the presence threshold
    assert fitted([row("haze+", 0.17), row("haze-", 0.07, ("rain",))])["tied"] == pytest.approx([0.15, 0.16, 0.17])


def test_the_shipped_gate_is_the_fit_of_the_committed_rows():
    from haze_false_positives import _rows
    from haze_with_rain_fit import WORK

    from engine.pipeline.plan import AUTO_MIN_HAZE_WITH_RAIN

    rows = _rows(WORK / "fit-train.jsonl")
    if not rows:
        pytest.skip("the fit's rows are not committed")
    assert fitted(rows)["gate"] == pytest.approx(AUTO_MIN_HAZE_WITH_RAIN)
