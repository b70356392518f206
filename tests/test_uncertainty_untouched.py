"""The composed map of a photo the restoration left unchanged where the analysis finds nothing (issue 15,
eleventh pass): with a calibration that holds an ``untouched`` model (``benchmarks/uncertainty.py
untouched``), such a result is judged by it, a result where a kind is found and left unfixed keeps its
composed model. The committed calibration holds none yet (its validation gate failed:
``benchmarks/results/uncertainty.md``); these tests give one of their own."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from engine.degrade import degrade
from engine.kinds import KINDS
from engine.uncertainty import UncertaintyModel, default_model
from engine.uncertainty.features import FEATURES
from engine.uncertainty.model import UNTOUCHED, UNTOUCHED_BELOW, KindModel, unchanged

from testdata import photo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

#: The levels of the test's untouched model (8-bit levels): the bound its map must stay within.
LOW, HIGH = 0.2, 3.0


def _with_untouched() -> UncertaintyModel:
    """The committed calibration plus an untouched model whose levels rise with the analysed noise."""
    base = default_model()
    coef = np.zeros(1 + len(FEATURES))
    coef[1 + FEATURES.index("noise")] = 1.0
    kinds = {**base.kinds, UNTOUCHED: KindModel(coef, np.array([0.0, 4.0]), np.array([LOW, HIGH]))}
    return UncertaintyModel(kinds, base.meta, base.left)


def test_unchanged_compares_every_band(monkeypatch):
    import engine.uncertainty.model as model_mod

    monkeypatch.setattr(model_mod, "BAND_ROWS", 8)
    img = photo(1, 40)
    assert unchanged(img, img.copy())
    late = img.copy()
    late[37, 5, 1] += 1.0 / 255.0  # in the last band only
    assert not unchanged(img, late)
    assert not unchanged(img, img[:39])


def test_an_unchanged_result_where_nothing_is_found_is_judged_by_the_untouched_model():
    model = _with_untouched()
    img = photo(2, 48)
    changed = np.clip(img + 2.0 / 255.0, 0, 1).astype(np.float32)
    found = UNTOUCHED_BELOW
    assert model.judge(None, img, img.copy(), 0.05) == UNTOUCHED
    assert model.judge("composed:noise", img, img.copy(), 0.0) == UNTOUCHED
    assert model.judge("composed:haze", img, img.copy(), found) == "composed:haze"  # found, left unfixed
    assert model.judge("composed:noise", img, changed, 0.0) == "composed:noise"
    assert default_model().judge(None, img, img.copy(), 0.0) is None  # no untouched model: as before
    umap = model.predict(img, img.copy(), "composed:noise", noise_sigma=0.01, severity=0.05)
    assert np.array_equal(umap, model.predict(img, img.copy(), UNTOUCHED, noise_sigma=0.01, severity=0.05))
    assert umap.min() >= LOW - 1e-4 and umap.max() <= HIGH + 1e-4
    left = model.predict(img, img.copy(), "composed:haze", noise_sigma=0.01, severity=found)
    assert np.array_equal(left, default_model().predict(img, img.copy(), "composed:haze", noise_sigma=0.01,
                                                        severity=found))


def test_a_photo_the_plan_leaves_untouched_gets_the_untouched_models_map():
    """An analysed photo with no stage run: its map is the untouched model's, within its levels. A noisy
    photo whose noise stage is at strength 0: the noise is found and left, so its composed model judges."""
    from engine.experts.default import build_registry
    from engine.pipeline.job import Restorer, RestoreOptions
    from engine.uncertainty import SessionUncertainty
    from engine.uncertainty.session import _noise_sigma

    model = _with_untouched()
    restorer = Restorer(build_registry())
    clean = photo(4, 96)
    session = restorer.session(clean)
    report = session.analyse()  # analysed, no stage run
    assert not session.results and np.array_equal(session.compose({}), clean)
    assert max(report.severity(k) for k in KINDS) < UNTOUCHED_BELOW  # found clean
    umap = SessionUncertainty(session, model=model).composed({})
    assert umap.shape == clean.shape[:2] and umap.min() >= LOW - 1e-4 and umap.max() <= HIGH + 1e-4
    assert not np.array_equal(umap, SessionUncertainty(session).composed({}))  # the committed map differs

    noisy = degrade(clean, "noise", 0.6, seed=3)
    session = restorer.session(noisy)
    plan = restorer.plan_for(session, RestoreOptions(auto=False, only=("noise",)))
    session.run(plan)
    assert session.report.severity("noise") >= UNTOUCHED_BELOW
    su = SessionUncertainty(session, model=model)
    off = {name: 0.0 for name in plan.strengths()}
    assert np.array_equal(session.compose(off), session.image)
    judged = SessionUncertainty(session).composed(off)  # the committed calibration: no untouched model
    assert np.array_equal(su.composed(off), judged)
    sigma = _noise_sigma(noisy, session.report)
    assert not np.array_equal(judged, model.predict(noisy, noisy, UNTOUCHED, noise_sigma=sigma))


def test_untouched_rows_are_the_unchanged_composed_rows_where_nothing_is_found():
    from uncertainty import untouched_rows

    img = photo(0, 24)
    nothing = {"noise": 0.05, "haze": 0.1}
    rows = [{"stage": "composed", "before": img, "after": img.copy(), "sev_in": nothing},
            {"stage": "composed", "before": img, "after": img.copy(), "sev_in": {"haze": 0.4}},
            {"stage": "composed", "before": img, "after": np.clip(img * 0.9, 0, 1), "sev_in": nothing},
            {"stage": "noise", "before": img, "after": img.copy(), "sev_in": nothing}]
    assert untouched_rows(rows) == rows[:1]


def test_untouched_ship_rule_follows_its_checks():
    from uncertainty import GATE_TOLERANCE, untouched_verdict

    before = {"composed/real/haze": 0.40, "composed/synthetic-auto/blur": 0.50, "stage/real/noise": 0.38}

    def clean(b, a):
        return [{"stage": "composed", "maps": {"b": {"fraction_above": x}, "a": {"fraction_above": y}}}
                for x, y in zip(b, a, strict=True)]
    ok = untouched_verdict(before, {**before, "composed/real/haze": 0.40 - GATE_TOLERANCE},
                           clean([0.1, 0.3], [0.0, 0.2]), ("b", "a"))
    assert ok["ship"]
    fell = untouched_verdict(before, {**before, "composed/real/haze": 0.37}, clean([0.1, 0.3], [0.0, 0.2]), ("b", "a"))
    assert not fell["ship"] and [c["ok"] for c in fell["checks"]].count(False) == 1
    worse = untouched_verdict(before, before, clean([0.1, 0.1, 0.0], [0.0, 0.0, 0.15]), ("b", "a"))
    assert not worse["ship"]  # the mean fell, but the worst photo's share rose
    assert not untouched_verdict(before, before, [], ("b", "a"))["ship"]
