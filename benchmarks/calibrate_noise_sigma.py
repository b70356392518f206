"""Fit the σ the analysis tells a white-noise denoiser (engine.analysis.noise_level.TOLD_GAIN_*).

On training photos of ../shared/data/clean (never the validation split, never the real pairs),
camera-realistic noise (engine.degrade.camera, JPEG and sharpening as sampled) and white Gaussian
noise are added; for each case the analysis' two-scale noise measurement (nlf_fine_255,
nlf_coarse_255) is taken and the registry's FFDNet is run over a σ grid to find the σ with the
best PSNR. A non-negative least-squares fit of best σ ≈ a·fine + b·max(coarse − fine, 0) gives the
gains. Prints the fit and the per-case table; writes benchmarks/results/noise-sigma-calibration.md.

Run: .venv/bin/python benchmarks/calibrate_noise_sigma.py [--images 16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.analysis.analyser import full_res_tiles  # noqa: E402
from engine.analysis.noise_level import nlf_measurements  # noqa: E402
from engine.degrade import gaussian_noise  # noqa: E402
from engine.degrade.camera import camera_noise  # noqa: E402
from engine.experts.base import ExpertContext  # noqa: E402
from training.data import load_split, load_uint8, to_float  # noqa: E402
from training.metrics import psnr  # noqa: E402

SIGMAS = (2, 4, 6, 9, 12, 16, 20, 25, 30, 40, 50)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "noise-sigma-calibration.md")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from real_noise import ffdnet_expert, machine  # noqa: E402
    expert = ffdnet_expert()
    if expert is None:
        raise SystemExit("no FFDNet expert in the registry")
    train, _ = load_split(args.data) if args.data else load_split()
    paths = train[:: max(1, len(train) // args.images)][: args.images]
    rows = []
    for i, path in enumerate(paths):
        clean = to_float(load_uint8(path))
        if i % 3 == 2:
            s = float(np.random.default_rng(i).uniform(5, 40))
            noisy, ref, what = gaussian_noise(clean, s / 255, np.random.default_rng(i)), clean, f"white σ={s:.0f}"
        else:
            strength = float(np.random.default_rng(i).uniform(0.15, 0.6))
            noisy, ref, p = camera_noise(clean, strength, seed=i)
            what = f"camera s={strength:.2f} q={p.jpeg_quality}"
        m = nlf_measurements(full_res_tiles(noisy))
        scores = {s: psnr(expert.run(noisy, ExpertContext(noise_sigma=np.float32(s / 255))), ref) for s in SIGMAS}
        best = max(scores, key=scores.get)
        rows.append((path.name, what, m["nlf_fine_255"], m["nlf_coarse_255"], best, psnr(noisy, ref), scores[best]))
        print(rows[-1], flush=True)
    fine = np.array([r[2] for r in rows])
    excess = np.maximum(np.array([r[3] for r in rows]) - fine, 0.0)
    best = np.array([r[4] for r in rows], float)
    from scipy.optimize import nnls
    (a, b), _ = nnls(np.stack([fine, excess], 1), best)
    pred = a * fine + b * excess
    lines = ["# Noise σ told to FFDNet: calibration on the camera pipeline", "",
             f"Machine: {machine()}. `python benchmarks/calibrate_noise_sigma.py --images {args.images}` "
             "(training photos only).", "",
             f"Fit: best σ ≈ {a:.2f}·nlf_fine + {b:.2f}·max(nlf_coarse − nlf_fine, 0) (8-bit levels); "
             f"median |error| {np.median(np.abs(pred - best)):.1f} levels.", "",
             "| photo | noise | fine | coarse | best σ | fitted σ | input dB | best dB |",
             "|---|---|---|---|---|---|---|---|"]
    for r, pr in zip(rows, pred, strict=True):
        lines.append(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.1f} | {r[4]} | {pr:.1f} | {r[5]:.2f} | {r[6]:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
