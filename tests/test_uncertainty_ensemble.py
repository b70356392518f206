"""The parameter-perturbation ensemble (engine/uncertainty/ensemble.py): shape, range, determinism,
which kinds have one, that it grows where the result hangs on the stage's guesses, its resize to
the photo, and that the model computes it only when a calibration reads it."""

from __future__ import annotations

import numpy as np
import pytest

from engine.degrade import degrade
from engine.uncertainty import default_model
from engine.uncertainty.ensemble import ENSEMBLE_SIDE, parameter_spread, small_copy, spread_rows
from engine.uncertainty.features import FEATURES
from engine.uncertainty.model import SPREAD_FEATURES, KindModel, UncertaintyModel

from testdata import photo


@pytest.mark.parametrize("kind", ["haze", "lowlight", "rain"])
def test_spread_shape_range_and_determinism(kind):
    clean = photo(0, 200)[:150]  # larger than the ensemble's copy, not square
    degraded = degrade(clean, kind, 0.6, seed=4)
    a = parameter_spread(degraded, clean, kind, severity=0.6)
    b = parameter_spread(degraded.copy(), clean.copy(), kind, severity=0.6)
    assert a.dtype == np.float32 and max(a.shape) == ENSEMBLE_SIDE
    assert abs(a.shape[0] / a.shape[1] - 150 / 200) < 0.02
    assert np.all(np.isfinite(a)) and a.min() >= 0.0 and a.max() <= 255.0
    assert np.array_equal(a, b)


def test_kinds_without_an_ensemble():
    img = photo(1, 64)
    assert parameter_spread(img, img, "noise") is None
    assert parameter_spread(img, img, None) is None
    assert parameter_spread(img, img, "composed") is None


def test_haze_spread_grows_with_the_haze():
    """The thicker the veil, the more the dehazed result hangs on the airlight and ω it guessed."""
    clean = photo(2, 96)
    thin = parameter_spread(degrade(clean, "haze", 0.2, seed=1), clean, "haze", severity=0.2)
    thick = parameter_spread(degrade(clean, "haze", 0.8, seed=1), clean, "haze", severity=0.8)
    assert thick.mean() > thin.mean()


def test_lowlight_spread_follows_the_brightness():
    """Another exposure target moves bright pixels further than dark ones."""
    ramp = np.repeat(np.linspace(0.05, 0.6, 64, dtype=np.float32)[None, :, None], 64, axis=0)
    ramp = np.repeat(ramp, 3, axis=2)
    s = parameter_spread(ramp * 0.2, ramp, "lowlight", severity=0.8)
    assert s[:, -8:].mean() > s[:, :8].mean()


def test_spread_rows_match_a_whole_resize():
    import cv2

    small = np.random.default_rng(2).uniform(0, 10, (32, 48)).astype(np.float32)
    whole = cv2.resize(small, (150, 100), interpolation=cv2.INTER_LINEAR)
    assert np.allclose(spread_rows(small, (100, 150), 0, 100), whole, atol=1e-4)
    assert np.allclose(spread_rows(small, (100, 150), 37, 61), whole[37:61], atol=1e-4)
    assert small_copy(np.zeros((40, 60, 3), np.float32)).shape == (40, 60, 3)  # never enlarged


def test_model_reads_the_spread_only_when_calibrated_to(monkeypatch):
    import engine.uncertainty.model as model_mod

    calls = []
    real = model_mod.parameter_spread
    monkeypatch.setattr(model_mod, "parameter_spread", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    clean = photo(3, 96)[:80]
    hazy = degrade(clean, "haze", 0.6, seed=2)
    base = default_model()
    coef = np.zeros(1 + len(FEATURES))
    coef[1 + FEATURES.index(SPREAD_FEATURES[0])] = 1.0
    reading = UncertaintyModel({**base.kinds, "haze": KindModel(coef, np.array([0.0, 6.0]), np.array([0.0, 60.0]))})
    base.predict(hazy, clean, "noise", severity=0.5)
    assert calls == [] and not base.kinds["noise"].uses_spread
    whole = reading.predict(hazy, clean, "haze", severity=0.6)
    assert calls == ["haze"] and reading.kinds["haze"].uses_spread
    monkeypatch.setattr(model_mod, "BAND_ROWS", 24)  # bands of the resized spread join without seams
    assert np.allclose(reading.predict(hazy, clean, "haze", severity=0.6), whole, atol=1e-4)
    expected = np.interp(np.log1p(spread_rows(real(hazy, clean, "haze", severity=0.6), (80, 96), 0, 80)),
                         [0.0, 6.0], [0.0, 60.0])
    assert np.allclose(whole, expected, atol=1e-3)
