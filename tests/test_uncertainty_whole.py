"""The whole-photo calibration's contracts (engine/uncertainty, issue 15): the photo-noise term is
one level for the whole photo, a low light left uncorrected judges the composed result, and a
photo-level term added to the shipped score keeps its ranking within a photo."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from engine.uncertainty import COMPOSED, default_model
from engine.uncertainty.features import FEATURES, feature_stack, photo_noise
from engine.uncertainty.model import KindModel, UncertaintyModel
from engine.uncertainty.session import LEFT_IN_RESULT, composed_choice

from testdata import photo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_photo_noise_is_the_mean_sigma_in_levels():
    assert photo_noise(None) == 0.0
    assert abs(photo_noise(4.0 / 255.0) - 4.0) < 1e-4
    assert abs(photo_noise(np.array([2.0, 4.0, 6.0]) / 255.0) - 4.0) < 1e-4
    sigma = np.zeros((10, 10, 3), np.float32)
    sigma[:5] = 8.0 / 255.0  # half the photo noisy
    assert abs(photo_noise(sigma) - 4.0) < 1e-4
    img = photo(3, 32)
    noisy = sigma[:1, :1].repeat(32, 0).repeat(32, 1)
    plane = feature_stack(img, img, noise_sigma=noisy)[1 + FEATURES.index("photo_noise")]
    assert np.allclose(plane, np.log1p(8.0))  # this band's own mean when no whole-photo level is given
    plane = feature_stack(img, img, noise_sigma=0.0, photo_sigma=4.0)[1 + FEATURES.index("photo_noise")]
    assert np.allclose(plane, np.log1p(4.0))  # the whole photo's level, given, for a band of it


def test_photo_noise_term_is_the_same_level_in_every_band(monkeypatch):
    """A band of a large photo reads the whole photo's noise level, not its own: the map of a
    model that reads only that term is one value over the photo, banded or not."""
    import engine.uncertainty.model as model_mod

    coef = np.zeros(1 + len(FEATURES))
    coef[1 + FEATURES.index("photo_noise")] = 1.0
    flat = KindModel(coef, np.array([0.0, 10.0]), np.array([0.0, 10.0]))
    model = UncertaintyModel({COMPOSED: flat})
    img = photo(4, 64)
    sigma = np.zeros((64, 64, 3), np.float32)
    sigma[:32] = 10.0 / 255.0  # noisy top half: the photo's mean is 5 levels
    monkeypatch.setattr(model_mod, "BAND_ROWS", 16)
    out = model.predict(img, img, None, noise_sigma=sigma)
    assert np.allclose(out, np.log1p(5.0), atol=1e-4)


def _report(sev: dict):
    return SimpleNamespace(severity=lambda k: sev.get(k, 0.0))


def _result(name: str):
    return SimpleNamespace(name=name, dropped=False, delta=np.zeros(1))


def test_a_low_light_left_uncorrected_judges_the_composed_result():
    model = default_model()
    assert "lowlight" in LEFT_IN_RESULT
    report = _report({"jpeg": 0.3, "lowlight": 0.7})
    assert composed_choice(model, [_result("jpeg")], report)[1] == "lowlight"  # brightening not kept
    assert composed_choice(model, [_result("jpeg"), _result("lowlight")], report)[1] == "lowlight"
    noisy = _report({"noise": 0.6, "haze": 0.5})  # a haze found but not kept does not judge it
    assert composed_choice(model, [_result("noise")], noisy)[1] == "noise"
    assert composed_choice(model, [], noisy)[1] == "noise"  # nothing kept: the most severe kind found
    assert composed_choice(model, [], _report({})) == (COMPOSED, "")


def test_benchmark_judges_composed_rows_as_the_session_does():
    from uncertainty import dominant

    row = {"kept": ["jpeg"], "sev_in": {"noise": 0.0, "blur": 0.0, "jpeg": 0.3, "haze": 0.0, "lowlight": 0.7,
                                        "rain": 0.0}}
    assert dominant(row) == "lowlight"
    row["sev_in"].update(lowlight=0.0, haze=0.5)
    assert dominant(row) == "jpeg"


def test_a_photo_term_added_to_the_score_keeps_the_ranking_within_a_photo():
    """``benchmarks/uncertainty.py whole``'s offset fit: log1p(error) ≈ a + b·score + c·term. The
    photos' levels follow the term, the pixels of one photo keep the shipped score's order."""
    from uncertainty import _fit_offset

    rng = np.random.default_rng(0)
    n_feat = 1 + len(FEATURES)
    term = 1 + FEATURES.index("photo_noise")
    coef = np.zeros(n_feat)
    coef[1 + FEATURES.index("change")] = 1.0
    stacks, errs = [], []
    for level in (1.0, 2.0, 3.0, 4.0):
        st = np.zeros((n_feat, 500), np.float32)
        st[0] = 1.0
        st[1 + FEATURES.index("change")] = rng.uniform(0, 1, 500)
        st[term] = level
        stacks.append(st)
        errs.append(np.expm1(0.5 * st[1 + FEATURES.index("change")] + 0.8 * level + rng.normal(0, 0.05, 500)))
    m = _fit_offset(stacks, errs, coef, term)
    assert abs(m.coef[term] - 0.8) < 0.05
    for st in stacks:
        assert np.array_equal(np.argsort(m.score(st), kind="stable"), np.argsort(coef @ st, kind="stable"))


def test_an_offset_of_two_photo_terms_recovers_each_terms_weight():
    """``benchmarks/uncertainty.py noise-offset``'s offset of two whole-photo terms (the noise level and
    the darkness): each term's weight is recovered and the noise level's held-out row levels follow the
    photos' errors (the shipped score alone cannot: it is the same on every photo here)."""
    from uncertainty import _fit_offset, _levels_held_out

    rng = np.random.default_rng(1)
    n_feat = 1 + len(FEATURES)
    change, noise, dark = (1 + FEATURES.index(n) for n in ("change", "photo_noise", "photo_dark"))
    coef = np.zeros(n_feat)
    coef[change] = 1.0
    stacks, errs, photos = [], [], []
    for i in range(12):
        st = np.zeros((n_feat, 400), np.float32)
        st[0] = 1.0
        st[change] = rng.uniform(0, 1, 400)
        st[noise], st[dark] = 0.5 + 0.25 * i, (i % 3) / 2.0
        stacks.append(st)
        errs.append(np.expm1(0.5 * st[change] + 0.6 * st[noise] + 1.5 * st[dark] + rng.normal(0, 0.05, 400)))
        photos.append(f"p{i}")
    m = _fit_offset(stacks, errs, coef, (noise, dark))
    assert abs(m.coef[noise] - 0.6) < 0.05 and abs(m.coef[dark] - 1.5) < 0.05
    families, groups = ["camera"] * 12, ["train-camera"] * 12
    with_terms = _levels_held_out(stacks, errs, photos, families, groups,
                                  lambda s, e: _fit_offset(s, e, coef, (noise, dark)))
    alone = _levels_held_out(stacks, errs, photos, families, groups, lambda s, e: _fit_offset(s, e, coef, ()))
    assert with_terms["row_level_rho"] > 0.9 > alone["row_level_rho"]
    assert with_terms["level_gap"]["camera"] < alone["level_gap"]["camera"]
