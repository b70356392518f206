"""Plan → run stages → cache stage results → compose strengths → assess.

``plan`` (the Planner) decides what runs, ``orchestrator`` runs it with the keep/drop/fallback
rules, ``session`` runs one stage, caches and composes, ``job`` loads and saves files around it.
"""

from .cache import StageCache
from .job import RestoreOptions, RestoreResult, Restorer
from .orchestrator import Orchestrator, Outcome
from .plan import (SPECIALIST_ORDER, STAGE_NAMES, Plan, PlanChoices, Planner, Stage, build_plan, parse_kind_list,
                   parse_strength_settings)
from .session import RestorationSession, StageResult

__all__ = ["StageCache", "RestoreOptions", "RestoreResult", "Restorer", "Orchestrator", "Outcome",
           "SPECIALIST_ORDER", "STAGE_NAMES", "Plan", "PlanChoices", "Planner", "Stage", "build_plan",
           "parse_kind_list", "parse_strength_settings", "RestorationSession", "StageResult"]
