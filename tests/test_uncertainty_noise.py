"""The noise calibration's contracts (engine/uncertainty, issue 15): the benchmark's whole-photo path
computes the map the crop path computes, and the composed result's noise model's expected error follows
the analysed noise level (a weakly noisy camera photo is not judged at the strong synthetic noise's
level). The noise stage's own model kept the shipped score (benchmarks/results/uncertainty.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from engine.degrade import degrade
from engine.uncertainty import UNCERTAIN_LEVELS, default_model
from engine.uncertainty.features import noise_plane

from testdata import photo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def _row(stage: str, before: np.ndarray, after: np.ndarray, truth: np.ndarray, sigma: float) -> dict:
    from engine.uncertainty.features import absolute_error
    sev = {"noise": 0.4, "blur": 0.0, "jpeg": 0.1, "haze": 0.0, "lowlight": 0.0, "rain": 0.0}
    return {"stage": stage, "kept": ["noise"], "sev_in": sev, "sev_out": dict(sev, noise=0.05),
            "before": before, "after": after, "err": absolute_error(after, truth),
            "sigma": noise_plane(sigma, before.shape[:2])}


@pytest.mark.parametrize("stage", ["noise", "composed"])
def test_the_whole_photo_benchmark_computes_the_crop_benchmarks_map(stage, monkeypatch):
    """``benchmarks/uncertainty.py fullsize`` predicts in bands, as the CLI does; ``eval`` from one
    feature stack: the same map, and the same model judging the row."""
    import engine.uncertainty.model as model_mod
    from uncertainty import model_for_row, predict_row

    clean = photo(2, 96)[:90]
    noisy = degrade(clean, "noise", 0.4, seed=5)
    smooth = np.clip(0.3 * noisy + 0.7 * clean, 0, 1).astype(np.float32)
    r = _row(stage, noisy, smooth, clean, 0.03)
    model = default_model()
    how = model.meta.get("composed_by", "pooled")
    key, kind = model_for_row(model, r, how)
    assert key == ("noise" if stage == "noise" else "composed:noise") and kind == "noise"
    monkeypatch.setattr(model_mod, "BAND_ROWS", 32)
    banded = model.predict(r["before"], r["after"], key, noise_sigma=r["sigma"] / np.float32(255.0),
                           severity=r["sev_in"]["noise"], severity_after=r["sev_out"]["noise"])
    assert np.allclose(banded, predict_row(model, dict(r), how), atol=1e-3)


@pytest.mark.parametrize("name", ["composed:noise"])
def test_the_noise_models_level_follows_the_analysed_noise(name):
    """The same denoised photo judged with a weak and a strong analysed noise level: the weak one's
    expected error is lower, and below the uncertain threshold on most of the photo (a camera photo
    at a moderate ISO is not "100 % uncertain"); the strong one's is above it on most."""
    clean = photo(1, 96)
    weak_in = degrade(clean, "noise", 0.1, seed=1)
    weak_out = np.clip(0.15 * weak_in + 0.85 * clean, 0, 1).astype(np.float32)
    strong_in = degrade(clean, "noise", 0.9, seed=1)
    strong_out = np.clip(0.3 * strong_in + 0.7 * clean, 0, 1).astype(np.float32)
    model = default_model()
    weak = model.predict(weak_in, weak_out, name, noise_sigma=2.0 / 255.0, severity=0.15, severity_after=0.05)
    strong = model.predict(strong_in, strong_out, name, noise_sigma=40.0 / 255.0, severity=0.8, severity_after=0.1)
    assert weak.mean() < strong.mean()
    assert (weak > UNCERTAIN_LEVELS).mean() < 0.5 < (strong > UNCERTAIN_LEVELS).mean()
