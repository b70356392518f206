"""Does the camera pipeline's noise look like real camera noise? A side-by-side of noise statistics.

Real: the 60 pairs of ../shared/data/pairs/noise_real_polyu_crops (noise = noisy − ground truth,
the ground truth being the mean of hundreds of frames of the same camera). Simulated: engine.degrade.camera
on 256-px crops of clean training photos, measured the same way: each photo goes through one
sampled camera ``K`` times with different noise, and the noise is one frame − the mean of the K
frames, scaled by sqrt(K / (K − 1)) (which makes its covariance, so std and every correlation,
that of the noise itself). Measuring against the noise-free pipeline instead would add the
quantisation error of a second JPEG encoding (≈ 3 levels at q 90) that the real set's averaged
ground truth does not have. Shot levels: strength U(0.25, 0.55), chosen so that the overall
level is close to the real set's (the comparison is about the noise's shape). For both:
noise std per RGB channel as a function of intensity (8 bins of the clean image's mean, 8-bit
levels), cross-channel correlation (R–G, G–B, R–B), RGB lag-1 spatial correlation, and luma /
chroma (JFIF Y, Cb) std and their spatial correlation at lags 1–4. Also the pipeline without
its in-camera noise reduction (the previous model) and white Gaussian noise (the old synthetic
model), for contrast. Writes benchmarks/results/camera-vs-real.md.

Run: .venv/bin/python benchmarks/camera_vs_real.py [--images 30]
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from engine.degrade import gaussian_noise  # noqa: E402
from engine.degrade.camera import camera_pipeline, sample_camera_params  # noqa: E402
from real_noise import PAIRS, load, machine  # noqa: E402

BINS = 8
LAGS = (1, 2, 3, 4)
#: Frames per simulated photo for the mean-of-frames reference.
FRAMES = 6
CROP = 256
YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)


def _lag(a: np.ndarray, d: int) -> float:
    h = np.corrcoef(a[:, :-d].ravel(), a[:, d:].ravel())[0, 1]
    v = np.corrcoef(a[:-d].ravel(), a[d:].ravel())[0, 1]
    return float((h + v) / 2)


def stats(noise: np.ndarray, clean: np.ndarray, acc: dict) -> None:
    """Accumulate per-bin variance sums and correlations of one noise field (float HxWx3, [0, 1] units)."""
    idx = np.minimum((clean.mean(axis=2) * BINS).astype(int), BINS - 1)
    acc.setdefault("bin_sq", np.zeros((BINS, 3)))
    acc.setdefault("bin_n", np.zeros(BINS))
    for b in range(BINS):
        m = idx == b
        if m.sum() >= 200:
            acc["bin_sq"][b] += (noise[m] ** 2).sum(axis=0)
            acc["bin_n"][b] += m.sum()
    c = np.corrcoef(noise.reshape(-1, 3).T)
    acc.setdefault("cross", []).append([c[0, 1], c[1, 2], c[0, 2]])
    acc.setdefault("lag", []).append(np.mean([_lag(noise[..., ch], 1) for ch in range(3)]))
    acc.setdefault("std", []).append(noise.std(axis=(0, 1)))
    ycc = noise @ YCC.T
    acc.setdefault("ycc_std", []).append(ycc.std(axis=(0, 1)))
    acc.setdefault("y_lag", []).append([_lag(ycc[..., 0], d) for d in LAGS])
    acc.setdefault("c_lag", []).append([(_lag(ycc[..., 1], d) + _lag(ycc[..., 2], d)) / 2 for d in LAGS])


def summary(acc: dict) -> dict:
    with np.errstate(invalid="ignore", divide="ignore"):
        nlf = np.sqrt(acc["bin_sq"] / acc["bin_n"][:, None]) * 255
    return {"std": np.mean(acc["std"], axis=0) * 255, "cross": np.nanmean(acc["cross"], axis=0),
            "lag": float(np.nanmean(acc["lag"])), "ycc_std": np.mean(acc["ycc_std"], axis=0) * 255,
            "y_lag": np.nanmean(acc["y_lag"], axis=0), "c_lag": np.nanmean(acc["c_lag"], axis=0), "nlf": nlf}


def row(name: str, s: dict) -> str:
    std, cross = s["std"], s["cross"]
    return (f"| {name} | {std[0]:.2f} / {std[1]:.2f} / {std[2]:.2f} | {cross[0]:.2f} / {cross[1]:.2f} / "
            f"{cross[2]:.2f} | {s['lag']:.2f} |")


def ycc_row(name: str, s: dict) -> str:
    y, cb, cr = s["ycc_std"]
    return (f"| {name} | {y:.2f} / {cb:.2f} / {cr:.2f} | {cb / y:.2f} | " + " / ".join(f"{v:.2f}" for v in s["y_lag"])
            + " | " + " / ".join(f"{v:.2f}" for v in s["c_lag"]) + " |")


def nlf_row(name: str, s: dict) -> str:
    cells = [("–" if not np.isfinite(v[0]) else f"{v[0]:.1f}/{v[1]:.1f}/{v[2]:.1f}") for v in s["nlf"]]
    return f"| {name} | " + " | ".join(cells) + " |"


def shape_row(name: str, s: dict) -> str:
    g = s["nlf"][:, 1]
    return f"| {name} | " + " | ".join("–" if not np.isfinite(v) else f"{v / np.nanmax(g):.2f}" for v in g) + " |"


def simulate(photos: list[np.ndarray], nr: bool) -> dict:
    acc: dict = {}
    for i, clean in enumerate(photos):
        s = float(np.random.default_rng(i).uniform(0.25, 0.55))
        p = sample_camera_params(np.random.default_rng([i, 1700]), noise_strength=s, second_order=False)
        if not nr:
            p = replace(p, luma_nr=0.0, chroma_nr=min(p.chroma_nr, 2.5))
        frames = np.stack([camera_pipeline(clean, 1000 * i + k, p)[0] for k in range(FRAMES)])
        mean = frames.mean(axis=0)
        stats((frames[0] - mean) * np.sqrt(FRAMES / (FRAMES - 1)), mean, acc)
    return summary(acc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=30)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "camera-vs-real.md")
    args = ap.parse_args(argv)
    from training.data import load_split, load_uint8, to_float
    folder = PAIRS / "noise_real_polyu_crops"
    real: dict = {}
    for name in sorted(os.listdir(folder / "lq")):
        lq, gt = load(folder / "lq" / name), load(folder / "gt" / name)
        stats(lq - gt, gt, real)
    data = Path(os.environ.get("RESTORA_SHARED", ROOT.parent / "shared")) / "data" / "clean"
    train, _ = load_split(data)
    photos = [to_float(load_uint8(p))[:CROP, :CROP]
              for p in train[:: max(1, len(train) // args.images)][: args.images]]
    white: dict = {}
    for i, clean in enumerate(photos):
        w = gaussian_noise(clean, 3.0 / 255, np.random.default_rng(i))
        stats(w - clean, clean, white)
    results = [("real (PolyU)", summary(real)), ("camera pipeline", simulate(photos, True)),
               ("camera pipeline without luma NR (before)", simulate(photos, False)),
               ("white Gaussian σ 3", summary(white))]
    lines = ["# Camera pipeline vs real camera noise", "",
             f"Machine: {machine()} (shared, loaded). `python benchmarks/camera_vs_real.py --images {args.images}`. "
             "Real: the 60 noise_real_polyu_crops pairs (noisy − ground truth, the mean of many frames). Camera "
             f"pipeline: engine.degrade.camera on {CROP}-px crops of {args.images} clean training photos, strength "
             "U(0.25, 0.55), cameras drawn by seed, one frame − the mean of "
             f"{FRAMES} frames (× sqrt({FRAMES}/{FRAMES - 1})), like the real set's reference. \"Before\": the same "
             "cameras without the luma noise reduction and with the previous chroma NR range (σ ≤ 2.5 px).", "",
             "| noise | std R / G / B (levels) | cross-channel corr. R–G / G–B / R–B | RGB lag-1 corr. |",
             "|---|---|---|---|"]
    lines += [row(n, s) for n, s in results]
    lines += ["", "Luma / chroma (JFIF Y, Cb, Cr) of the noise: std, chroma-to-luma ratio, and spatial correlation "
              "(mean of horizontal and vertical) at lags 1 / 2 / 3 / 4 px:", "",
              "| noise | std Y / Cb / Cr | Cb / Y | luma corr. lag 1/2/3/4 | chroma corr. lag 1/2/3/4 |",
              "|---|---|---|---|---|"]
    lines += [ycc_row(n, s) for n, s in results]
    lines += ["", "Noise std per channel (R/G/B, 8-bit levels) by intensity of the clean image (bins of 1/8):", "",
              "| noise | " + " | ".join(f"{b / BINS:.2f}–{(b + 1) / BINS:.2f}" for b in range(BINS)) + " |",
              "|---|" + "---|" * BINS]
    lines += [nlf_row(n, s) for n, s in results]
    lines += ["", "Shape of the green channel's noise-level function (std / its maximum):", "",
              "| noise | " + " | ".join(f"{b / BINS:.2f}–{(b + 1) / BINS:.2f}" for b in range(BINS)) + " |",
              "|---|" + "---|" * BINS]
    lines += [shape_row(n, s) for n, s in results[:3]]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
