"""An uncertainty map stops midway when its progress is cancelled (the window's superseded or
closing map): the model's band loop and the feature planes check the engine's progress, the
check raises :class:`engine.errors.Cancelled`, and nothing of the stopped map is cached."""

from __future__ import annotations

import numpy as np
import pytest

from engine.degrade import degrade
from engine.errors import Cancelled
from engine.progress import CancelToken, Progress
from engine.uncertainty import default_model

from testdata import photo


class CancelAt(Progress):
    """A progress whose token is cancelled at its ``at``-th check (``None``: never); counts checks."""

    def __init__(self, at=None) -> None:
        super().__init__(cancel=CancelToken())
        self.at, self.calls = at, 0

    def check(self) -> None:
        self.calls += 1
        if self.at is not None and self.calls >= self.at:
            self.cancel.cancel()
        super().check()


def _pair():
    clean = photo(2, 90)[:77]
    noisy = degrade(clean, "noise", 0.5, seed=4)
    return noisy, np.clip(noisy * 0.4 + clean * 0.6, 0, 1).astype(np.float32)


@pytest.fixture
def counted_bands(monkeypatch):
    """Small bands (77 rows: 4 of them) and a count of the bands whose features were computed."""
    import engine.uncertainty.model as model_mod

    monkeypatch.setattr(model_mod, "BAND_ROWS", 20)
    done = []
    real = model_mod.feature_stack

    def counted(*args, **kwargs):
        stack = real(*args, **kwargs)
        done.append(1)
        return stack

    monkeypatch.setattr(model_mod, "feature_stack", counted)
    return done


def test_a_progress_that_is_never_cancelled_changes_nothing(counted_bands):
    noisy, smooth = _pair()
    model = default_model()
    plain = model.predict(noisy, smooth, "noise", noise_sigma=0.04, severity=0.5, severity_after=0.1, step=2)
    watched = CancelAt()
    checked = model.predict(noisy, smooth, "noise", noise_sigma=0.04, severity=0.5, severity_after=0.1, step=2,
                            progress=watched)
    assert np.array_equal(plain, checked)
    assert watched.calls > 4 * len(model.for_kind("noise").used)  # every band, between the planes its model reads


@pytest.mark.parametrize("kind", ["noise", "haze"])  # haze: a model that reads the ensemble's spread
def test_the_band_loop_stops_at_the_check_that_raises(counted_bands, kind):
    noisy, smooth = _pair()
    model = default_model()
    total = CancelAt()
    model.predict(noisy, smooth, kind, noise_sigma=0.04, severity=0.5, step=2, progress=total)
    assert len(counted_bands) == 4
    for at in (1, total.calls // 2, total.calls):
        counted_bands.clear()
        stop = CancelAt(at)
        with pytest.raises(Cancelled):
            model.predict(noisy, smooth, kind, noise_sigma=0.04, severity=0.5, step=2, progress=stop)
        assert stop.calls == at  # no check (so no work) after the one that raised
        if at == 1:
            assert counted_bands == []
        elif at == total.calls:  # the last check, after the last band
            assert len(counted_bands) == 4
        else:
            assert 0 < len(counted_bands) < 4


def test_the_feature_planes_stop_at_the_check_that_raises(monkeypatch):
    """Within one band: :func:`raw_planes` stops between its planes, not after all of them."""
    import engine.uncertainty.features as features

    noisy, smooth = _pair()
    boxes = []
    real = features._box
    monkeypatch.setattr(features, "_box", lambda *a, **k: boxes.append(1) or real(*a, **k))
    full = features.raw_planes(noisy, smooth, noise_sigma=0.04, progress=CancelAt())
    every = len(boxes)
    boxes.clear()
    with pytest.raises(Cancelled):
        features.raw_planes(noisy, smooth, noise_sigma=0.04, progress=CancelAt(5))
    assert 0 < len(boxes) < every
    assert np.array_equal(full, features.raw_planes(noisy, smooth, noise_sigma=0.04))
    with pytest.raises(Cancelled):  # the raw planes are made (16 checks), the features are not
        features.feature_stack(noisy, smooth, noise_sigma=0.04, progress=CancelAt(20))


def _session():
    from engine.experts.default import build_registry
    from engine.pipeline.job import Restorer, RestoreOptions

    restorer = Restorer(build_registry())
    session = restorer.session(degrade(photo(5, 96), "noise", 0.5, seed=9))
    plan = restorer.plan_for(session, RestoreOptions(auto=False, only=("noise",)))
    session.run(plan)
    return session, plan.strengths()


def test_a_stopped_map_caches_nothing_and_the_next_one_is_whole(counted_bands):
    from engine.uncertainty import SessionUncertainty

    session, strengths = _session()
    expected_full = SessionUncertainty(session).composed(strengths)  # the CLI's map
    expected_text = SessionUncertainty(session, max_pixels=96 * 96 // 4).describe(strengths)
    window = SessionUncertainty(session, max_pixels=96 * 96 // 4)
    assert window.step == 2
    for make, bands in ((window.composed, 3), (window.full, 5), (window.describe, 5)):  # bands of 20 rows
        total = CancelAt()
        make(strengths, progress=total)
        window = SessionUncertainty(session, max_pixels=96 * 96 // 4)  # (made: start again)
        for at in (1, total.calls // 2, total.calls):
            counted_bands.clear()
            with pytest.raises(Cancelled):
                make.__func__(window, strengths, progress=CancelAt(at))
            assert len(counted_bands) <= bands
            assert window.composed(strengths, compute=False) is None
            assert window.full(strengths, compute=False) is None
            assert window.describe(strengths, compute=False) is None
    assert np.allclose(window.full(strengths, progress=CancelAt()), expected_full[::2, ::2], atol=1e-4)
    assert window.describe(strengths, progress=CancelAt()) == expected_text
    assert np.array_equal(window.composed(strengths, progress=CancelAt()),
                          SessionUncertainty(session, max_pixels=96 * 96 // 4).composed(strengths))
