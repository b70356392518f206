"""Peak memory of each expert's ``run`` against the photo's size: the numbers behind
``engine/pipeline/memory.EXPERT_MEMORY``.

Each (expert, size) runs in a fresh process: the engine is imported, the registry built, a
synthetic float32 photo (smooth gradients, edges, noise σ 10/255) made in place, and the
resident set just before ``expert.run`` is the baseline. A thread samples the resident set every
2 ms while the expert runs; the peak (that or ``ru_maxrss``, whichever is larger) minus the
baseline is what the expert adds: its model (loaded on first use), its tile buffers, its
full-size arrays and its output. A straight line through two sizes gives bytes per input pixel
(the slope) and a fixed part (the intercept).

Tiles: networks get a fixed 512-pixel tile (``ExpertContext.tile``) so that their window does not
grow with the photo; in a real run the window is chosen from the free memory
(:class:`engine.runtime.tiling.AutoTiles` may use half of it), so it adapts to what is left
rather than deciding whether a photo fits. Classical experts keep their own tiles.

Usage: ``python benchmarks/expert_memory.py [--sizes 1 3] [--classical-sizes 2 6] [--small-sizes 0.25 1] [--only ID ...]
[--timeout 900] [--out benchmarks/results/expert-memory.md]``; upscalers and Torch networks
(slow on a CPU) run at ``--small-sizes``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, resource, sys, threading, time
import numpy as np
expert_id, mp, tile = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
from engine.experts.base import ExpertContext
from engine.experts.default import build_registry
from engine.analysis.analyser import analyse
if expert_id == "analysis":  # the default analysis of a whole photo, measured like an expert
    from engine.pipeline.session import default_analyser
    class _Analysis:
        class info:
            tasks, conditioned = (), False
        @staticmethod
        def run(image, ctx):
            default_analyser(image)
            return image
    expert = _Analysis()
else:
    expert = build_registry().get(expert_id)
w = int(round((mp * 1e6 * 1.5) ** 0.5 / 8)) * 8
h = int(round(w / 1.5 / 8)) * 8
image = np.empty((h, w, 3), np.float32)
rng = np.random.default_rng(0)
x = np.arange(w, dtype=np.float32)[None, :]
for top in range(0, h, 128):
    y = np.arange(top, min(top + 128, h), dtype=np.float32)[:, None]
    block = np.stack([0.2 + 0.6 * x / w + 0 * y, 0.2 + 0.6 * y / h + 0 * x,
                      0.5 + 0.2 * np.sin(x / 23.0) * np.cos(y / 17.0)], 2)
    block += ((np.floor(x / 96) + np.floor(y / 96)) % 2)[..., None] * 0.1
    image[top:top + len(y)] = np.clip(block + rng.normal(0, 10 / 255, block.shape), 0, 1)
kind = next((t for t in expert.info.tasks), "")
report = analyse(np.ascontiguousarray(image[:512, :512]))
a = report.kinds.get(kind)
ctx = ExpertContext(severity=0.5 if a is None else max(float(a.severity), 0.3),
                    measurements={} if a is None else dict(a.measurements), device="cpu",
                    tile=tile or None, strength=1.0,
                    strengths={"noise": 0.5} if expert.info.conditioned else {})
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
base = rss()
peak = [base]
done = False
def sample():
    while not done:
        peak[0] = max(peak[0], rss())
        time.sleep(0.002)
t = threading.Thread(target=sample, daemon=True)
t.start()
t0 = time.perf_counter()
out = expert.run(image, ctx)
seconds = time.perf_counter() - t0
done = True
t.join()
top = max(peak[0], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
print("RESULT " + json.dumps({"pixels": w * h, "size": f"{w}x{h}", "baseline": base, "added": top - base,
                              "seconds": seconds, "out_shape": list(out.shape)}))
"""


def measure(expert_id: str, mp: float, tile: int, timeout: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, expert_id, str(mp), str(tile)], capture_output=True,
                              text=True, env=env, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"rc {proc.returncode}"}


def fit(rows: list[dict]) -> tuple[float, float]:
    """(fixed bytes, bytes per input pixel) of the line through the first and last row."""
    a, b = rows[0], rows[-1]
    slope = (b["added"] - a["added"]) / max(b["pixels"] - a["pixels"], 1)
    return a["added"] - slope * a["pixels"], slope


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs=2, default=[1.0, 3.0], help="networks, MP")
    parser.add_argument("--classical-sizes", type=float, nargs=2, default=[2.0, 6.0],
                        help="classical experts, MP: both above their own tile, so the window is fixed")
    parser.add_argument("--small-sizes", type=float, nargs=2, default=[0.25, 1.0])
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--skip", nargs="*", default=[], help="expert ids not to measure")
    # ``--only analysis`` measures the default analysis of a whole photo the same way
    parser.add_argument("--keep", action="store_true", help="keep the rows already in --out (measure the others)")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "expert-memory.md")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from engine.experts.base import Backend, ExpertInfo
    from engine.experts.default import build_registry

    experts = [e for e in build_registry().all()
               if (args.only is None or e.info.id in args.only) and e.info.id not in args.skip]
    load0 = os.getloadavg()
    results = read(args.out) if args.keep else {}
    experts = [e for e in experts if e.info.id not in results or any("error" in r for r in results[e.info.id]["rows"])]
    if args.only and "analysis" in args.only:
        experts.append(None)
    for expert in experts:
        info = expert.info if expert is not None else ExpertInfo(id="analysis", name="analysis", tasks=())
        small = info.scale > 1 or info.backend is Backend.TORCH
        tile = 0 if info.backend is Backend.CLASSICAL else 512
        rows = []
        sizes = args.small_sizes if small else args.classical_sizes if info.backend is Backend.CLASSICAL else args.sizes
        for mp in sizes:
            t0 = time.perf_counter()
            r = measure(info.id, mp, tile, args.timeout)
            rows.append(r)
            print(f"{info.id} {mp} MP: {r} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
            if "error" in r:
                break
        entry = {"rows": rows, "tile": tile or None, "backend": info.backend.value, "scale": info.scale}
        if all("error" not in r for r in rows) and len(rows) == 2:
            entry["fixed"], entry["per_pixel"] = fit(rows)
        results[info.id] = entry
        write(args.out, results, load0, os.getloadavg())
    print(args.out.read_text())
    return 0


def read(out: Path) -> dict:
    """The raw results already in ``out`` (empty when there are none)."""
    if not out.exists():
        return {}
    text = out.read_text()
    return json.loads(text.split("```json", 1)[1].split("```", 1)[0]) if "```json" in text else {}


def write(out: Path, results: dict, load0, load1) -> None:
    lines = ["# Peak memory each expert adds, against the photo's size", "",
             "Produced by `benchmarks/expert_memory.py`: each expert's `run` on a synthetic float32 photo in a "
             "fresh process; the resident set sampled every 2 ms (and `ru_maxrss`) above the resident set just "
             "before the run: the model, tile buffers, full-size arrays and the output. Fixed part and bytes per "
             "input pixel from a line through two sizes. Networks run with 512-pixel tiles (see the script).", "",
             f"- machine: {os.cpu_count()} cores, **shared and loaded** (load average {load0[0]:.1f} at start, "
             f"{load1[0]:.1f} at end); one thread; seconds are wall time under that load", "",
             "| expert | backend | tile | sizes (MP) | added (MB) | fixed MB | bytes per input pixel | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for eid, e in results.items():
        ok = [r for r in e["rows"] if "error" not in r]
        err = next((r["error"] for r in e["rows"] if "error" in r), "")
        sizes = ", ".join(f"{r['pixels'] / 1e6:.2f}" for r in ok)
        added = ", ".join(f"{r['added'] / 1e6:.0f}" for r in ok)
        seconds = ", ".join(f"{r['seconds']:.0f}" for r in ok)
        if "per_pixel" in e:
            fitted = f"{e['fixed'] / 1e6:.0f} | {e['per_pixel']:.1f}"
        else:
            fitted = f"– | – ({err[:80]})"
        lines.append(f"| {eid} | {e['backend']} | {e['tile'] or 'own'} | {sizes} | {added} | {fitted} | {seconds} |")
    lines += ["", "Raw:", "", "```json", json.dumps(results, indent=1), "```", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
