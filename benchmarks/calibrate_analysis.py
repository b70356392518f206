"""Fit the analyser's measurement → severity knots (engine/analysis/calibration.py).

Degrades a deterministic calibration subset of ../shared/data/clean (every 12th file, disjoint
from the detection benchmark's subset) with engine.degrade at strengths 0.1 … 1.0 and prints
the CALIBRATION table to paste into engine/analysis/calibration.py.

Run: .venv/bin/python benchmarks/calibrate_analysis.py [--every 12] [--kinds noise,blur,...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.analysis.analyser import measure  # noqa: E402
from engine.analysis.calibration import CALIBRATION, CLEAN_P95_SEVERITY  # noqa: E402
from engine.degrade import degrade  # noqa: E402
from engine.kinds import KINDS  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "clean"
STRENGTHS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def calibration_files(every: int = 12) -> list[Path]:
    return sorted(DATA.iterdir())[0::every]


def load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), np.float32) / 255.0


def fit_knots(clean: np.ndarray, by_strength: dict[float, np.ndarray], direction: int) -> list[tuple[float, float]]:
    """Monotone knots: (clean median, 0), (clean p95, CLEAN_P95_SEVERITY), (median at s, s)."""
    clean = direction * clean[np.isfinite(clean)]
    knots = [(float(np.median(clean)), 0.0), (float(np.percentile(clean, 95)), CLEAN_P95_SEVERITY)]
    for s in STRENGTHS:
        values = direction * by_strength[s]
        x = float(np.median(values[np.isfinite(values)]))
        if x > knots[-1][0] + 1e-6 and s > knots[-1][1]:
            knots.append((x, s))
    return knots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=12)
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds to refit")
    args = parser.parse_args()
    files = calibration_files(args.every)
    images = [load(f) for f in files]
    print(f"# {len(images)} calibration images (every {args.every}th of {DATA})", file=sys.stderr)
    t0 = time.time()
    clean = [measure(img) for img in images]
    table = {}
    for kind in args.kinds.split(","):
        name, direction, _ = CALIBRATION[kind]
        clean_values = np.array([m[kind][name] for m in clean], np.float64)
        by_strength = {}
        for s in STRENGTHS:
            by_strength[s] = np.array([measure(degrade(img, kind, s, seed=i))[kind][name]
                                       for i, img in enumerate(images)], np.float64)
        table[kind] = (name, direction, fit_knots(clean_values, by_strength, direction))
        med = ", ".join(f"{s}: {np.nanmedian(v):.4g}" for s, v in by_strength.items())
        print(f"# {kind}/{name}: clean median {np.nanmedian(clean_values):.4g} p95 "
              f"{np.nanpercentile(clean_values, 95):.4g}; medians {med}  ({time.time() - t0:.0f} s)", file=sys.stderr)
    print("CALIBRATION: dict[str, tuple[str, int, tuple[tuple[float, float], ...]]] = {")
    for kind, (name, direction, knots) in table.items():
        print(f'    "{kind}": ("{name}", {direction}, (')
        line = ""
        for knot in (f"({x:.4g}, {y:.3g})," for x, y in knots):  # lines of at most 112 characters
            if line and len(line) + len(knot) > 111:
                print(line)
                line = ""
            line = f"{line} {knot}" if line else f"        {knot}"
        print(line)
        print("    )),")
    print("}")


if __name__ == "__main__":
    main()
