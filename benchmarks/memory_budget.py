"""Peak memory per input pixel of ``restora restore``, the calibration behind engine/pipeline/memory.py.

Each configuration runs in a fresh process on a generated noisy, dim photo of two sizes; the peak
resident memory (``ru_maxrss``) above the process's own footprint after importing the engine is
recorded, and the slope between the sizes is the bytes per pixel the pipeline adds. The result is
compared with ``memory.estimate_bytes`` for the same plan (which must not be below it).

Usage: ``python benchmarks/memory_budget.py [--sizes 512 1024] [--out benchmarks/results/memory_budget.md]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CONFIGS = {
    "auto (bundled generalist)": [],
    "five classical stages": ["--no-generalist", "--only", "noise,blur,lowlight,haze,jpeg"],
}

_CHILD = r"""
import json, resource, sys
import numpy as np
from PIL import Image
side, folder, extra = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
y, x = np.mgrid[0:side, 0:side].astype(np.float32)
img = np.stack([x / side, y / side, 0.5 + 0.3 * np.sin(x / 17)], 2) * 0.4
img = np.clip(img + np.random.default_rng(0).normal(0, 0.08, img.shape), 0, 1)
Image.fromarray((img * 255).astype(np.uint8)).save(f"{folder}/in.png")
import torch, onnxruntime  # noqa: F401  (imported before the baseline, like the CLI does)
import engine.experts.default, engine.pipeline  # noqa: F401
torch.set_num_threads(1)
from engine.cli import main
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rc = main(["restore", f"{folder}/in.png", "-o", f"{folder}/out", "--device", "cpu", "--json"] + extra)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("RESULT", json.dumps({"rc": rc, "grown_bytes": (peak - base) * 1024}))
"""


def measure(side: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", RESTORA_MEMORY_BUDGET="64G")
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(side), folder, json.dumps(extra)],
                              capture_output=True, text=True, env=env, timeout=1800)
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                result = json.loads(line[7:])
            elif line.startswith("{"):
                result_line = json.loads(line)
        result["stages"] = [s["stage"] for s in result_line["stages"] if not s.get("dropped")]
        result["told"] = sum(1 for s in result_line["stages"] if s.get("handled_by"))
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=(512, 1024))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "memory_budget.md")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from engine.pipeline.memory import (BASE_BYTES_PER_PIXEL, DECODE_BYTES_PER_PIXEL, STAGE_BYTES_PER_PIXEL)

    small, large = args.sizes
    rows = []
    for name, extra in CONFIGS.items():
        a, b = measure(small, extra), measure(large, extra)
        slope = (b["grown_bytes"] - a["grown_bytes"]) / (large * large - small * small)
        changes = len(b["stages"]) + b["told"]
        estimate = DECODE_BYTES_PER_PIXEL + BASE_BYTES_PER_PIXEL + STAGE_BYTES_PER_PIXEL * changes
        rows.append((name, a["grown_bytes"], b["grown_bytes"], slope, ", ".join(b["stages"]) or "none", estimate))
        print(f"{name}: +{a['grown_bytes'] / 2**20:.0f} MB at {small}², +{b['grown_bytes'] / 2**20:.0f} MB at "
              f"{large}², {slope:.0f} B/px (estimate {estimate:.0f} B/px)", flush=True)
    lines = [
        "# Peak memory per input pixel (calibration of engine/pipeline/memory.py)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; one thread; `python benchmarks/memory_budget.py`.",
        "",
        f"| plan | grown at {small}² | grown at {large}² | slope (bytes/px) | stages kept | estimate (bytes/px) |",
        "|---|---|---|---|---|---|",
    ]
    for name, a, b, slope, stages, estimate in rows:
        lines.append(f"| {name} | {a / 2**20:.0f} MB | {b / 2**20:.0f} MB | {slope:.0f} | {stages} | {estimate:.0f} |")
    lines += ["", "The estimate must not be below the measured slope (a photo is refused only when it clearly "
              "cannot fit)."]
    args.out.write_text("\n".join(lines) + "\n")
    return 0 if all(estimate >= slope for _, _, _, slope, _, estimate in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
