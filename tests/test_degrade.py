"""Synthetic degradations: contracts (shape, dtype, range, determinism, identity) and physics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.degrade import (
    KIND_PARAMETERS, defocus_blur, degradation_parameters, degrade, degrade_chain, disk_kernel, gaussian_noise,
    haze, jpeg, lowlight, motion_blur, motion_kernel, poisson_gaussian_noise, rain,
)
from engine.kinds import KINDS

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _photo() -> np.ndarray:
    path = DATA / "clean" / "bsds500_test_100007.jpg"
    if not path.exists():
        pytest.skip("shared data not available")
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), np.float32)[:128, :160] / 255.0


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return _photo()


def _blockiness(img: np.ndarray) -> float:
    """Mean |horizontal step| across 8-px block boundaries over mean step inside blocks."""
    g = img.mean(axis=2)
    d = np.abs(np.diff(g, axis=1))
    cols = np.arange(d.shape[1])
    return float(d[:, cols % 8 == 7].mean() / (d[:, cols % 8 != 7].mean() + 1e-6))


@pytest.mark.parametrize("kind", KINDS)
def test_contract_shape_dtype_range_identity_determinism(photo, kind):
    before = photo.copy()
    zero = degrade(photo, kind, 0.0, seed=3)
    assert zero.dtype == np.float32 and np.array_equal(zero, photo)
    a = degrade(photo, kind, 0.7, seed=3)
    b = degrade(photo, kind, 0.7, seed=3)
    assert a.shape == photo.shape and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert np.array_equal(a, b)
    assert np.array_equal(photo, before), "input was modified"
    assert np.abs(a - photo).mean() > 1e-3, "strength 0.7 changed nothing"
    assert kind in KIND_PARAMETERS


@pytest.mark.parametrize("kind", ["noise", "rain"])
def test_seeds_differ(photo, kind):
    assert not np.array_equal(degrade(photo, kind, 0.5, seed=1), degrade(photo, kind, 0.5, seed=2))


@pytest.mark.parametrize("kind", KINDS)
def test_difference_grows_with_strength(photo, kind):
    errs = [np.abs(degrade(photo, kind, s, seed=5) - photo).mean() for s in (0.2, 0.5, 0.9)]
    assert errs[0] < errs[1] < errs[2]


def test_noise_std_matches_sigma():
    flat = np.full((200, 200, 3), 0.5, np.float32)
    for s in (0.2, 0.6):
        for seed in range(6):
            out = degrade(flat, "noise", s, seed=seed)
            assert out.std() == pytest.approx(50 / 255 * s, rel=0.08)


def test_poisson_gaussian_is_signal_dependent():
    rng = np.random.default_rng(0)
    dark = poisson_gaussian_noise(np.full((100, 100, 3), 0.1, np.float32), 200.0, 0.005, rng)
    bright = poisson_gaussian_noise(np.full((100, 100, 3), 0.8, np.float32), 200.0, 0.005, rng)
    assert dark.std() < bright.std()
    assert bright.std() == pytest.approx(np.sqrt(0.8 / 200 + 0.005 ** 2), rel=0.08)
    both = {degradation_parameters("noise", 0.5, seed)["variant"] for seed in range(20)}
    assert both == {"gaussian", "poisson_gaussian"}


def test_gaussian_noise_zero_sigma_identity(photo):
    assert np.array_equal(gaussian_noise(photo, 0.0, np.random.default_rng(0)), photo)


def test_kernels_normalised_and_sized():
    for length in (3, 10.5, 21):
        k = motion_kernel(length, 33.0)
        assert k.sum() == pytest.approx(1.0, abs=1e-5) and k.shape[0] % 2 == 1
        assert k.shape[0] >= length
    d = disk_kernel(4.0)
    assert d.sum() == pytest.approx(1.0, abs=1e-5)
    assert d[d.shape[0] // 2, d.shape[1] // 2] > 0 and d[0, 0] == 0


def test_motion_blur_is_directional():
    img = np.zeros((61, 61, 3), np.float32)
    img[30, 30] = 1.0
    horiz = motion_blur(img, 15, 0.0)[..., 0]
    assert (horiz[30] > 0).sum() >= 13 and (horiz[:, 30] > 1e-3).sum() <= 3
    vert = motion_blur(img, 15, 90.0)[..., 0]
    assert (vert[:, 30] > 0).sum() >= 13 and (vert[30] > 1e-3).sum() <= 3
    disk = defocus_blur(img, 5.0)[..., 0]
    assert (disk[30] > 0).sum() == (disk[:, 30] > 0).sum()


def test_blur_keeps_mean_and_removes_detail(photo):
    out = degrade(photo, "blur", 0.8, seed=0)
    assert out.mean() == pytest.approx(photo.mean(), abs=0.01)
    assert np.abs(np.diff(out, axis=1)).mean() < 0.7 * np.abs(np.diff(photo, axis=1)).mean()


def test_jpeg_blockiness_grows_as_quality_drops(photo):
    values = [_blockiness(jpeg(photo, q)) for q in (95, 50, 10)]
    assert values[0] < values[1] < values[2]
    assert values[2] > 1.3


def test_jpeg_quality_mapping():
    assert degradation_parameters("jpeg", 1.0)["quality"] == 10
    assert degradation_parameters("jpeg", 0.5)["quality"] == 52


def test_haze_lifts_dark_pixels_and_lowers_contrast(photo):
    out = haze(photo, 2.0, 0.9)
    assert np.percentile(out.min(axis=2), 5) > np.percentile(photo.min(axis=2), 5) + 0.2
    assert out.std() < photo.std()
    depth = np.ones(photo.shape[:2], np.float32)
    assert np.allclose(haze(photo, 50.0, 0.8, depth), 0.8, atol=1e-4)


def test_thin_indoor_haze_is_a_thin_veil_over_a_warmer_more_saturated_room(photo):
    from engine.degrade.weather import indoor_scene, thin_indoor_haze

    room = indoor_scene(photo, np.random.default_rng(3))
    assert room.dtype == np.float32 and room.shape == photo.shape
    wall = np.tile(np.array([0.5, 0.3, 0.3], np.float32), (8, 8, 1))
    red = indoor_scene(wall, np.random.default_rng(3))[0, 0]
    assert red[0] - red[2] > 0.2  # a reddish wall comes out redder
    assert room[..., 0].mean() / room[..., 2].mean() > photo[..., 0].mean() / photo[..., 2].mean()
    for seed in range(4):
        out = thin_indoor_haze(photo, np.random.default_rng(seed))
        again = thin_indoor_haze(photo, np.random.default_rng(seed))
        assert np.array_equal(out, again)
        veiled = indoor_scene(photo, np.random.default_rng(seed))
        lift = out.min(axis=2) - veiled.min(axis=2)
        assert np.percentile(lift, 5) > 0.0  # the veil lifts every part of the view
        assert 0.0 < np.median(lift) < 0.45  # but thinly


def test_lowlight_darkens_and_adds_noise(photo):
    out = lowlight(photo, 0.1, 1.2, np.random.default_rng(0), noise=0.002)
    assert out.mean() < 0.45 * photo.mean()
    flat = np.full((64, 64, 3), 0.5, np.float32)
    assert lowlight(flat, 0.1, 1.0, np.random.default_rng(0), noise=0.002).std() > 0.005
    with pytest.raises(ValueError):
        lowlight(flat, 0.1, 1.0, None, noise=0.01)


def test_rain_streaks_are_bright_and_oriented():
    grey = np.full((128, 128, 3), 0.3, np.float32)
    out = rain(grey, 0.004, 25, 0.0, np.random.default_rng(1))
    assert out.min() >= 0.3 - 1e-6 and out.max() > 0.6
    layer = out[..., 0] - 0.3
    # Vertical streaks: neighbours along the column agree much more than along the row.
    vert = np.corrcoef(layer[1:].ravel(), layer[:-1].ravel())[0, 1]
    horz = np.corrcoef(layer[:, 1:].ravel(), layer[:, :-1].ravel())[0, 1]
    assert vert > horz + 0.2


def test_chain_order_and_determinism(photo):
    steps = [("blur", 0.5), ("noise", 0.4), ("jpeg", 0.6)]
    a = degrade_chain(photo, steps, seed=9)
    assert np.array_equal(a, degrade_chain(photo, steps, seed=9))
    assert not np.array_equal(a, degrade_chain(photo, steps[::-1], seed=9))
    assert not np.array_equal(a, degrade_chain(photo, steps, seed=10))
    assert np.array_equal(degrade_chain(photo, [], seed=1), photo)
    # Noise after blur is not blurred away: high frequencies are larger than blur alone.
    blurred = degrade(photo, "blur", 0.5)
    assert np.abs(np.diff(a, axis=1)).mean() > np.abs(np.diff(blurred, axis=1)).mean()


def test_accepts_grey_and_uint8_and_tiny():
    grey = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    assert degrade(grey, "noise", 0.5).shape == (16, 16, 3)
    u8 = (np.random.default_rng(0).random((9, 7, 3)) * 255).astype(np.uint8)
    for kind in KINDS:
        out = degrade(u8, kind, 1.0, seed=2)
        assert out.shape == (9, 7, 3) and out.dtype == np.float32


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_rejects_bad_strength(photo, bad):
    with pytest.raises(ValueError):
        degrade(photo, "noise", bad)


def test_rejects_unknown_kind(photo):
    with pytest.raises(ValueError):
        degrade(photo, "fog", 0.5)
