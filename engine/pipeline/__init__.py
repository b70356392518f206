"""Plan → run stages → cache stage results → compose strengths → assess."""

from .cache import StageCache
from .job import RestoreOptions, RestoreResult, Restorer
from .plan import SPECIALIST_ORDER, STAGE_NAMES, Plan, Stage, build_plan, parse_kind_list, parse_strength_settings
from .session import RestorationSession, StageResult

__all__ = ["StageCache", "RestoreOptions", "RestoreResult", "Restorer", "SPECIALIST_ORDER",
           "STAGE_NAMES", "Plan", "Stage", "build_plan", "parse_kind_list", "parse_strength_settings",
           "RestorationSession", "StageResult"]
