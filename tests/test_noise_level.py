"""The noise-level function (engine.analysis.noise_level) on synthetic noise with known
parameters, the map the session tells a denoiser, and the EXIF prior."""

from __future__ import annotations

import numpy as np
import pytest

from engine.analysis.noise_level import (estimate_nlf, iso_prior_sigma, nlf_from_measurements, nlf_measurements,
                                         noise_map, noise_sigma_for)


def _ramp(h: int = 384, w: int = 384) -> np.ndarray:
    """A smooth horizontal intensity ramp 0.05 → 0.95, the same in every channel."""
    x = np.linspace(0.05, 0.95, w, dtype=np.float32)
    return np.repeat(np.repeat(x[None, :, None], h, axis=0), 3, axis=2)


def test_white_noise_sigma_is_recovered_per_channel():
    rng = np.random.default_rng(0)
    sigmas = np.array([4.0, 8.0, 12.0]) / 255.0
    noisy = _ramp() + rng.standard_normal((384, 384, 3)).astype(np.float32) * sigmas.astype(np.float32)
    nlf = estimate_nlf(noisy)
    assert nlf.measured.sum() >= 6
    assert np.allclose(nlf.per_channel(), sigmas, rtol=0.15)


def test_signal_dependent_noise_level_function_is_recovered():
    """Poisson–Gaussian noise, variance = a·x + b with known a, b: the NLF follows √(a·x + b)."""
    a, b = 4e-3, 4e-5
    clean = _ramp()
    rng = np.random.default_rng(1)
    noisy = clean + rng.standard_normal(clean.shape).astype(np.float32) * np.sqrt(a * clean + b)
    nlf = estimate_nlf(np.clip(noisy, 0, 1))
    for i in np.flatnonzero(nlf.measured):
        x = nlf.intensities[i]
        assert nlf.sigma[i].mean() == pytest.approx(np.sqrt(a * x + b), rel=0.2), x
    assert nlf.sigma[nlf.measured][-1].mean() > 1.5 * nlf.sigma[nlf.measured][0].mean()


def test_noise_map_follows_intensity_and_the_session_value_is_scaled_to_the_told_sigma():
    a, b = 4e-3, 4e-5
    clean = _ramp(256, 256)
    noisy = np.clip(clean + np.random.default_rng(2).standard_normal(clean.shape).astype(np.float32)
                    * np.sqrt(a * clean + b), 0, 1)
    m = nlf_measurements([noisy])
    nlf = nlf_from_measurements(m)
    assert nlf is not None and nlf.sigma.shape == (8, 3)
    raw = noise_map(noisy, nlf)
    assert raw.shape == noisy.shape and raw[:, -10:].mean() > raw[:, :10].mean()
    told = noise_sigma_for(noisy, m)
    assert told.shape == noisy.shape
    assert float(np.median(told.mean(axis=2))) == pytest.approx(m["sigma_told_255"] / 255, rel=0.25)
    assert noise_sigma_for(noisy, {}) is None


def test_clean_flat_photo_reads_near_zero_and_iso_prior_is_monotone():
    assert estimate_nlf(_ramp()).per_channel().max() < 1.0 / 255
    assert iso_prior_sigma(None) == 0.0 and iso_prior_sigma(400) == 0.0
    assert 0 < iso_prior_sigma(1600) < iso_prior_sigma(6400) < iso_prior_sigma(25600)
    assert iso_prior_sigma(6400, exposure_s=1.0) > iso_prior_sigma(6400, exposure_s=0.01)
    tiny = estimate_nlf(np.zeros((4, 4, 3), np.float32))
    assert not tiny.measured.any() and tiny.peak() == 0.0


def test_exif_prior_makes_noise_present_only_when_the_pixels_confirm_it():
    """A high EXIF ISO makes camera noise present when the photo still measures at least half the
    prior's σ; a clean (or denoised) photo with the same EXIF is not called noisy."""
    from engine.analysis.analyser import analyse
    from engine.analysis.noise_level import prior_confirms_noise, prior_severity

    assert not prior_confirms_noise(5.0, 0.0) and prior_confirms_noise(1.0, 1.6) and not prior_confirms_noise(0.5, 1.6)
    assert not prior_confirms_noise(5.0, 0.2)  # ISO just above the base: too weak a prior to decide anything
    rng = np.random.default_rng(4)
    faint = np.clip(_ramp(256, 256) + rng.standard_normal((256, 256, 3)).astype(np.float32) * 2.5 / 255, 0, 1)
    without = analyse(faint)
    assert without.severity("noise") < 0.15 and without.kinds["noise"].measurements["exif_present"] == 0.0
    with_iso = analyse(faint, iso=6400)
    m = with_iso.kinds["noise"].measurements
    assert m["exif_present"] == 1.0 and m["iso_prior_255"] > 0
    assert with_iso.severity("noise") >= 0.15 and with_iso.severity("noise") == pytest.approx(
        max(prior_severity(m), without.severity("noise")))
    assert analyse(_ramp(256, 256), iso=6400).severity("noise") < 0.15


def test_exif_confirmed_noise_overrides_the_networks_absent_verdict():
    from engine.analysis.learned import combine
    from engine.analysis.report import DegradationReport, KindAssessment
    from engine.kinds import KINDS

    def report(sev: float, **noise_m: float) -> DegradationReport:
        return DegradationReport({k: KindAssessment(sev if k == "noise" else 0.0,
                                                    measurements=dict(noise_m) if k == "noise" else {}) for k in KINDS})

    learned_absent = report(0.02, probability=0.1, strength=0.05)
    assert combine(report(0.2, exif_present=1.0), learned_absent).severity("noise") >= 0.15
    assert combine(report(0.2, exif_present=0.0), learned_absent).severity("noise") < 0.15


def test_exif_only_noise_is_told_at_most_a_few_times_the_prior():
    from engine.analysis.noise_level import PRIOR_MAX_RATIO, cap_told_by_prior

    m = {"exif_present": 1.0, "iso_prior_255": 1.5, "sigma_told_255": 9.0}
    cap_told_by_prior(m, pixels_say_present=True)
    assert m["sigma_told_255"] == 9.0
    cap_told_by_prior(m, pixels_say_present=False)
    assert m["sigma_told_255"] == pytest.approx(PRIOR_MAX_RATIO * 1.5)
    m = {"exif_present": 0.0, "iso_prior_255": 1.5, "sigma_told_255": 9.0}
    cap_told_by_prior(m, pixels_say_present=False)
    assert m["sigma_told_255"] == 9.0
