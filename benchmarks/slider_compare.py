"""Slider re-render CPU time of two code trees, measured in one run (before/after a change).

Each tree (``--tree NAME=DIR``) runs in its own process, alternating round by round: its own
``benchmarks/slider.py`` builds the same synthetic photo and a Document with three cached
float32 changes, its ``BeforeAfterViewer`` (1600x1000, split view, off-screen) is repainted
after each of ``--strengths`` slider changes, moving (half resolution) and settled (screen
resolution). Recorded: the process CPU time per paint (one thread does the work; on a loaded
machine it is what a paint costs, the wall time adds the waiting).

Usage: ``python benchmarks/slider_compare.py --tree before=/old/checkout --tree after=. [--mp 12 24]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _host import report  # benchmarks/_host.py, beside this script

REPO = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, os, sys, time
sys.path.insert(0, "benchmarks")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
import slider as bench
from PySide6.QtWidgets import QApplication
from app.viewer import BeforeAfterViewer
app = QApplication([])
mp, n = float(sys.argv[1]), int(sys.argv[2])
doc = bench.document(bench.synthetic(mp))
v = BeforeAfterViewer(); v.resize(1600, 1000); v.show(); app.processEvents()
v.set_source(doc); v.repaint()
out = {"moving": [], "settled": [], "moving_wall": [], "settled_wall": []}
for i in range(n + 1):
    doc.set_state(doc.state.with_strength("noise", 0.1 + 0.8 * i / n))
    v.refresh(interactive=True)
    c, t = time.process_time(), time.perf_counter(); v.repaint()
    out["moving"].append(time.process_time() - c); out["moving_wall"].append(time.perf_counter() - t)
    v.settle()
    c, t = time.process_time(), time.perf_counter(); v.repaint()
    out["settled"].append(time.process_time() - c); out["settled_wall"].append(time.perf_counter() - t)
print("RESULT " + json.dumps({k: x[1:] for k, x in out.items()}))  # the first change warms up
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--mp", type=float, nargs="+", default=[12.0])
    parser.add_argument("--strengths", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "slider-compare.md")
    args = parser.parse_args()
    trees = [(t.split("=", 1)[0], Path(t.split("=", 1)[1]).resolve()) for t in args.tree] or [("current", REPO)]
    load0 = os.getloadavg()
    data: dict = {}
    for r in range(args.rounds):
        for name, tree in (trees if r % 2 == 0 else trees[::-1]):
            for mp in args.mp:
                env = dict(os.environ, PYTHONPATH=str(tree), HF_HUB_OFFLINE="1", QT_QPA_PLATFORM="offscreen",
                           OMP_NUM_THREADS="1")
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-c", _CHILD, str(mp), str(args.strengths)], cwd=tree,
                                      env=env, capture_output=True, text=True, timeout=1800)
                line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
                if line is None:
                    raise RuntimeError(f"{name} {mp} MP: no result: {proc.stderr[-2000:]}")
                for k, v in json.loads(line[7:]).items():
                    data.setdefault((name, mp), {}).setdefault(k, []).extend(v)
                print(f"round {r + 1} {name} {mp:g} MP: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    load1 = os.getloadavg()
    lines = ["# Slider re-render, before and after, in one run", "",
             "Produced by `benchmarks/slider_compare.py`: each tree's `BeforeAfterViewer` (1600x1000 split view, "
             "off-screen) over the same synthetic photo with three cached changes, repainted after each slider "
             f"change ({args.strengths} per round, {args.rounds} rounds, trees alternating). CPU ms per paint "
             "(the process's CPU time: what a paint costs on a free core); target 50 ms.", "",
             f"- machine: {os.cpu_count()} cores, **shared and heavily loaded** (load average {load0[0]:.0f} at "
             f"start, {load1[0]:.0f} at end): wall times are mostly waiting for a core",
             f"- trees: {', '.join(f'{n} = `{t}`' for n, t in trees)}", "",
             "| tree | MP | moving CPU ms median / worst | settled CPU ms median / worst | settled wall ms median |",
             "|---|---|---|---|---|"]
    for (name, mp), d in data.items():
        lines.append(f"| {name} | {mp:g} | {1000 * statistics.median(d['moving']):.0f} / {1000 * max(d['moving']):.0f} "
                     f"| {1000 * statistics.median(d['settled']):.0f} / {1000 * max(d['settled']):.0f} | "
                     f"{1000 * statistics.median(d['settled_wall']):.0f} |")
    lines += ["", "Raw (seconds per paint):", "", "```json",
              json.dumps({f"{n} {mp:g}": d for (n, mp), d in data.items()}, indent=1), "```", ""]
    report("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
