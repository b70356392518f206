"""Performance work that must not change results: the batched kind-split of the conditioned
generalist, the tiler's side input (FFDNet's noise map read window by window), the session's
in-place stage arithmetic, and the memory budget logic. No timings are asserted here."""

from __future__ import annotations

import numpy as np
import pytest

from engine.runtime.tiling import FixedTiles, run_tiled


def _photo(h: int = 96, w: int = 120, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / w, y / h, 0.5 + 0.3 * np.sin(x / 5)], 2) * 0.8 + rng.normal(0, 0.05, (h, w, 3))
    return np.clip(img, 0, 1).astype(np.float32)


def test_side_input_equals_a_stacked_copy():
    img = _photo()
    side = np.random.default_rng(1).random((96, 120, 1), dtype=np.float32)

    def fn(tile):  # any function of all four channels, with spatial context
        return (tile[:, :3] * tile[:, 3:4] + np.roll(tile[:, :3], 1, axis=3)).astype(np.float32)

    stacked = run_tiled(np.concatenate([img, side], axis=2), fn, strategy=FixedTiles(40), overlap=4)
    lazy = run_tiled(img, fn, strategy=FixedTiles(40), overlap=4, side=side)
    assert np.array_equal(stacked, lazy)
    uniform = np.broadcast_to(np.float32(0.25), (96, 120, 1))
    assert np.array_equal(run_tiled(img, fn, strategy=FixedTiles(40), overlap=4, side=uniform),
                          run_tiled(np.concatenate([img, np.full((96, 120, 1), 0.25, np.float32)], 2), fn,
                                    strategy=FixedTiles(40), overlap=4))
    with pytest.raises(ValueError, match="side input"):
        run_tiled(img, fn, side=side[:10])


def _generalist():
    from engine.experts.default import build_registry

    registry = build_registry()
    expert = next((e for e in registry.for_task("generalist") if getattr(e.info, "model_id", "") and
                   "restora-generalist" in (e.info.model_id or "")), None)
    if expert is None or not expert.is_available():
        pytest.skip("the bundled generalist is not installed here")
    return expert


def test_batched_kind_split_matches_one_run_per_kind():
    from engine.experts.base import ExpertContext

    expert = _generalist()
    img = _photo(80, 72)
    variants = [{"noise": 0.6}, {"blur": 0.4}, {"noise": 0.6, "blur": 0.4}]
    ctx = ExpertContext(tile=48)
    batched = expert.run_variants(img, ctx, variants)
    for v, out in zip(variants, batched, strict=True):
        alone = expert.run(img, ExpertContext(tile=48, strengths=v))
        assert out.shape == alone.shape
        assert float(np.abs(out - alone).max()) < 1e-5


def test_ffdnet_uniform_noise_level_is_never_materialised():
    from engine.experts.base import ExpertContext
    from engine.experts.published import noise_sigma_map

    img = _photo()
    sigma = noise_sigma_map(img, ExpertContext(noise_sigma=np.array([0.02, 0.03, 0.025], np.float32), strength=0.5))
    assert sigma.shape == (96, 120, 3) and sigma.strides[:2] == (0, 0)  # a view, not 12 bytes a pixel
    assert np.allclose(sigma[5, 7], [0.01, 0.015, 0.0125])
    full = noise_sigma_map(img, ExpertContext(noise_sigma=np.full((96, 120, 1), 0.02, np.float32)))
    assert full.strides[:2] != (0, 0) and np.allclose(full, 0.02)


def test_gpu_benchmark_runs_tiny_on_the_cpu(tmp_path):
    """benchmarks/gpu.py end to end at a tiny size: every row it runs agrees with the reference."""
    pytest.importorskip("torch")
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("gpu_bench", Path(__file__).parents[1] / "benchmarks" / "gpu.py")
    bench = importlib.util.module_from_spec(spec)
    import sys

    sys.modules["gpu_bench"] = bench  # dataclasses look their module up there
    try:
        spec.loader.exec_module(bench)
    finally:
        sys.modules.pop("gpu_bench", None)
    out = tmp_path / "gpu.md"
    assert bench.main(["--device", "cpu", "--megapixels", "0.004", "--networks", "ffdnet", "--tiles", "32",
                       "--batches", "1,2", "--settings", "engine,batch 2,overlap,pinned", "--out", str(out)]) == 0
    text = out.read_text()
    assert "No GPU was used" in text and "pinned memory needs CUDA" in text
    import json

    rows = json.loads(text.split("```json")[1].split("```")[0])["rows"]
    ran = [r for r in rows if not r["skipped"]]
    assert {r["setting"] for r in ran} == {"reference", "engine", "batch 2", "overlap"}
    assert all(r["max_abs_diff"] < 1e-4 for r in ran), [(r["setting"], r["max_abs_diff"]) for r in ran]


def test_the_memory_budget_refuses_only_what_does_not_fit(tmp_path, monkeypatch):
    from engine.errors import NotEnoughMemoryError
    from engine.pipeline.memory import check_fits, estimate_bytes, memory_budget, parse_size

    experts = ["classical.denoise.dct", "classical.deblur.wiener", "classical.dehaze.dcp"]
    need = estimate_bytes(6000, 4000, cached_changes=3, experts=experts)
    assert estimate_bytes(6000, 4000, cached_changes=3, experts=experts + ["classical.lowlight.lime"]) > need
    assert estimate_bytes(6000, 4000, cached_changes=3, experts=experts, scale=2) > need  # so does an upscale
    bigger = estimate_bytes(12000, 8000, cached_changes=3, experts=experts)
    assert 3 * need < bigger < 4 * need  # per pixel, plus a fixed part
    check_fits(tmp_path / "a.jpg", 6000, 4000, cached_changes=3, experts=experts, budget=need)  # exactly enough
    with pytest.raises(NotEnoughMemoryError, match="a.jpg.*6000x4000"):
        check_fits(tmp_path / "a.jpg", 6000, 4000, cached_changes=3, experts=experts, budget=need - 1)
    monkeypatch.setenv("RESTORA_MEMORY_BUDGET", "3G")
    assert memory_budget() == parse_size("3G") == 3 * 2**30


def test_release_frees_every_cached_change():
    from engine.experts.base import Expert, ExpertInfo, ExpertRegistry
    from engine.pipeline.plan import Plan, Stage
    from engine.pipeline.session import RestorationSession

    class Halve(Expert):
        info = ExpertInfo(id="test-halve", name="halve", tasks=("noise",))

        def run(self, image, ctx=None):
            return image * 0.5

    img = _photo(40, 50)
    report = __import__("engine.analysis.analyser", fromlist=["analyse"]).analyse(img)
    session = RestorationSession(img, ExpertRegistry([Halve()]), analyser=lambda image: report, assess=False)
    results = session.run(Plan((Stage("noise", "test-halve", 1.0, False),)))
    assert results[0].delta is not None and session.cache.nbytes > 0
    composed = session.compose({"noise": 0.5}, step=1)
    assert np.array_equal(composed, np.clip(img + np.float32(0.5) * (img * 0.5 - img), 0, 1))
    session.release()
    assert session.cache.nbytes == 0 and session.results == [] and len(session.cache) == 0


def test_thread_count_follows_the_override_and_the_usable_cpus(monkeypatch):
    import os

    from engine.runtime import onnx_backend

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.delenv(onnx_backend.THREADS_VARIABLE, raising=False)
    assert onnx_backend.default_threads() == 4
    monkeypatch.setenv(onnx_backend.THREADS_VARIABLE, "3")
    assert onnx_backend.default_threads() == 3
    pytest.importorskip("onnxruntime")
    assert onnx_backend.session_options().intra_op_num_threads == 3
    assert onnx_backend.session_options(2).intra_op_num_threads == 2


def test_preview_crops_and_export_equal_the_full_resolution_compose():
    """What the viewer composes (a crop, every step-th pixel, from subsampled copies above 2 MP)
    is exactly that part of the full compose, and the export is the full compose, byte for byte."""
    pytest.importorskip("PySide6")
    import importlib.util
    import sys
    from pathlib import Path

    benchmarks = Path(__file__).parents[1] / "benchmarks"
    if str(benchmarks) not in sys.path:  # slider.py imports its neighbour _host.py (alone, not only in the suite)
        sys.path.insert(0, str(benchmarks))
    spec = importlib.util.spec_from_file_location("slider_bench", benchmarks / "slider.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules["slider_bench"] = bench
    try:
        spec.loader.exec_module(bench)
    finally:
        sys.modules.pop("slider_bench", None)
    pixels = bench.synthetic(2.2)
    doc = bench.document(pixels)
    doc.set_state(doc.state.with_strength("noise", 0.3).with_strength("jpeg", 0.7))
    strengths = doc.state.effective_strengths()
    full = doc.session.compose(strengths)
    exported = doc.restored_photo().pixels
    assert exported.dtype == np.float32 and np.array_equal(exported, full)
    h, w = pixels.shape[:2]
    for step in (1, 2, 4):
        rows, cols = slice(8 * step, h - 3), slice(16 * step, w // 2 + 5)
        crop = doc.after(rows, cols, step)
        assert np.array_equal(crop, full[rows.start:rows.stop:step, cols.start:cols.stop:step]), step


def test_a_stage_that_changes_nothing_is_not_analysed_again():
    """An expert that returns its input unchanged (a deblurrer that found no blur it trusts) gets
    the analyser's report of that input as its output's analysis: the same pixels are not analysed
    twice, and the report, the judge's verdict and the pixels are those an analysis would give. The
    input's own analysis is the analyser's, not the plan's report with the JPEG file's evidence."""
    from engine.analysis.report import DegradationReport, KindAssessment
    from engine.experts.base import Expert, ExpertInfo, ExpertRegistry
    from engine.kinds import KINDS
    from engine.pipeline import Plan, RestorationSession, Stage

    class Shift(Expert):
        def __init__(self, eid, task, amount):
            self.info = ExpertInfo(id=eid, name=eid, tasks=(task,))
            self.amount = amount

        def run(self, image, ctx=None):
            return np.clip(image + self.amount, 0, 1).astype(np.float32)

    class Idle(Shift):
        def run(self, image, ctx=None):
            return image.copy()

    seen = []

    def analyser(image):
        seen.append(float(image.mean()))
        m = float(image.mean())
        severity = {"noise": 0.5 if m < 0.32 else 0.0, "blur": 0.5}  # the denoiser's stage is kept
        return DegradationReport({k: KindAssessment(severity.get(k, 0.0), 1.0, {"mean": m}) for k in KINDS})

    registry = ExpertRegistry([Shift("denoise", "noise", 0.05), Idle("deblur", "blur", 0.0)])
    img = np.full((16, 16, 3), 0.3, np.float32)
    for plan in (Plan((Stage("noise", "denoise"), Stage("blur", "deblur"))), Plan((Stage("blur", "deblur"),))):
        seen.clear()
        session = RestorationSession(img, registry, analyser=analyser)
        results = session.run(plan)
        idle = results[-1]
        assert len(seen) == len(plan.stages)  # the input, and the output of the stage that changed it
        expected = analyser((img + 0.05) if len(plan.stages) == 2 else img)
        assert idle.output_report.severities() == expected.severities()
        assert idle.output_report.kinds["blur"].measurements == expected.kinds["blur"].measurements
        assert idle.dropped and idle.delta is None
        assert len(plan.stages) == 1 or not results[0].dropped
        shift = 0.05 if len(plan.stages) == 2 else 0.0
        assert np.array_equal(session.compose(plan.strengths()), np.clip(img + np.float32(shift), 0, 1))
