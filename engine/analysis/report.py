"""The analyser's result."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..kinds import KINDS

#: A kind whose severity is below this is considered absent by default.
DEFAULT_PRESENCE_THRESHOLD = 0.15


@dataclass(frozen=True)
class KindAssessment:
    """One kind's verdict: ``severity`` in [0, 1] (0 = absent), ``confidence`` in [0, 1], and the
    raw measurements it was derived from (names → values, units in the analyser's docs)."""

    severity: float
    confidence: float = 1.0
    measurements: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DegradationReport:
    """Severity per degradation kind; every kind of :data:`engine.kinds.KINDS` is present."""

    kinds: dict[str, KindAssessment]

    def severity(self, kind: str) -> float:
        a = self.kinds.get(kind)
        return 0.0 if a is None else float(a.severity)

    def severities(self) -> dict[str, float]:
        """``{kind: severity}`` for all six kinds, rounded to 3 decimals (the JSON contract)."""
        return {k: round(self.severity(k), 3) for k in KINDS}

    def present(self, threshold: float = DEFAULT_PRESENCE_THRESHOLD) -> list[str]:
        """Kinds at or above ``threshold``, most severe first."""
        found = [k for k in KINDS if self.severity(k) >= threshold]
        return sorted(found, key=lambda k: -self.severity(k))

    def to_dict(self) -> dict:
        return {
            k: {"severity": round(self.severity(k), 3),
                "confidence": round(float(self.kinds[k].confidence), 3) if k in self.kinds else 0.0,
                "measurements": {m: round(float(v), 5) for m, v in self.kinds[k].measurements.items()}
                if k in self.kinds else {}}
            for k in KINDS
        }
