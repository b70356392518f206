"""Restorers behind one interface (:class:`Expert`)."""

from .base import Backend, Expert, ExpertContext, ExpertInfo, ExpertRegistry

__all__ = ["Backend", "Expert", "ExpertContext", "ExpertInfo", "ExpertRegistry"]
