"""The plans benchmarks/lowlight_noise_order.py compares (benchmarks/results/lowlight-gate.md, top)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from lowlight_noise_order import LOWLIGHT_EXPERT, reordered  # noqa: E402

from engine.pipeline.plan import Plan, Stage  # noqa: E402


def test_each_variant_reorders_only_a_plan_with_both_a_noise_and_a_low_light_stage():
    both = Plan((Stage("jpeg", "j"), Stage("noise", "n"), Stage("lowlight", "l"), Stage("haze", "h")))
    assert reordered(both, "plan") is both
    assert reordered(both, "lowlight first").names() == ["jpeg", "lowlight", "noise", "haze"]
    assert reordered(both, "lowlight alone").names() == ["jpeg", "lowlight", "haze"]
    noise_only = Plan((Stage("noise", "n"),))
    assert reordered(noise_only, "lowlight first") is noise_only


def test_a_forced_low_light_stage_is_appended_at_full_strength_and_not_judged():
    forced = reordered(Plan((Stage("noise", "n"),)), "lowlight forced")
    assert forced.names() == ["noise", "lowlight"]
    stage = forced.stage("lowlight")
    assert (stage.expert_id, stage.strength, stage.auto) == (LOWLIGHT_EXPERT, 1.0, False)
    planned = Plan((Stage("lowlight", "l"),))
    assert reordered(planned, "lowlight forced") is planned
