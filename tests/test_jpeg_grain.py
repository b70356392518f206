"""engine.analysis.jpeg_grain: the coefficient readings, the bundled detector, and the report rule that makes
noise present where a camera's save shows grain (issue 11)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from engine.analysis.jpeg_grain import (FEATURES, GrainDetector, camera_save, grain_features, quantised_luma,
                                        shared_detector, window, with_grain_evidence)
from engine.analysis.jpeg_tables import (STD_CHROMA, STD_LUMA, JpegQuantisation, JpegSource, ijg_table,
                                         with_file_evidence)
from engine.analysis.report import DEFAULT_PRESENCE_THRESHOLD, DegradationReport, KindAssessment
from engine.degrade.camera import jpeg_round_trip
from engine.kinds import JPEG, NOISE
from engine.pipeline.plan import noise_serves_jpeg
from testdata import REPO, SHARED_DATA


def _quant(q: int) -> JpegQuantisation:
    return JpegQuantisation((ijg_table(STD_LUMA, q), ijg_table(STD_CHROMA, q), ijg_table(STD_CHROMA, q)),
                            ((2, 2), (1, 1), (1, 1)))


def _report(severity: float = 0.0) -> DegradationReport:
    return DegradationReport({NOISE: KindAssessment(severity=severity, confidence=1.0, measurements={})})


def test_quantised_coefficients_are_the_files_integers():
    rng = np.random.default_rng(0)
    ramp = np.linspace(0.2, 0.8, 128, dtype=np.float32)[None, :, None] * np.ones((128, 1, 3), np.float32)
    decoded = jpeg_round_trip(np.clip(ramp + rng.normal(0, 0.02, ramp.shape).astype(np.float32), 0, 1), 75)
    c = quantised_luma(decoded, ijg_table(STD_LUMA, 75))
    assert c.shape == (16, 16, 8, 8)
    assert np.array_equal(c, np.rint(c))
    # a horizontal ramp: every block's (0, 1) coefficient has the same sign
    assert (np.sign(c[..., 0, 1]) == np.sign(c[..., 0, 1]).flat[0]).mean() > 0.9


def test_grain_features_cover_the_detectors_inputs_and_are_finite_on_flat_grey():
    flat = jpeg_round_trip(np.full((256, 256, 3), 0.5, np.float32), 75)
    f = grain_features(flat, ijg_table(STD_LUMA, 75), 75)
    assert set(FEATURES) <= set(f)
    assert f["dcflat_share"] == pytest.approx(1.0)
    assert f["g34_nz"] == 0.0


def test_bundled_detector_loads_and_matches_the_features():
    det = shared_detector()
    assert isinstance(det, GrainDetector)
    assert det.w1.shape == (len(det.b1), len(FEATURES))
    with pytest.raises(ValueError):
        GrainDetector({"features": ["other"], "mean": [0], "std": [1], "w1": [[0]], "b1": [0], "w2": [0],
                       "b2": 0, "threshold": 0})


def test_only_a_cameras_save_is_read():
    assert camera_save(_quant(75)) == 75
    assert camera_save(_quant(60)) == 60
    assert camera_save(_quant(59)) is None
    assert camera_save(_quant(90)) is None


def test_window_is_the_centre_on_the_grid():
    img = np.zeros((700, 900, 3), np.float32)
    win = window(img, _quant(75))
    assert win.shape == (512, 512, 3)
    small = window(np.zeros((100, 130, 3), np.float32), _quant(75))
    assert small.shape == (96, 128, 3)


def test_report_left_alone_where_noise_is_found_or_not_a_cameras_save():
    img = jpeg_round_trip(np.full((128, 128, 3), 0.5, np.float32), 95)
    report = _report(0.0)
    assert with_grain_evidence(report, JpegSource(_quant(95), img)) is report
    noisy = _report(0.4)
    assert with_grain_evidence(noisy, JpegSource(_quant(75), img)) is noisy


def _training_cases():
    files = sorted((SHARED_DATA / "clean").glob("*"))
    if not files:
        pytest.skip("../shared/data/clean is not present")
    sys.path.insert(0, str(REPO / "benchmarks"))
    import jpeg_grain_coherence as jgc
    from _host import shuffled_training_photos
    from training.data import load_uint8, to_float

    # photo 24 of the fit order (sunhays80_canyon): its raw_big case is a fit case that the shipped analysis
    # calls clean; its clean_big case (the same enlarged window, no noise) is a negative
    path = shuffled_training_photos(25, jgc.SEED)[24]
    cases = jgc.make_cases(24, to_float(load_uint8(path)))
    return cases, dict(zip(jgc.KINDS, (int(q) for q in cases["quality"]), strict=True))


def test_grain_on_enlarged_content_makes_noise_present_and_clean_content_does_not():
    cases, q = _training_cases()
    grainy = with_grain_evidence(_report(0.0), JpegSource(_quant(q["raw_big"]), cases["raw_big"]))
    a = grainy.kinds[NOISE]
    assert a.measurements["jpeg_grain_found"] == 1.0
    assert a.severity == DEFAULT_PRESENCE_THRESHOLD
    clean = with_grain_evidence(_report(0.0), JpegSource(_quant(q["clean_big"]), cases["clean_big"]))
    b = clean.kinds[NOISE]
    assert b.measurements["jpeg_grain_found"] == 0.0
    assert b.severity == 0.0
    assert b.measurements["jpeg_grain_score"] < a.measurements["jpeg_grain_score"]


def test_found_grain_hands_the_cameras_save_to_the_noise_stage():
    cases, q = _training_cases()
    quant = _quant(q["raw_big"])
    pixels = DegradationReport({NOISE: KindAssessment(0.0, 1.0, {}), JPEG: KindAssessment(0.0, 1.0, {})})
    filed = with_file_evidence(pixels, quant)
    assert filed.severity(NOISE) < DEFAULT_PRESENCE_THRESHOLD  # no noise found: the JPEG stage alone
    grainy = with_grain_evidence(filed, JpegSource(quant, cases["raw_big"]))
    assert grainy.severity(NOISE) >= DEFAULT_PRESENCE_THRESHOLD
    assert grainy.severity(JPEG) == filed.severity(JPEG) > 0.0
    # noise and a camera's save: the plan lets the noise stage restore the file in place of the JPEG stage
    assert noise_serves_jpeg(grainy) == q["raw_big"]
