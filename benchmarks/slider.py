"""Slider latency of the real window widget, off-screen: how long a strength change takes to
re-render the visible view, and how long a photo takes to appear.

For each size (default 12 and 24 MP) a synthetic photo gets a session whose stage results are
set directly (a denoising stage with its two knots, as FFDNet leaves them, and a JPEG stage:
three cached float32 changes, exactly what a real run caches; no network runs, because what is
measured is composing). An :class:`app.document.Document` over it is shown by the real
:class:`app.viewer.BeforeAfterViewer` (1600x1000 logical pixels, split view, ``QT_QPA_PLATFORM=
offscreen``). Measured with ``viewer.repaint()`` (a synchronous paint of both sides):

* ``slider (moving)``: a strength change while the slider moves (``refresh(interactive=True)``:
  the half-resolution render the window does while the hand moves), repeated for 10 strengths;
* ``slider (settled)``: the full screen-resolution render that follows once the hand stops;
* ``slider at 100 %``: the same at 1:1 zoom (the visible crop at full resolution);
* ``first picture``: from a loaded photo to the first painted frame showing it (the original,
  before any analysis: the window shows it while the stages run).

Usage: ``QT_QPA_PLATFORM=offscreen python benchmarks/slider.py [--sizes 12 24] [--out
benchmarks/results/slider.md]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from _host import report  # benchmarks/_host.py, beside this script

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def synthetic(megapixels: float, seed: int = 0) -> np.ndarray:
    w = int(round(math.sqrt(megapixels * 1e6 * 1.5) / 8)) * 8
    h = int(round(w / 1.5 / 8)) * 8
    rng = np.random.default_rng(seed)
    out = np.empty((h, w, 3), np.float32)
    x = np.arange(w, dtype=np.float32)[None, :]
    for top in range(0, h, 512):
        y = np.arange(top, min(top + 512, h), dtype=np.float32)[:, None]
        block = np.stack([0.2 + 0.6 * x / w + 0 * y, 0.2 + 0.6 * y / h + 0 * x,
                          0.5 + 0.2 * np.sin(x / 23.0) * np.cos(y / 17.0)], 2)
        out[top:top + len(y)] = np.clip(block + rng.normal(0, 0.04, block.shape), 0, 1)
    return out


def document(pixels: np.ndarray):
    """A Document whose session holds three cached changes (no network run)."""
    from app.document import Document
    from engine.analysis.analyser import analyse
    from engine.experts.default import build_registry
    from engine.photo import Photo
    from engine.pipeline import Restorer
    from engine.pipeline.plan import Plan, Stage
    from engine.pipeline.session import StageResult
    from engine.pipeline.spill import ChangeStore, window_change_budget

    report = analyse(pixels[:512, :512])
    registry = build_registry(include_neural=False)
    restorer = Restorer(registry)
    session = restorer.orchestrator.session(pixels) if hasattr(restorer, "orchestrator") else restorer.session(pixels)
    session.analyser = lambda image: report
    session._report = report
    rng = np.random.default_rng(1)
    h, w = pixels.shape[:2]

    # kept as the window keeps them: in memory within its change budget, the rest on disk
    store = ChangeStore(window_change_budget())
    session.changes = store

    def change(scale: float):
        d = np.empty_like(pixels)
        for top in range(0, h, 1024):
            d[top:top + 1024] = rng.normal(0, scale, d[top:top + 1024].shape)
        return store.keep(d)

    noise_id = registry.for_task("noise")[0].info.id
    jpeg_id = registry.for_task("jpeg")[0].info.id
    results = [StageResult("noise", noise_id, "k-noise", change(0.03), 1.0, output_report=report,
                           knot_deltas={0.5: change(0.015)}),
               StageResult("jpeg", jpeg_id, "k-jpeg", change(0.01), 1.0, output_report=report)]
    session.show(results)
    plan = Plan((Stage("noise", noise_id, 0.8, True), Stage("jpeg", jpeg_id, 0.9, True)))
    return Document(Photo(pixels=pixels), restorer, session, plan)


CPU: dict[str, list[float]] = {}


def timed_paint(viewer, kind: str = "") -> float:
    """Wall seconds of one synchronous paint; its process CPU seconds go to ``CPU[kind]`` (on a
    loaded machine the CPU time is what the paint itself costs, the wall time adds the waiting)."""
    c0, t0 = time.process_time(), time.perf_counter()
    viewer.repaint()
    CPU.setdefault(kind, []).append(time.process_time() - c0)
    return time.perf_counter() - t0


def measure(mp: float, app) -> dict:
    from app.viewer import BeforeAfterViewer

    pixels = synthetic(mp)
    h, w = pixels.shape[:2]
    CPU.clear()
    viewer = BeforeAfterViewer()
    viewer.resize(1600, 1000)
    viewer.show()
    app.processEvents()

    # first picture: the original shown at once (what the window does before analysing)
    from app.document import PhotoPreview
    from engine.photo import Photo

    t0 = time.perf_counter()
    viewer.set_source(PhotoPreview(Photo(pixels=pixels)))
    viewer.repaint()
    first = time.perf_counter() - t0

    doc = document(pixels)
    viewer.set_source(doc)
    viewer.repaint()  # the first render builds the subsampled copies once
    rows = {"moving": [], "settled": [], "100%": []}
    strengths = [0.1 * i for i in range(1, 11)]
    for s in strengths:
        doc.set_state(doc.state.with_strength("noise", s))
        viewer.refresh(interactive=True)
        rows["moving"].append(timed_paint(viewer, "moving"))
        viewer.settle()
        rows["settled"].append(timed_paint(viewer, "settled"))
    viewer.set_zoom(1.0)
    viewer.repaint()
    for s in strengths:
        doc.set_state(doc.state.with_strength("jpeg", s))
        viewer.settle()
        rows["100%"].append(timed_paint(viewer, "100%"))
    viewer.close()
    app.processEvents()
    on_disk = len(doc.session.changes.spilled)
    doc.close()
    return {"megapixels": w * h / 1e6, "size": f"{w}x{h}", "first_picture_s": first, "changes_on_disk": on_disk,
            **{k: {"median_ms": 1000 * statistics.median(v), "worst_ms": 1000 * max(v),
                   "cpu_median_ms": 1000 * statistics.median(CPU[k]), "cpu_worst_ms": 1000 * max(CPU[k])}
               for k, v in rows.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[12, 24])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "slider.md")
    args = parser.parse_args()
    from PySide6.QtWidgets import QApplication

    from engine.pipeline.spill import window_change_budget

    app = QApplication.instance() or QApplication([])
    load0 = os.getloadavg()
    rows = [measure(mp, app) for mp in args.sizes]
    load1 = os.getloadavg()
    lines = ["# Slider re-render latency and time to first picture (real widget, off-screen)", "",
             "Produced by `benchmarks/slider.py`: the window's `BeforeAfterViewer` (1600x1000, split view) over a "
             "`Document` whose session caches three float32 changes (a two-knot denoiser and a JPEG stage) as the "
             "window keeps them (in memory within `window_change_budget()`, "
             f"{window_change_budget() / 2**20:.0f} MiB here, the rest in temporary files); "
             "`viewer.repaint()` timed after each of 10 strength changes. Target: 50 ms.", "",
             f"- machine: {os.cpu_count()} cores, **shared and loaded** (load average {load0[0]:.1f} at start, "
             f"{load1[0]:.1f} at end); Qt platform {os.environ.get('QT_QPA_PLATFORM')}", "",
             "Each cell: wall median / worst ms, then [CPU median / worst ms] of the process (one thread "
             "does the work, so the CPU time is about what the paint takes on an idle core).", "",
             "| photo | MP | changes on disk | slider moving | settled (full screen resolution) | at 100 % | "
             "first picture s |",
             "|---|---|---|---|---|---|---|"]

    def cell(d: dict) -> str:
        return (f"{d['median_ms']:.0f} / {d['worst_ms']:.0f} [CPU {d['cpu_median_ms']:.0f} / "
                f"{d['cpu_worst_ms']:.0f}]")

    for r in rows:
        lines.append(f"| {r['size']} | {r['megapixels']:.1f} | {r['changes_on_disk']} of 3 | {cell(r['moving'])} | "
                     f"{cell(r['settled'])} | "
                     f"{cell(r['100%'])} | {r['first_picture_s']:.2f} |")
    lines += ["", "`first picture`: from the decoded photo to the first painted frame (the original; decoding the "
              "file itself comes before and is not included).", "", "Raw:", "", "```json",
              json.dumps(rows, indent=1), "```", ""]
    report("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
