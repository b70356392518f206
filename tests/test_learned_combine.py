"""How the hand-made and the learned analysis are combined per kind (engine.analysis.learned.combine)."""

from __future__ import annotations

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


def test_bundled_analyser_takes_the_previous_models_kinds_from_it():
    """The shipped analyser is v2, with the kinds where v1 measured better (blur) taken from v1."""
    import numpy as np

    from engine.analysis.learned import PREVIOUS_MODEL_KINDS, LearnedAnalyser, default_model_path
    from engine.kinds import KINDS

    default = LearnedAnalyser(threads=1)
    if not default.kind_models:
        return  # v1 is not installed next to v2: v2 alone
    img = np.random.default_rng(0).random((160, 200, 3), dtype=np.float32)
    prob, strength = default.scores(img)
    main = LearnedAnalyser(default_model_path(), threads=1).scores(img)
    for i, k in enumerate(KINDS):
        source = LearnedAnalyser(default.kind_models[k], threads=1).scores(img) if k in PREVIOUS_MODEL_KINDS else main
        assert prob[i] == source[0][i] and strength[i] == source[1][i]
