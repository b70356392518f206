"""The σ told to FFDNet (engine.analysis.noise_sigma): white noise is told its own σ, correlated
noise more than its fine-scale std, a camera JPEG at least the JPEG stage's σ where the noise
stage stands in for it, and on a camera-pipeline JPEG the new σ restores better than the previous
two-scale rule's."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from testdata import REPO, SHARED_DATA

from engine.analysis.noise_level import nlf_measurements, noise_sigma_for
from engine.analysis.noise_sigma import (NOISE_SERVES_JPEG_MIN_QUALITY, half_resolution_sigma_255, jpeg_floor_255,
                                         told_sigma_255)


def _ramp(h: int = 384, w: int = 384) -> np.ndarray:
    x = np.linspace(0.1, 0.9, w, dtype=np.float32)
    return np.repeat(np.repeat(x[None, :, None], h, axis=0), 3, axis=2)


@pytest.mark.parametrize("sigma", [5.0, 15.0, 25.0])
def test_white_noise_is_told_about_its_own_sigma(sigma):
    rng = np.random.default_rng(int(sigma))
    noisy = np.clip(_ramp() + rng.standard_normal((384, 384, 3)).astype(np.float32) * np.float32(sigma / 255), 0, 1)
    m = nlf_measurements([noisy])
    assert m["nlf_half_255"] == pytest.approx(sigma / 2, rel=0.25)  # 2 x 2 averaging halves white noise
    assert m["sigma_told_255"] == pytest.approx(sigma, rel=0.15)


def test_correlated_noise_reads_higher_at_half_resolution_and_is_told_at_least_its_coarse_std():
    """Noise spread over a few pixels (as demosaicing and in-camera noise reduction leave it)
    averages down less at half resolution than white noise (``nlf_half_255``, reported; the fit
    gave its excess no weight, GAIN_CORRELATED = 0)."""
    rng = np.random.default_rng(4)
    white = rng.standard_normal((384, 384, 3)).astype(np.float32)
    blurred = cv2.GaussianBlur(white, (0, 0), 1.2)
    blurred *= np.float32(6.0 / 255 / blurred.std())
    m = nlf_measurements([np.clip(_ramp() + blurred, 0, 1)])
    assert 2 * m["nlf_half_255"] > 1.3 * m["nlf_coarse_255"]
    assert m["sigma_told_255"] >= m["nlf_coarse_255"]


def test_the_jpeg_floor_applies_only_where_the_noise_stage_stands_in_for_the_jpeg_stage():
    from engine.analysis.jpeg_tables import CLEAN_QUALITY, STD_CHROMA, STD_LUMA, JpegQuantisation, ijg_table
    from engine.experts.jpeg_restore import LUMA_SIGMA_GAIN, prior_sigma_255

    q = 75
    quant = JpegQuantisation((ijg_table(STD_LUMA, q), ijg_table(STD_CHROMA, q), ijg_table(STD_CHROMA, q)),
                             ((2, 2), (1, 1), (1, 1)))
    assert jpeg_floor_255(q) == pytest.approx(prior_sigma_255(quant, LUMA_SIGMA_GAIN))
    assert jpeg_floor_255(None) == 0.0 and jpeg_floor_255(CLEAN_QUALITY) == 0.0
    assert jpeg_floor_255(NOISE_SERVES_JPEG_MIN_QUALITY - 1) == 0.0
    assert told_sigma_255(1.0, 0.6, q) >= jpeg_floor_255(q) > told_sigma_255(1.0, 0.6, None)
    # more noise at either scale is never told less
    for c, h in ((1.0, 0.3), (1.0, 1.5), (4.0, 3.0)):
        assert told_sigma_255(c + 0.5, h) >= told_sigma_255(c, h) and told_sigma_255(c, h + 0.5) >= told_sigma_255(c, h)
    assert half_resolution_sigma_255(np.zeros((16, 16, 3), np.float32)) == 0.0


@pytest.mark.skipif(not (SHARED_DATA / "clean").is_dir(), reason="../shared/data is not present")
@pytest.mark.skipif(not (REPO / "models" / "ffdnet-color.onnx").is_file(), reason="bundled FFDNet not present")
def test_on_a_camera_jpeg_the_new_sigma_restores_better_than_the_previous_rule():
    """A training photo through the camera pipeline (Bayer, Poisson–Gaussian, demosaic, in-camera
    noise reduction, tone curve, JPEG), re-saved at quality 75 as a shared camera JPEG is: FFDNet
    told the session's noise map at the new σ ends closer to the noise-free pipeline output than
    told the previous rule's (fine + 2.5·excess), and closer than the noisy input."""
    from engine.analysis.analyser import measure
    from engine.analysis.jpeg_tables import STD_CHROMA, STD_LUMA, JpegQuantisation, JpegSource, ijg_table
    from engine.degrade.camera import camera_noise, jpeg_round_trip
    from engine.experts.base import ExpertContext
    from engine.experts.published import FFDNetExpert
    from training.data import load_split, load_uint8, to_float

    train, _ = load_split(SHARED_DATA / "clean")
    img = to_float(load_uint8(train[3]))
    y, x = (img.shape[0] - 256) // 2, (img.shape[1] - 256) // 2
    img = np.ascontiguousarray(img[y:y + 256, x:x + 256])
    noisy, ref, _ = camera_noise(img, 0.4, seed=7, jpeg=True)
    q = 75
    noisy = jpeg_round_trip(noisy, q)
    quant = JpegQuantisation((ijg_table(STD_LUMA, q), ijg_table(STD_CHROMA, q), ijg_table(STD_CHROMA, q)),
                             ((2, 2), (1, 1), (1, 1)))
    m = measure(noisy, jpeg_quality=q)["noise"]
    expert = FFDNetExpert(REPO / "models" / "ffdnet-color.onnx", model_id="ffdnet-color", threads=1)

    def psnr_told(told: float) -> float:
        out = expert.run(noisy, ExpertContext(noise_sigma=noise_sigma_for(noisy, dict(m, sigma_told_255=told)),
                                              jpeg=JpegSource(quant, noisy)))
        return float(10 * np.log10(1.0 / np.mean((np.round(out * 255) / 255 - ref) ** 2)))

    base = float(10 * np.log10(1.0 / np.mean((noisy - ref) ** 2)))
    new, old = psnr_told(m["sigma_told_255"]), psnr_told(m["sigma_measured_255"])
    assert m["sigma_told_255"] > m["sigma_measured_255"]
    assert new > old + 0.1 and new > base + 0.5, (base, old, new, m["sigma_told_255"], m["sigma_measured_255"])


@pytest.mark.parametrize("quality", [None, NOISE_SERVES_JPEG_MIN_QUALITY - 1, 90, 95, 100])
def test_where_the_jpeg_floor_is_zero_the_sigma_is_the_coarse_sigma_exactly(quality):
    """PNG/TIFF (``None``), white noise, heavy JPEGs (the JPEG stage runs first) and q ≥ 90 are told
    exactly hypot(1·coarse + 0·excess, 1.5·0): a refit of the camera-JPEG branch (floor > 0) must leave
    them bit for bit as they are (benchmarks/results/real-noise-sigma-jpeg.md)."""
    for coarse in (0.0, 0.4, 1.7, 5.0, 15.3, 25.0, 48.9):
        for half in (0.0, 0.3 * coarse, 0.5 * coarse, 0.9 * coarse + 0.7):
            before = float(np.hypot(1.0 * coarse + 0.0 * max(2.0 * half - coarse, 0.0), 1.5 * 0.0))
            assert told_sigma_255(coarse, half, quality) == before
