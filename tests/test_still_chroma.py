"""Colour noise in still areas (engine.analysis.noise_level.still_chroma): the digital-camera noise
signature the noise level alone misses, its quality-dependent clean-photo threshold, and how its
verdict reaches the plan."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.analysis.noise_level import (STILL_CHROMA_MAX_LUMA_RATIO, STILL_THRESHOLDS, still_chroma,
                                         still_chroma_severity,
                                         still_threshold_255)
from testdata import SHARED_DATA


def _flat(h: int = 256, w: int = 256, level: float = 0.45) -> np.ndarray:
    """A flat grey wall with a faint, smooth horizontal shading."""
    x = np.linspace(level - 0.03, level + 0.03, w, dtype=np.float32)
    return np.repeat(np.repeat(x[None, :, None], h, axis=0), 3, axis=2).copy()


def _blotches(shape: tuple[int, int], amplitude_255: float, seed: int) -> np.ndarray:
    """Colour noise as a camera leaves it: white noise in Cb and Cr blurred to 2-px blotches,
    converted to RGB (luma unchanged), 8-bit levels of chroma std ≈ ``amplitude_255``."""
    rng = np.random.default_rng(seed)
    planes = []
    for _ in range(2):
        n = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), 2.0)
        planes.append(n / n.std() * amplitude_255 / 255.0)
    cb, cr = planes
    r = 1.402 * cr
    g = -0.344136 * cb - 0.714136 * cr
    b = 1.772 * cb
    return np.stack([r, g, b], axis=2).astype(np.float32)


def _grain(shape: tuple[int, int], amplitude_255: float, seed: int) -> np.ndarray:
    """Luma grain correlated over about a pixel, std ≈ ``amplitude_255`` levels in R, G and B alike."""
    n = cv2.GaussianBlur(np.random.default_rng(seed).standard_normal(shape).astype(np.float32), (0, 0), 0.8)
    return (n / n.std() * amplitude_255 / 255.0)[..., None]


def _sensor_noise(shape: tuple[int, int], amplitude_255: float, seed: int) -> np.ndarray:
    """Camera noise: colour blotches with the luma grain of the same strength that comes with them."""
    return _blotches(shape, amplitude_255, seed) + _grain(shape, amplitude_255, seed + 100)


def test_colour_blotches_on_a_flat_wall_are_found_and_luma_grain_is_not():
    wall = _flat()
    assert still_chroma([wall])["still_chroma_255"] == pytest.approx(0.0, abs=1e-3)
    blotchy = np.clip(wall + _sensor_noise(wall.shape[:2], 3.0, seed=1), 0, 1)
    m = still_chroma([blotchy])
    assert m["still_chroma_present"] == 1.0 and m["still_chroma_255"] > 2 * m["still_threshold_255"]
    assert m["still_blocks"] >= 200
    # Grain of the same strength in luma only (film grain, texture) is not colour noise.
    grain = cv2.GaussianBlur(np.random.default_rng(2).standard_normal(wall.shape[:2]).astype(np.float32), (0, 0), 0.6)
    grainy = np.clip(wall + (grain / grain.std() * 1.0 / 255)[..., None], 0, 1)
    g = still_chroma([grainy])
    assert g["still_chroma_present"] == 0.0 and g["still_chroma_255"] < 0.2
    # Deterministic, and the severity rises with the amount of colour noise.
    assert still_chroma([blotchy]) == m
    stronger = still_chroma([np.clip(wall + _sensor_noise(wall.shape[:2], 6.0, seed=1), 0, 1)])
    assert 0.15 <= still_chroma_severity(m) < still_chroma_severity(stronger) <= 1.0
    assert still_chroma_severity(g) == 0.0
    # Colour without the luma grain sensor noise brings (a coloured texture on a smooth surface) is not noise.
    tinted = still_chroma([np.clip(wall + _blotches(wall.shape[:2], 3.0, seed=1), 0, 1)])
    assert tinted["still_chroma_255"] == pytest.approx(m["still_chroma_255"], rel=0.05)
    assert tinted["still_chroma_255"] > STILL_CHROMA_MAX_LUMA_RATIO * tinted["still_chroma_luma_255"]
    assert tinted["still_chroma_present"] == 0.0


def test_a_textured_photo_has_no_still_blocks_and_tiny_photos_measure_nothing():
    rng = np.random.default_rng(3)
    texture = np.clip(cv2.GaussianBlur(rng.random((256, 256, 3)).astype(np.float32), (0, 0), 3.0) * 4 - 1.5, 0, 1)
    m = still_chroma([texture])
    assert m["still_blocks"] < 8 and m["still_chroma_255"] == 0.0 and m["still_chroma_present"] == 0.0
    tiny = still_chroma([np.full((8, 8, 3), 0.5, np.float32)])
    assert tiny["still_blocks"] == 0.0 and tiny["still_chroma_255"] == 0.0


def test_the_threshold_falls_with_the_files_jpeg_quality():
    qs = [q for q, _ in STILL_THRESHOLDS]
    assert qs == sorted(qs)
    assert still_threshold_255(None) == STILL_THRESHOLDS[-1][1]
    assert still_threshold_255(40) == STILL_THRESHOLDS[0][1]
    assert still_threshold_255(75) <= still_threshold_255(85) <= still_threshold_255(100)
    assert all(0.1 < t < 2.0 for _, t in STILL_THRESHOLDS)


def test_still_colour_noise_overrides_the_networks_absent_verdict():
    from engine.analysis.learned import combine
    from engine.analysis.report import DegradationReport, KindAssessment
    from engine.kinds import KINDS

    def report(sev: float, **noise_m: float) -> DegradationReport:
        return DegradationReport({k: KindAssessment(sev if k == "noise" else 0.0,
                                                    measurements=dict(noise_m) if k == "noise" else {}) for k in KINDS})

    learned_absent = report(0.02, probability=0.1, strength=0.05)
    assert combine(report(0.3, still_chroma_present=1.0), learned_absent).severity("noise") == pytest.approx(0.3)
    assert combine(report(0.3, still_chroma_present=0.0), learned_absent).severity("noise") < 0.15


def test_the_session_analyses_with_the_jpeg_files_quality():
    """The orchestrator tells the analysis the quality the file's tables state."""
    from engine.analysis.jpeg_tables import STD_CHROMA, STD_LUMA, JpegQuantisation, ijg_table
    from engine.experts.base import ExpertRegistry
    from engine.pipeline.orchestrator import Orchestrator

    quant = JpegQuantisation((ijg_table(STD_LUMA, 75), ijg_table(STD_CHROMA, 75), ijg_table(STD_CHROMA, 75)),
                             ((2, 2), (1, 1), (1, 1)))
    session = Orchestrator(ExpertRegistry()).session(_flat(64, 64), jpeg=quant)
    assert session.analyser.keywords["jpeg_quality"] == 75
    assert getattr(Orchestrator(ExpertRegistry()).session(_flat(64, 64)).analyser, "keywords", {}) == {}


needs_real = pytest.mark.skipif(not (SHARED_DATA / "real" / "noisy_window.png").is_file(),
                                reason="../shared/data/real is not present")


@needs_real
def test_the_real_noisy_window_reads_noisy_and_a_clean_photo_does_not():
    from engine.analysis.analyser import analyse
    from engine.imageio import load_photo

    window = analyse(load_photo(SHARED_DATA / "real" / "noisy_window.png").pixels)
    m = window.kinds["noise"].measurements
    assert m["still_chroma_present"] == 1.0 and window.severity("noise") >= 0.15
    clean = load_photo(SHARED_DATA / "clean" / "bsds500_test_100007.jpg")
    assert analyse(clean.pixels).kinds["noise"].measurements["still_chroma_present"] == 0.0


def test_a_deblurrer_is_not_kept_for_smoothing_away_colour_blotches():
    """Where noise rests on still-area colour evidence, only the noise stage is credited when that
    noise goes away: a deblurrer that smooths the blotches while failing at its own kind is dropped,
    and the noise stage itself is still judged on the noise severity."""
    from engine.analysis.report import DegradationReport, KindAssessment
    from engine.kinds import KINDS
    from engine.pipeline.orchestrator import judge
    from engine.pipeline.plan import Stage
    from engine.pipeline.session import StageResult

    def report(noise: float, blur: float, evidence: float) -> DegradationReport:
        return DegradationReport({k: KindAssessment({"noise": noise, "blur": blur}.get(k, 0.0),
                                                    measurements={"still_chroma_present": evidence, "nlf_fine_255": 2.0}
                                                    if k == "noise" else {}) for k in KINDS})

    def judged(stage: str, before: DegradationReport, after: DegradationReport) -> StageResult:
        result = StageResult(stage, "x", "k", np.zeros((2, 2, 3), np.float32), 0.0, output_report=after)
        judge(result, Stage(stage, "x"), before)
        return result

    # Blur unchanged, the blotches gone: dropped with still-area evidence, kept without it (the old rule).
    assert judged("blur", report(0.2, 0.4, 1.0), report(0.0, 0.4, 0.0)).dropped
    assert not judged("blur", report(0.2, 0.4, 0.0), report(0.0, 0.4, 0.0)).dropped
    # The noise stage removing them is kept; a deblurrer that deblurs is kept too.
    assert not judged("noise", report(0.2, 0.4, 1.0), report(0.0, 0.4, 0.0)).dropped
    assert not judged("blur", report(0.2, 0.4, 1.0), report(0.0, 0.2, 0.0)).dropped
