"""Degradation analysis: which of the six kinds a photo suffers from, and how badly."""

from .report import DegradationReport, KindAssessment

__all__ = ["DegradationReport", "KindAssessment"]
