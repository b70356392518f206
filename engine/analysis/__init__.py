"""Degradation analysis: which of the six kinds a photo suffers from, and how badly."""

from .analyser import analyse, measure
from .report import DEFAULT_PRESENCE_THRESHOLD, DegradationReport, KindAssessment

__all__ = ["analyse", "measure", "DegradationReport", "KindAssessment", "DEFAULT_PRESENCE_THRESHOLD"]
