"""How the hand-made and the learned analysis are combined per kind (engine.analysis.learned.combine)."""

from __future__ import annotations

import pytest

from engine.analysis.learned import combine
from engine.analysis.report import DegradationReport, KindAssessment
from engine.kinds import KINDS


def _report(**severities: float) -> DegradationReport:
    return DegradationReport({k: KindAssessment(severity=severities.get(k, 0.0), confidence=0.8,
                                                measurements={"x": 1.0}) for k in KINDS})


def test_each_rule_takes_presence_from_its_source():
    hand = _report(noise=0.6, blur=0.4, haze=0.05, rain=0.5)
    learned = DegradationReport({k: KindAssessment(severity=v, confidence=0.9,
                                                   measurements={"probability": v, "strength": v})
                                 for k, v in zip(KINDS, (0.05, 0.7, 0.0, 0.3, 0.0, 0.02), strict=True)})
    out = combine(hand, learned, presence_kinds=frozenset({"noise", "haze"}), severity_kinds=frozenset(),
                  threshold=0.15, agree_kinds=frozenset({"blur", "rain"}))
    assert out.severity("noise") < 0.15  # learned says absent, hand's strength is capped below half the threshold
    assert out.severity("haze") >= 0.15  # learned says present
    assert out.severity("blur") == 0.4  # both present: hand's severity kept
    assert out.severity("rain") < 0.15  # hand alone is not enough for an agreement kind
    assert out.severity("jpeg") == 0.0
    assert out.kinds["blur"].confidence == 0.8
    assert out.kinds["noise"].measurements["learned_probability"] == 0.05
    assert out.kinds["noise"].measurements["x"] == 1.0


def test_bundled_analyser_is_v2_with_v1s_blur_in_one_run():
    """v3 folds v2 (every kind) and v1 (blur) into one model: on real photos (random pixels without
    ../shared) its scores are the two-model combination's, from one ONNX session."""
    from pathlib import Path

    import numpy as np

    from engine.analysis.learned import LearnedAnalyser, default_model_path
    from engine.kinds import KINDS

    models = default_model_path().parent
    if not all((models / f"restora-analyser-{v}.onnx").is_file() for v in ("v1", "v2", "v3")):
        pytest.skip("the analyser models are not installed")
    clean = Path(__file__).resolve().parents[2] / "shared" / "data" / "clean"
    if clean.is_dir():
        from PIL import Image
        images = []
        for p in sorted(clean.iterdir())[:3]:
            with Image.open(p) as im:
                images.append(np.asarray(im.convert("RGB"), np.float32) / 255.0)
    else:
        images = [np.random.default_rng(0).random((160, 200, 3), dtype=np.float32)]
    fused = LearnedAnalyser(threads=1)
    assert fused.model_path.name == "restora-analyser-v3.onnx"
    v1, v2 = (LearnedAnalyser(models / f"restora-analyser-{v}.onnx", threads=1) for v in ("v1", "v2"))
    for img in images:
        prob, strength = fused.scores(img)
        for i, k in enumerate(KINDS):
            want = (v1 if k == "blur" else v2).scores(img)
            assert abs(prob[i] - want[0][i]) < 1e-5 and abs(strength[i] - want[1][i]) < 1e-5, k
    assert fused._session is not None
