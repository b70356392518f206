"""The memory estimate: built from measured parts (each expert's fixed bytes and bytes per
pixel, decoding, analysing, saving), one phase at a time. Asserted: the budget logic and that
the estimate stays close above the peaks measured by benchmarks/memory_scaling.py; never timings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.pipeline import memory
from engine.pipeline.memory import UNMEASURED_EXPERT, estimate_bytes, expert_cost

REPO = Path(__file__).resolve().parents[1]
WIENER = "classical.deblur.wiener"


def test_every_expert_of_the_default_registry_has_a_measured_cost_or_counts_as_the_dearest():
    from engine.experts.default import build_registry

    dearest_fixed = max(fixed for fixed, _ in memory.EXPERT_MEMORY.values())
    dearest_per_pixel = max(per for _, per in memory.EXPERT_MEMORY.values())
    assert UNMEASURED_EXPERT[0] >= dearest_fixed and UNMEASURED_EXPERT[1] >= dearest_per_pixel
    for expert in build_registry(include_neural=False).all():
        assert expert_cost(expert.info.id, 10**6) > 0
    assert expert_cost("no.such.expert", 10**6) == UNMEASURED_EXPERT[0] + UNMEASURED_EXPERT[1] * 1e6


def test_a_stage_costs_its_experts_share_and_the_dearest_phase_sets_the_peak():
    none = estimate_bytes(6000, 4000)
    one = estimate_bytes(6000, 4000, experts=[WIENER], cached_changes=1)
    two = estimate_bytes(6000, 4000, experts=[WIENER, WIENER], cached_changes=2)
    assert none < one < two  # a second stage also holds its own input
    unknown = estimate_bytes(6000, 4000, experts=["no.such.expert"], cached_changes=1)
    assert unknown > one
    assert estimate_bytes(6000, 4000, experts=[WIENER], cached_changes=1, scale=2) > one  # an upscale costs


def test_changes_count_only_up_to_the_budget_kept_in_memory():
    experts = [WIENER] * 4
    in_memory = estimate_bytes(8000, 6000, experts=experts, cached_changes=4)
    capped = estimate_bytes(8000, 6000, experts=experts, cached_changes=4, change_budget=2**28)
    assert capped < in_memory
    assert estimate_bytes(8000, 6000, experts=experts, cached_changes=4, change_budget=0) <= capped


def test_a_stage_run_in_place_counts_one_full_size_array_less_and_only_past_the_budget():
    w, h = 12000, 8000
    ordinary = estimate_bytes(w, h, experts=[WIENER], cached_changes=1, change_budget=2**28)
    in_place = estimate_bytes(w, h, experts=[WIENER], cached_changes=1, change_budget=2**28, in_place={WIENER})
    assert in_place < ordinary
    small = estimate_bytes(1000, 800, experts=[WIENER], cached_changes=1, change_budget=2**28, in_place={WIENER})
    assert small == estimate_bytes(1000, 800, experts=[WIENER], cached_changes=1, change_budget=2**28)
    # no change store (the window): never in place
    assert estimate_bytes(w, h, experts=[WIENER], in_place={WIENER}) == estimate_bytes(w, h, experts=[WIENER])


def test_an_eight_gb_laptop_is_not_refused_a_48_mp_photo_by_a_plan_that_fits():
    """The old estimate (354 bytes per pixel whatever the plan) asked 17 GB for 48 MP."""
    need = estimate_bytes(8488, 5656, experts=[WIENER], cached_changes=1, change_budget=320 * 2**20,
                          in_place={WIENER})
    assert need < 3e9


def test_check_fits_refuses_just_past_the_estimate(tmp_path):
    from engine.errors import NotEnoughMemoryError
    from engine.pipeline.memory import check_fits

    need = estimate_bytes(6000, 4000, experts=[WIENER], cached_changes=1)
    check_fits(tmp_path / "a.jpg", 6000, 4000, experts=[WIENER], cached_changes=1, budget=need)
    with pytest.raises(NotEnoughMemoryError, match="a.jpg.*6000x4000"):
        check_fits(tmp_path / "a.jpg", 6000, 4000, experts=[WIENER], cached_changes=1, budget=need - 1)


def _measured_rows() -> list[dict]:
    text = (REPO / "benchmarks" / "results" / "memory-scaling.md").read_text()
    blocks = [block.split("```", 1)[0] for block in text.split("```json")[1:]]  # every plan's raw rows
    return [json.loads(line) for block in blocks for line in block.splitlines()
            if line.startswith("{") and '"predicted_bytes"' in line]


def _rows_of_this_estimate() -> list[dict]:
    """The rows the current code produced (the "before" rows were measured with the old estimate)."""
    return [row for row in _measured_rows() if row["tree"] == "after"]


@pytest.mark.parametrize("row", _rows_of_this_estimate(), ids=lambda r: f"{r['tree']}-{r['size']}")
def test_the_estimate_is_above_the_measured_peak_and_not_far_above(row):
    """The rows of memory-scaling.md that the current code produced (``predicted_bytes`` is what
    estimate_bytes said for that run): the estimate holds the peak and is at most 1.6 times it."""
    w, h = (int(v) for v in row["size"].split("x"))
    need = estimate_bytes(w, h, **row["estimate_args"])
    assert need >= row["peak_bytes"], (need, row["peak_bytes"])
    assert need <= 1.6 * row["peak_bytes"], (need, row["peak_bytes"])


def test_a_stage_runs_in_place_when_its_input_and_change_do_not_fit_the_change_budget():
    """Beside its input a stage keeps two full-size arrays more (the input and its change): the
    default budget keeps a 12 MP photo's first stage beside its input, a 24 MP one runs in place
    (issue 14: counting the change alone, 24 MP held three full-size arrays), and the estimate
    follows the same rule."""
    from engine.pipeline.spill import DEFAULT_CHANGE_BUDGET, ChangeStore, in_place_past_budget

    def nbytes(mp):
        return int(mp * 1e6) * 12

    assert not in_place_past_budget(0, nbytes(12), DEFAULT_CHANGE_BUDGET)
    assert in_place_past_budget(0, nbytes(14), DEFAULT_CHANGE_BUDGET)
    assert in_place_past_budget(0, nbytes(24), DEFAULT_CHANGE_BUDGET)
    store = ChangeStore(budget=1000)
    assert not store.prefers_in_place(500) and store.prefers_in_place(501)
    store.keep(np.zeros(25, np.float32))  # 100 bytes kept in memory
    assert store.prefers_in_place(451) and not store.prefers_in_place(450)
    for (w, h), in_place in (((4240, 2824), False), ((6000, 4000), True)):
        kw = dict(experts=[WIENER], cached_changes=1, change_budget=DEFAULT_CHANGE_BUDGET)
        assert (estimate_bytes(w, h, in_place={WIENER}, **kw) < estimate_bytes(w, h, **kw)) is in_place
