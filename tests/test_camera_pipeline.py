"""The camera-realistic degradation pipeline (engine.degrade.camera): seeded, shapes kept, and
noise statistics that behave like a camera's (signal-dependent, spatially and cross-channel
correlated by demosaicing, strength-monotone)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from engine.degrade.camera import (CameraParams, camera_noise, camera_pipeline, inverse_tone_curve, read_for_shot,
                                   sample_camera_params, shot_for_strength, tone_curve)


def _scene(h: int = 96, w: int = 128) -> np.ndarray:
    """A smooth colour ramp with a few edges (no texture, so noise statistics are clean)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([0.1 + 0.8 * x / w, 0.15 + 0.7 * y / h, 0.5 + 0.3 * np.sin(x / 17.0)], axis=2)
    img[h // 3: h // 2, w // 4: w // 2] = (0.8, 0.3, 0.2)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def test_seeded_and_shapes_kept_including_odd_sizes():
    img = _scene(61, 77)
    a, pa = camera_pipeline(img, seed=3)
    b, pb = camera_pipeline(img, seed=3)
    c, _ = camera_pipeline(img, seed=4)
    assert a.shape == img.shape and a.dtype == np.float32
    assert np.array_equal(a, b) and pa == pb
    assert not np.array_equal(a, c)
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert np.array_equal(img, _scene(61, 77))  # input untouched


def test_without_noise_the_colour_round_trip_is_near_exact():
    img = _scene()
    out, _ = camera_pipeline(img, params=CameraParams(), noise=False)
    mse = float(np.mean((out - img) ** 2))
    assert 10 * np.log10(1 / mse) > 45.0
    y = np.linspace(0, 1, 101, dtype=np.float32)
    assert np.allclose(tone_curve(inverse_tone_curve(y)), y, atol=1e-4)


def test_noise_grows_with_strength_and_read_follows_shot():
    img = _scene()
    stds = []
    for s in (0.2, 0.5, 0.8):
        noisy, ref, p = camera_noise(img, s, seed=1, jpeg=False)
        stds.append(float((noisy - ref).std()))
        assert p.read > 0 and p.shot == pytest.approx(shot_for_strength(s))
    assert stds[0] < stds[1] < stds[2]
    assert read_for_shot(1e-3) < read_for_shot(1e-2)
    assert camera_noise(img, 0.0, seed=1)[0].shape == img.shape


def test_noise_is_signal_dependent_and_correlated_like_a_cameras():
    """Poisson–Gaussian noise is larger in brighter linear signal; demosaicing correlates it
    with its neighbours and across channels (white noise would give ≈ 0 for both)."""
    flat_dark = np.full((128, 128, 3), 0.15, np.float32)
    flat_bright = np.full((128, 128, 3), 0.6, np.float32)
    p = CameraParams(shot=4e-3, read=read_for_shot(4e-3), chroma_nr=1.5, demosaic="bilinear")
    n_dark = camera_pipeline(flat_dark, 0, p)[0] - camera_pipeline(flat_dark, 0, p, noise=False)[0]
    n_bright = camera_pipeline(flat_bright, 0, p)[0] - camera_pipeline(flat_bright, 0, p, noise=False)[0]
    assert n_dark.std() != pytest.approx(n_bright.std(), rel=0.1)
    g = n_bright[..., 1]
    lag1 = np.corrcoef(g[:, :-1].ravel(), g[:, 1:].ravel())[0, 1]
    cross = np.corrcoef(n_bright[..., 0].ravel(), n_bright[..., 2].ravel())[0, 1]
    assert lag1 > 0.3 and cross > 0.2


def test_sampled_cameras_cover_jpeg_sharpening_and_second_order():
    rng = np.random.default_rng(0)
    params = [sample_camera_params(rng) for _ in range(200)]
    assert any(p.jpeg_quality is not None for p in params) and any(p.jpeg_quality is None for p in params)
    assert any(p.sharpen > 0 for p in params) and any(p.resize < 1 for p in params)
    assert all(p.jpeg_quality is None or 70 <= p.jpeg_quality <= 96 for p in params)
    out, p = camera_pipeline(_scene(), seed=0, params=sample_camera_params(np.random.default_rng(1), second_order=True))
    assert out.shape == _scene().shape and p.resize < 1


def test_luma_noise_reduction_coarsens_the_grain_and_leaves_the_scene_alone():
    """The in-camera luma NR acts on the noise only: the noise-free output does not depend on it,
    and the noise's neighbour correlation rises towards real cameras' (≈ 0.6 in luma)."""
    img = _scene()
    base = CameraParams(shot=4e-3, read=read_for_shot(4e-3), chroma_nr=3.0, demosaic="bilinear")
    strong = replace(base, luma_nr=1.0)
    assert np.array_equal(camera_pipeline(img, 0, base, noise=False)[0],
                          camera_pipeline(img, 0, strong, noise=False)[0])

    def luma_lag1(p: CameraParams) -> float:
        n = camera_pipeline(img, 0, p)[0] - camera_pipeline(img, 0, p, noise=False)[0]
        y = n @ np.array([0.299, 0.587, 0.114], np.float32)
        return float(np.corrcoef(y[:, :-1].ravel(), y[:, 1:].ravel())[0, 1])

    assert luma_lag1(strong) > luma_lag1(base) + 0.2
    rng = np.random.default_rng(0)
    sampled = [sample_camera_params(rng) for _ in range(100)]
    assert any(p.luma_nr > 0 for p in sampled) and any(p.luma_nr == 0 for p in sampled)
