"""Did moving the classical experts from Rec. 601 to Rec. 709 luma (engine.color.luminance,
the one definition) change their results on the real pairs?

Runs each classical expert that reads luma (deblur, dehaze, low light, derain) on the first
``--pairs`` pairs of its real set in ../shared/data/pairs (validation only), once with the
Rec. 601 weights the experts used before and once with engine.color's Rec. 709, at severity
0.5, and reports PSNR against the ground truth: mean and worst case of each, and of the
difference. Writes benchmarks/results/luma-standard.md.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/luma_standard.py [--pairs 8]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.color import JFIF_YCBCR, luminance  # noqa: E402
from engine.experts.base import ExpertContext  # noqa: E402
from engine.experts.classical import deblur, dehaze, derain, lowlight  # noqa: E402
from engine.imageio import load_photo  # noqa: E402

PAIRS = ROOT.parent / "shared" / "data" / "pairs"
SETS = {"blur_real_levin": (deblur, deblur.WienerDeblur), "haze_reside": (dehaze, dehaze.DarkChannelDehaze),
        "lowlight_real_lol_train": (lowlight, lowlight.LIMEEnhance),
        "rain_synthetic": (derain, derain.StreakMedianDerain)}


def rec601(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32, copy=False) @ JFIF_YCBCR[0]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1).astype(np.float64) - b) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "luma-standard.md")
    args = ap.parse_args(argv)
    lines = ["# Rec. 601 → Rec. 709 luma in the classical experts", "",
             f"Machine: {platform.processor() or platform.machine()}, shared 2-core CPU under load "
             f"(other benchmarks running); {time.strftime('%Y-%m-%d', time.gmtime())}.", "",
             f"First {args.pairs} pairs of each real set, severity 0.5, PSNR (dB) against the ground truth.", "",
             "| set | expert | input | Rec. 601 mean | Rec. 709 mean | 601 worst gain | 709 worst gain "
             "| 709 − 601 mean | 709 − 601 worst | max pixel change |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, (module, cls) in SETS.items():
        expert, rows = cls(), []
        for lq in sorted((PAIRS / name / "lq").glob("*"))[:args.pairs]:
            x, y = load_photo(lq).pixels, load_photo(PAIRS / name / "gt" / lq.name).pixels
            if y.shape != x.shape:  # RESIDE ITS: the hazy image lacks the clear one's 10-px border
                dy, dx = (y.shape[0] - x.shape[0]) // 2, (y.shape[1] - x.shape[1]) // 2
                y = y[dy:dy + x.shape[0], dx:dx + x.shape[1]]
            outs = []
            for weights in (rec601, luminance):
                module.luminance = weights
                outs.append(expert.run(x, ExpertContext(severity=0.5)))
            module.luminance = luminance
            rows.append((psnr(x, y), psnr(outs[0], y), psnr(outs[1], y), float(np.abs(outs[0] - outs[1]).max())))
        if not rows:
            continue
        a = np.array(rows)
        d = a[:, 2] - a[:, 1]
        lines.append(f"| {name} | `{expert.info.id}` | {a[:, 0].mean():.2f} | {a[:, 1].mean():.3f} | "
                     f"{a[:, 2].mean():.3f} | {(a[:, 1] - a[:, 0]).min():+.3f} | {(a[:, 2] - a[:, 0]).min():+.3f} | "
                     f"{d.mean():+.3f} | {d.min():+.3f} | {a[:, 3].max():.3f} |")
        print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
