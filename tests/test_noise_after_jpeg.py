"""A noise stage after a kept JPEG stage is skipped and judged by the noise the photo read before it
(engine.pipeline.orchestrator.noise_read_before_jpeg): the JPEG restorer smooths the fine-scale
noise the analysis reads, not the coarser noise the noise stage still removes."""

from __future__ import annotations

from engine.analysis.report import DegradationReport, KindAssessment
from engine.kinds import KINDS
from engine.pipeline.orchestrator import noise_read_before_jpeg
from engine.pipeline.plan import Stage
from engine.pipeline.session import StageResult


def _report(**severities: float) -> DegradationReport:
    return DegradationReport({k: KindAssessment(severity=severities.get(k, 0.0), confidence=1.0,
                                                measurements={"tag": severities.get(k, 0.0)}) for k in KINDS})


def _result(name: str, dropped: bool = False) -> StageResult:
    return StageResult(name, f"{name}.expert", "key", None, 0.0, dropped=dropped)


def test_after_a_kept_jpeg_stage_the_noise_stage_reads_the_photos_noise():
    first, after_jpeg = _report(noise=0.24, jpeg=0.25), _report(noise=0.07, jpeg=0.02)
    r = noise_read_before_jpeg(Stage("noise", "n"), [_result("jpeg")], after_jpeg, first)
    assert r.severity("noise") == 0.24 and r.kinds["noise"].measurements["tag"] == 0.24
    assert r.severity("jpeg") == 0.02  # every other kind as the stage's input reads


def test_otherwise_the_stages_own_input_report_stands():
    first, now = _report(noise=0.24, jpeg=0.25), _report(noise=0.07, jpeg=0.02)
    assert noise_read_before_jpeg(Stage("noise", "n"), [_result("jpeg", dropped=True)], now, first) is now
    assert noise_read_before_jpeg(Stage("noise", "n"), [_result("haze")], now, first) is now
    assert noise_read_before_jpeg(Stage("noise", "n"), [], now, first) is now
    assert noise_read_before_jpeg(Stage("blur", "b"), [_result("jpeg")], now, first) is now
    louder = _report(noise=0.3)  # the JPEG stage left more noise than the photo read: that stands
    assert noise_read_before_jpeg(Stage("noise", "n"), [_result("jpeg")], louder, first) is louder
