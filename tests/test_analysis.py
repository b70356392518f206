"""Degradation analyser: report contract, measurements, and accuracy on synthetic degradations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.stats import spearmanr

from engine.analysis import DEFAULT_PRESENCE_THRESHOLD, DegradationReport, analyse
from engine.analysis.measurements import (
    blockiness, chroma_noise_level, edge_width, exposure_statistics, haze_statistics, noise_level, streak_statistics,
)
from engine.degrade import defocus_blur, degrade, gaussian_noise, haze, jpeg, rain
from engine.errors import Cancelled
from engine.kinds import KINDS
from engine.progress import CancelToken, Progress

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), np.float32) / 255.0


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    folder = DATA / "clean"
    if not folder.is_dir():
        pytest.skip("shared data not available")
    # Every 50th file, offset 25: disjoint from the calibration subset (every 12th from 0).
    return [_load(p) for p in sorted(folder.iterdir())[25::50][:8]]


def _severities(images, kind=None, strength=0.0):
    out = []
    for i, img in enumerate(images):
        x = img if kind is None else degrade(img, kind, strength, seed=100 + i)
        out.append(analyse(x).severities())
    return out


def test_report_contract(photos):
    report = analyse(photos[0])
    assert isinstance(report, DegradationReport)
    assert set(report.kinds) == set(KINDS)
    for kind, a in report.kinds.items():
        assert 0.0 <= a.severity <= 1.0 and 0.0 <= a.confidence <= 1.0
        assert a.measurements, kind
    d = report.to_dict()
    assert set(d) == set(KINDS)


def test_clean_photos_mostly_not_flagged(photos):
    flagged = [(i, k) for i, sev in enumerate(_severities(photos)) for k, v in sev.items()
               if v >= DEFAULT_PRESENCE_THRESHOLD]
    assert len(flagged) <= 4, flagged  # of 8 photos × 6 kinds


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_detected_at_strength_06(photos, kind):
    clean = np.array([s[kind] for s in _severities(photos)])
    degraded = np.array([s[kind] for s in _severities(photos, kind, 0.6)])
    assert (degraded >= DEFAULT_PRESENCE_THRESHOLD).sum() >= 7, degraded
    assert np.median(degraded) > np.median(clean) + 0.3


@pytest.mark.parametrize("kind", KINDS)
def test_severity_rank_correlates_with_strength(photos, kind):
    strengths, severities = [], []
    for i, img in enumerate(photos[:3]):
        for s in (0.2, 0.5, 0.8):
            strengths.append(s)
            severities.append(analyse(degrade(img, kind, s, seed=i)).severity(kind))
    rho = spearmanr(strengths, severities).statistic
    assert rho > 0.75, (severities, rho)


def test_mixture_detects_both(photos):
    img = photos[1]
    mixed = degrade(degrade(img, "blur", 0.6, seed=1), "noise", 0.5, seed=2)
    present = analyse(mixed).present()
    assert "noise" in present and "blur" in present


@pytest.mark.parametrize("shape", [(1, 1, 3), (16, 16, 3), (7, 300, 3), (33, 17, 3), (16, 16)])
def test_tiny_and_odd_images(shape):
    img = np.random.default_rng(0).random(shape).astype(np.float32)
    report = analyse(img)
    assert set(report.kinds) == set(KINDS)
    assert all(0.0 <= report.severity(k) <= 1.0 for k in KINDS)


def test_integer_and_flat_inputs():
    u8 = np.full((64, 64, 3), 128, np.uint8)
    report = analyse(u8)
    assert set(report.present()) <= {"haze"}  # a featureless grey frame does look like fog
    black = analyse(np.zeros((40, 40, 3), np.float32))
    assert black.severity("lowlight") > 0.5


def test_large_photo_uses_tiles_and_finds_noise(photos):
    import cv2
    big = cv2.resize(photos[0], (2600, 1800), interpolation=cv2.INTER_LINEAR)
    noisy = degrade(big, "noise", 0.5, seed=0)
    report = analyse(noisy)
    assert report.severity("noise") > 0.3
    assert report.kinds["blur"].measurements["working_scale"] < 1.0


def test_progress_and_cancel(photos):
    seen = []
    analyse(photos[0][:64, :64], Progress(lambda f, m: seen.append(f)))
    assert seen and seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        analyse(photos[0][:64, :64], Progress(None, token))


# ------------------------------------------------------------ measurements on synthetic inputs
def test_noise_level_reads_sigma():
    flat = np.full((256, 256, 3), 0.5, np.float32)
    for sigma in (5.0, 20.0):
        noisy = gaussian_noise(flat, sigma / 255.0, np.random.default_rng(1))
        assert noise_level([noisy])["sigma_255"] == pytest.approx(sigma, rel=0.15)


def test_blockiness_grows_as_quality_drops(photos):
    img = photos[2]
    values = [blockiness([jpeg(img, q)])["blockiness"] for q in (95, 50, 10)]
    assert values[0] < values[1] < values[2]
    assert blockiness([jpeg(img, 10)])["best_phase_x"] == 7.0
    assert blockiness([jpeg(img, 10)[3:, 5:]])["blockiness"] < values[2] / 2  # misaligned grid


def test_edge_width_of_step_and_blurred_step():
    step = np.zeros((64, 64, 3), np.float32)
    step[:, 32:] = 1.0
    sharp = edge_width(step)["edge_width_px"]
    blurred = edge_width(defocus_blur(step, 5.0))["edge_width_px"]
    assert sharp < 4.0 < blurred


def test_exposure_and_haze_statistics(photos):
    img = photos[3]
    assert exposure_statistics(img * 0.2)["exposure_index"] < exposure_statistics(img)["exposure_index"]
    assert haze_statistics(haze(img, 1.5, 0.9))["dark_channel_p10"] > haze_statistics(img)["dark_channel_p10"] + 0.2


def test_streak_statistics_bright_not_dark():
    grey = np.full((160, 160, 3), 0.4, np.float32)
    streaky = rain(grey, 0.002, 25, 10.0, np.random.default_rng(3))
    stats = streak_statistics(streaky)
    assert stats["streak_excess"] > 0.03 and stats["streak_angle_deg"] == 10.0
    dark_lines = 0.8 - (streaky - 0.4)  # same streaks, but dark on bright
    assert streak_statistics(dark_lines)["streak_excess"] < 0.005


def test_chroma_noise_catches_correlated_colour_noise(photos):
    import cv2
    img = photos[4]
    rng = np.random.default_rng(5)
    chroma = rng.standard_normal(img.shape[:2] + (2,)).astype(np.float32)
    chroma = cv2.GaussianBlur(chroma, (0, 0), 1.2) * 0.2  # blotchy colour noise, little luma
    noisy = np.clip(img + np.stack([chroma[..., 0], -0.3 * (chroma[..., 0] + chroma[..., 1]), chroma[..., 1]], 2), 0, 1)
    assert chroma_noise_level([img])["chroma_excess_255"] < 0.5
    assert chroma_noise_level([noisy])["chroma_excess_255"] > 3.0
    assert analyse(noisy).severity("noise") > analyse(img).severity("noise") + 0.1


def test_blur_needs_every_tile_blurred():
    """Blur is present only when even the sharpest tile has wide edges; noise (which narrows every
    tile's edges) and a photo with too few edges to tell leave the edge-width severity as it is."""
    from engine.analysis.analyser import BLUR_GATE_MAX_SIGMA_255, MIN_SHARPEST_BLUR_PX, blur_severity

    sharp_part = {"sharpest_tile_width_px": MIN_SHARPEST_BLUR_PX - 0.5}
    assert blur_severity(0.6, sharp_part) < DEFAULT_PRESENCE_THRESHOLD
    assert blur_severity(0.05, sharp_part) == 0.05
    assert blur_severity(0.6, {"sharpest_tile_width_px": MIN_SHARPEST_BLUR_PX + 0.5}) == 0.6
    assert blur_severity(0.6, {"sharpest_tile_width_px": float("nan")}) == 0.6
    assert blur_severity(0.6, sharp_part, noise_sigma_255=BLUR_GATE_MAX_SIGMA_255 + 1) == 0.6


def test_shallow_depth_of_field_is_not_blur_but_real_shake_is():
    """Real photos: two held-out clean photos given a shallow depth of field (sharp centre, the rest
    defocused) are not called blurry; two real hand-shaken photos (blur_real_levin) are."""

    levin = DATA / "pairs" / "blur_real_levin" / "lq"
    clean = DATA / "clean"
    if not levin.is_dir() or not clean.is_dir():
        pytest.skip("shared data not available")
    from training.data import is_validation

    held_out = [p for p in sorted(clean.iterdir()) if is_validation(p)][:2]
    for path in held_out:
        img = _load(path)
        h, w = img.shape[:2]
        yy, xx = np.mgrid[:h, :w]
        r = np.sqrt(((yy - h / 2) / (h / 4)) ** 2 + ((xx - w / 2) / (w / 4)) ** 2)
        sharp = np.clip((1.15 - r) / 0.3, 0.0, 1.0)[..., None].astype(np.float32)
        dof = sharp * img + (1.0 - sharp) * defocus_blur(img, 6.0)
        report = analyse(dof)
        assert report.severity("blur") < DEFAULT_PRESENCE_THRESHOLD, (path.name, report.kinds["blur"].measurements)
    for path in sorted(levin.iterdir())[:2]:
        assert "blur" in analyse(_load(path)).present(), path.name


def test_a_black_and_white_photo_is_not_called_hazy():
    """The dark channel and the veil's colour are colour evidence: in a gray photo the floor is
    always "grey" and the dark channel is the photo's own brightness, so bright gray photos read
    haze 0.74-1.00 and dehazing them cost 26-31 dB (real PolyU crops made gray). A black-and-white
    photo is never called hazy (the haze slider can still ask for it); the hazy sample in colour is."""
    from engine.analysis.analyser import analyse as handmade
    from engine.pipeline import Restorer
    from engine.experts.base import ExpertRegistry

    sample = np.asarray(Image.open(Path(__file__).resolve().parents[1] / "resources" / "samples"
                                   / "astronaut_hazy.png").convert("RGB"), np.float32) / 255
    gray = np.repeat(sample.mean(axis=2, keepdims=True), 3, axis=2)
    colour_report = Restorer(ExpertRegistry()).session(sample).analyse()
    gray_report = Restorer(ExpertRegistry()).session(gray).analyse()
    assert colour_report.severity("haze") >= DEFAULT_PRESENCE_THRESHOLD
    assert gray_report.severity("haze") <= DEFAULT_PRESENCE_THRESHOLD / 2
    assert gray_report.kinds["haze"].measurements["black_and_white"] == 1.0
    raw = handmade(gray).kinds["haze"]
    assert raw.severity <= DEFAULT_PRESENCE_THRESHOLD / 2 and raw.measurements["veil_floor_chroma"] == 0.0
