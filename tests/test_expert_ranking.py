"""The plan picks the best available expert by measured quality: the benchmark's ranking
(``models/expert-ranking.json``) orders ``ExpertRegistry.for_task``."""

from __future__ import annotations

import json
import re

import numpy as np
from testdata import REPO

from engine.experts.base import Backend, Expert, ExpertContext, ExpertInfo, ExpertRegistry


class _Fake(Expert):
    def __init__(self, expert_id: str, backend: Backend, available: bool = True) -> None:
        self.info = ExpertInfo(id=expert_id, name=expert_id, tasks=("noise",), backend=backend)
        self.available = available

    def is_available(self) -> bool:
        return self.available

    def run(self, image: np.ndarray, ctx: ExpertContext | None = None) -> np.ndarray:
        return image


def test_ranking_orders_experts_and_unranked_ones_follow_in_registration_order():
    from engine.pipeline.plan import best_expert

    experts = [_Fake("torch.a", Backend.TORCH), _Fake("onnx.b", Backend.ONNX), _Fake("classical.c", Backend.CLASSICAL),
               _Fake("onnx.missing", Backend.ONNX, available=False)]
    unranked = ExpertRegistry(experts)
    assert [e.info.id for e in unranked.for_task("noise")] == ["torch.a", "onnx.b", "classical.c"]
    # the backend decides nothing: a classical expert registered first stays first
    assert [e.info.id for e in ExpertRegistry(experts[::-1]).for_task("noise")] == ["classical.c", "onnx.b", "torch.a"]
    ranked = ExpertRegistry(experts, ranking={"noise": ["onnx.missing", "classical.c", "onnx.b"]})
    assert [e.info.id for e in ranked.for_task("noise")] == ["classical.c", "onnx.b", "torch.a"]
    assert best_expert(ranked, "noise") == "classical.c"  # the top *available* one


def test_shipped_ranking_is_the_benchmarks_and_the_app_uses_it():
    """models/expert-ranking.json is what benchmarks/expert_ranking.py wrote in its committed
    run; the app's registry follows it (a bundled network first for noise, SAFMN for ×4)."""
    from engine.experts.default import build_registry
    from engine.experts.ranking import load_ranking, ranked_ids

    shipped = load_ranking()
    results = json.loads((REPO / "benchmarks" / "results" / "expert-ranking.json").read_text())
    assert shipped == results["ranking"]
    assert set(shipped) == {"noise", "jpeg", "lowlight", "upscale"}
    assert set(ranked_ids(shipped)) == {"noise", "lowlight", "upscale"}  # JPEG: the file-aware restorer decides
    for entries in shipped.values():
        # real pairs decide where every candidate was measured on them, else the mean over all cases
        by_real = all(e["real_psnr_gain"] is not None for e in entries)
        gains = [e["real_psnr_gain" if by_real else "mean_psnr_gain"] for e in entries]
        assert gains == sorted(gains, reverse=True)
    registry = build_registry()
    for kind, ids in ranked_ids(shipped).items():
        available = [i for i in ids if i in registry and registry.get(i).is_available()]
        assert registry.for_task(kind)[0].info.id == available[0], kind
    assert ranked_ids(shipped)["noise"][0] in ("neural.ffdnet-color", "neural.dncnn-color-blind")
    assert ranked_ids(shipped)["upscale"][0] == "neural.safmn-x4"
    md = (REPO / "benchmarks" / "results" / "expert-ranking.md").read_text()
    assert "Machine:" in md and "CBM3D" in md and "## Speed" in md and "Peak memory at 12 MP" in md


def test_engine_and_app_never_import_bm3d():
    """bm3d (CBM3D) is licensed for non-commercial use only: the benchmark may use it, the app never."""
    for folder in ("engine", "app"):
        for path in (REPO / folder).rglob("*.py"):
            assert not re.search(r"^\s*(import|from)\s+bm3d", path.read_text(encoding="utf-8"), re.M), path
