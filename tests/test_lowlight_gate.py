"""The automatic plan's low-light gate (plan.AUTO_MIN_SEVERITY["lowlight"]) and the benchmark that
asks whether it can be lower (benchmarks/lowlight_gate.py, benchmarks/results/lowlight-gate.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from engine.analysis.report import DEFAULT_PRESENCE_THRESHOLD as T
from engine.analysis.report import DegradationReport, KindAssessment
from engine.kinds import KINDS
from engine.pipeline.plan import AUTO_MIN_SEVERITY

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from lowlight_gate import gate_fit, lowpass_percentile, severity  # noqa: E402

#: A real dim classroom (PolyU, Nikon D800, ISO 3200), exposed as the camera saw it: low-light severity
#: 0.33 with both analyses agreeing. Brightened, it fell from 38.8 to 9.7 dB against its ground truth
#: (benchmarks/results/lowlight-gate.md); only the gate holds it back.
DIM_CLASSROOM = "pairs/noise_real_polyu_crops/lq/NikonD800_11_160_3200_classroom_15.JPG"


def test_a_real_dim_classroom_reads_as_low_light_but_is_not_brightened(shared_data):
    from engine.analysis.learned import analyse_default
    from engine.experts.default import build_registry
    from engine.imageio import load_photo
    from engine.pipeline.plan import build_plan

    photo = load_photo(shared_data / DIM_CLASSROOM)
    report = analyse_default(np.clip(photo.pixels, 0, 1).astype(np.float32))
    assert T <= report.severity("lowlight") < AUTO_MIN_SEVERITY["lowlight"]
    assert "lowlight" not in build_plan(report, build_registry()).names()


@pytest.mark.parametrize("raw,p95,prob,strength", [
    (0.6, 0.30, 0.9, 0.5), (0.6, 0.50, 0.9, 0.5), (0.6, 0.30, 0.3, 0.5), (0.1, 0.30, 0.9, 0.5),
    (0.41, 0.44, 0.68, 0.25), (0.33, 0.46, 0.79, 0.36)])
def test_the_benchmark_reads_severity_as_the_combined_analysis_does(raw, p95, prob, strength):
    from engine.analysis.analyser import LOWLIGHT_MAX_P95_LUMA, lowlight_severity
    from engine.analysis.learned import combine, learned_severity

    measurements = {"p95_luma": p95}

    def report(lowlight: KindAssessment) -> DegradationReport:
        return DegradationReport({k: lowlight if k == "lowlight" else KindAssessment(0.0, 1.0, {}) for k in KINDS})

    hand = report(KindAssessment(lowlight_severity(raw, measurements), 1.0, measurements))
    net = report(KindAssessment(learned_severity(prob, strength), 1.0, {"probability": prob, "strength": strength}))
    row = {"raw": raw, "p95_luma": p95, "learned_probability": prob, "learned_strength": strength}
    assert severity(row, LOWLIGHT_MAX_P95_LUMA, "p95_luma") == pytest.approx(combine(hand, net).severity("lowlight"))


def test_the_gate_fit_takes_the_middle_of_the_gates_that_tie():
    def row(raw: float) -> dict:
        return {"raw": raw, "p95_luma": 0.2, "learned_probability": 0.9, "learned_strength": 0.5}

    fit = gate_fit([row(0.6), row(0.8)], [row(0.2), row(0.3)], 0.47, "p95_luma")
    assert fit["balanced_error"] == 0.0
    assert fit["ties"] == [0.31, 0.6] and fit["gate"] == pytest.approx(0.455, abs=0.006)


def test_lowpass_percentile_is_not_lifted_by_noise():
    rng = np.random.default_rng(0)
    ramp = np.tile(np.linspace(0.0, 0.4, 256, dtype=np.float32), (256, 1))
    noisy = np.clip(ramp + rng.normal(0, 20 / 255, ramp.shape).astype(np.float32), 0, 1)
    assert np.percentile(noisy, 95) - np.percentile(ramp, 95) > 0.02
    assert abs(lowpass_percentile(noisy, 95) - lowpass_percentile(ramp, 95)) < 0.01
    assert lowpass_percentile(np.full((2, 3), 0.4, np.float32), 95) == pytest.approx(0.4)
