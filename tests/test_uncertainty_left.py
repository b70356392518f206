"""The composed map's term for error the plan left unfixed (engine/uncertainty/left.py, issue 15, ninth
pass): which kinds count as left, the exposure gap of darkness left, how the calibration's term raises
the composed map (in bands and on a grid as without it), and the benchmark's fit and ship rule."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from engine.uncertainty import COMPOSED, SessionUncertainty, UncertaintyModel, default_model
from engine.uncertainty.left import LeftTerm, exposure_gap, highlight, left_unfixed

from testdata import photo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_a_kind_is_left_when_found_in_the_input_and_the_result_and_no_stage_of_it_was_kept():
    before = {"noise": 0.5, "lowlight": 0.3, "jpeg": 0.6, "haze": 0.2}
    after = {"noise": 0.05, "lowlight": 0.4, "jpeg": 0.3, "haze": 0.15, "rain": 0.5}
    assert left_unfixed(["jpeg"], before, after) == {"lowlight": 0.4, "haze": 0.15}
    assert left_unfixed(["jpeg", "lowlight", "haze"], before, after) == {}
    assert left_unfixed([], {"lowlight": 0.1}, {"lowlight": 0.5}) == {}  # not found in the input
    assert left_unfixed([], {"lowlight": 0.5}, {"lowlight": 0.1}) == {}  # gone from the result


def test_exposure_gap_is_the_error_of_darkness_left():
    """A grey photo whose highlights reach white, darkened to 40 %: its highlights read 0.4, and the gap
    at each pixel is what the darkening took from it (8-bit levels)."""
    rng = np.random.default_rng(1)
    grey = rng.uniform(0.0, 1.0, (64, 64)).astype(np.float32)
    truth = np.repeat(grey[:, :, None], 3, axis=2)
    dark = truth * np.float32(0.4)
    hl = highlight(dark)
    assert hl == pytest.approx(0.4 * np.percentile(grey[::4, ::4], 99), rel=1e-4)
    gap = exposure_gap(dark, 0.4)
    assert gap.shape == grey.shape and gap.dtype == np.float32
    assert np.allclose(gap, (truth - dark).mean(axis=2) * 255.0, atol=1e-3)
    assert np.all(exposure_gap(truth, 1.0) == 0.0)  # an exposed photo lacks nothing
    assert np.all(exposure_gap(dark, 0.01) <= 255.0 * (1.0 - dark.mean(axis=2)) + 1e-3)  # clipped at white


def _with_term(coef: float = 1.0, form: str = "max") -> UncertaintyModel:
    m = default_model()
    return UncertaintyModel(m.kinds, m.meta, {"lowlight": LeftTerm(coef, form)})


def test_the_term_raises_the_composed_map_only_where_darkness_is_left():
    before = photo(2, 96)[:90] * np.float32(0.35)
    after = np.clip(before * 1.05, 0.0, 1.0)
    model = _with_term()
    plain = model.predict(before, after, COMPOSED)
    assert np.array_equal(model.predict(before, after, COMPOSED, left={"jpeg": 0.3}), plain)
    raised = model.predict(before, after, COMPOSED, left={"lowlight": 0.4})
    assert np.all(raised >= plain)
    assert np.allclose(raised, np.maximum(plain, exposure_gap(after, highlight(after))))
    summed = _with_term(0.5, "sum").predict(before, after, COMPOSED, left={"lowlight": 0.4})
    assert np.allclose(summed, plain + 0.5 * exposure_gap(after, highlight(after)), atol=1e-4)
    assert np.array_equal(default_model().predict(before, after, COMPOSED, left={"lowlight": 0.4}), plain)


def test_the_term_in_bands_and_on_a_grid_is_the_full_maps(monkeypatch):
    from engine.uncertainty import model as model_module

    before = photo(3, 80)[:75] * np.float32(0.3)
    after = np.clip(before * 1.1, 0.0, 1.0)
    model = _with_term(0.8)
    whole = model.predict(before, after, COMPOSED, left={"lowlight": 0.3})
    assert np.array_equal(model.predict(before, after, COMPOSED, left={"lowlight": 0.3}, step=3), whole[::3, ::3])
    monkeypatch.setattr(model_module, "BAND_ROWS", 16)
    assert np.allclose(model.predict(before, after, COMPOSED, left={"lowlight": 0.3}), whole, atol=1e-4)


def test_the_term_travels_with_the_calibration():
    model = _with_term(0.75, "sum")
    again = UncertaintyModel.from_json(model.to_json())
    assert again.left == {"lowlight": LeftTerm(0.75, "sum")}
    plain = UncertaintyModel(model.kinds, model.meta)
    assert "left" not in json.loads(plain.to_json()) and UncertaintyModel.from_json(plain.to_json()).left == {}
    with pytest.raises(ValueError):
        UncertaintyModel(model.kinds, left={"noise": LeftTerm(1.0)})
    with pytest.raises(ValueError):
        LeftTerm(-1.0)


class _Report:
    def __init__(self, severities):
        self.kinds = {}
        self._s = severities

    def severity(self, kind):
        return self._s.get(kind, 0.0)


def test_the_session_tells_the_map_which_kinds_the_plan_left():
    """A dark photo whose plan kept only a noise stage: the composed map is raised by the darkness term;
    with a low-light stage kept, or no low light found in the result, it is not."""
    image = photo(4, 64) * np.float32(0.3)
    delta = np.zeros_like(image)

    def session(kept: str, lowlight_after: float):
        result = SimpleNamespace(name=kept, dropped=False, delta=delta, key=(kept,),
                                 output_report=_Report({"lowlight": lowlight_after}))
        return SimpleNamespace(image=image, results=[result], report=_Report({"lowlight": 0.4, "noise": 0.3}),
                               compose=lambda strengths, region=None, step=1: image[::step, ::step],
                               knots_pending=lambda strengths=None: False)
    model = _with_term()
    plain = SessionUncertainty(session("noise", 0.0), model).composed({})
    raised = SessionUncertainty(session("noise", 0.4), model).composed({})
    kept = SessionUncertainty(session("lowlight", 0.4), model).composed({})
    gap = exposure_gap(image, highlight(image))
    assert np.allclose(raised, np.maximum(SessionUncertainty(session("noise", 0.4), default_model()).composed({}), gap))
    assert raised.mean() > plain.mean()
    assert np.array_equal(kept, SessionUncertainty(session("lowlight", 0.4), default_model()).composed({}))


def test_the_fit_finds_the_coefficient_of_the_error_left():
    from uncertainty import _fit_left_coef
    rng = np.random.default_rng(2)
    samples = []
    for _ in range(6):
        gap = rng.uniform(20.0, 120.0, 500)
        samples.append((np.full(500, 10.0), gap, 0.7 * gap * rng.uniform(0.9, 1.1, 500)))
    assert _fit_left_coef(samples, "max") == pytest.approx(0.7, abs=0.05)
    assert _fit_left_coef([], "max") == 0.0


def test_the_ship_rule_holds_only_when_every_check_does():
    from uncertainty import GATE_AUTO_NOISE_STAGE, GATE_TOLERANCE, gate_verdict
    before = {"stage/synthetic-auto/noise": 0.51, "stage/synthetic/noise": 0.51,
              "composed/synthetic-auto/lowlight": 0.17, "stage/real/noise": 0.16, "composed/real/haze": -0.07}
    full = [{"photo": "p", "stage": "noise", "actual": {"fraction_above": 0.03},
             "maps": {"b": {"fraction_above": 1.0}, "a": {"fraction_above": 0.2}}},
            {"photo": "p", "stage": "composed", "actual": {"fraction_above": 0.03},
             "maps": {"b": {"fraction_above": 0.14}, "a": {"fraction_above": 0.14}}}]
    good = dict(before, **{"stage/synthetic-auto/noise": 0.55, "stage/synthetic/noise": 0.55,
                           "composed/synthetic-auto/lowlight": 0.40})
    assert gate_verdict(before, good, full, ("b", "a"))["ship"]
    for key, value in (("stage/synthetic-auto/noise", GATE_AUTO_NOISE_STAGE - 0.01),
                       ("stage/synthetic/noise", 0.50),
                       ("composed/synthetic-auto/lowlight", 0.17 - GATE_TOLERANCE - 0.01),
                       ("composed/real/haze", -0.07 - GATE_TOLERANCE - 0.01)):
        assert not gate_verdict(before, dict(good, **{key: value}), full, ("b", "a"))["ship"], key
    farther = [dict(full[0]), dict(full[1], maps={"b": {"fraction_above": 0.14}, "a": {"fraction_above": 0.3}})]
    assert not gate_verdict(before, good, farther, ("b", "a"))["ship"]
    assert not gate_verdict(before, good, None, ("b", "a"))["ship"]
