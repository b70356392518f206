"""Restorers behind one interface (:class:`Expert`)."""

from .base import Backend, Expert, ExpertContext, ExpertInfo, ExpertRegistry, TilingMode

__all__ = ["Backend", "Expert", "ExpertContext", "ExpertInfo", "ExpertRegistry", "TilingMode"]
