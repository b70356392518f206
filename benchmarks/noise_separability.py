"""Can any noise measurement tell real camera noise from clean photos? A detection ceiling.

For every measurement the analysis could base the noise verdict on, the threshold is set at the
98th percentile over clean photos (``../shared/data/clean``: at most 2 % false positives), and the
share of noisy photos above it is reported for:

- camera-pipeline noise (:func:`engine.degrade.camera.camera_noise` on training photos, strength
  U(0.02, 0.5), cameras drawn by seed) — what a rule may be fitted on;
- the real PolyU crops (``pairs/noise_real_polyu_crops``, validation only: nothing is fitted here)
  and, as a check, their ground truths (a detector should stay silent on them).

Measurements: the analysis' own (``noise_index_255``, ``nlf_fine_255``, ``nlf_coarse_255``,
``sigma_measured_255``, ``still_chroma_255`` — judged here against the clean photos as stored; the
app judges it at the file's JPEG quality, see benchmarks/calibrate_still_chroma.py — the bundled
network's noise probability) and band energies: luma / Cb / Cr difference-of-Gaussians bands
(0–0.7, 0.7–1.5, 1.5–3, 3–6 px), block std over 16-px blocks, 10th percentile (flattest blocks)
and median, in 8-bit levels.

Run: ``python benchmarks/noise_separability.py [--clean-step 2] [--camera 60]
[--out benchmarks/results/noise-separability.md]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from _host import report  # benchmarks/_host.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

BANDS = ((0.0, 0.7), (0.7, 1.5), (1.5, 3.0), (3.0, 6.0))
BLOCK = 16


def _blur(x: np.ndarray, s: float) -> np.ndarray:
    return x if s == 0 else cv2.GaussianBlur(x, (0, 0), s, borderType=cv2.BORDER_REFLECT)


def band_features(img: np.ndarray) -> dict[str, float]:
    """Flattest-block (p10) and median (p50) std of each band of luma, Cb and Cr (8-bit levels)."""
    y = img @ np.array([0.299, 0.587, 0.114], np.float32)
    planes = {"y": y, "cb": (img[..., 2] - y) * 0.564, "cr": (img[..., 0] - y) * 0.713}
    out = {}
    for name, ch in planes.items():
        ch = np.ascontiguousarray(ch, np.float32)
        for a, b in BANDS:
            band = (_blur(ch, a) - _blur(ch, b))[8:-8, 8:-8]
            h, w = band.shape[0] // BLOCK * BLOCK, band.shape[1] // BLOCK * BLOCK
            stds = band[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).std(axis=(1, 3)).ravel() * 255
            out[f"{name} {a:g}–{b:g} px p10"] = float(np.percentile(stds, 10))
            out[f"{name} {a:g}–{b:g} px p50"] = float(np.percentile(stds, 50))
    return out


def features(img: np.ndarray) -> dict[str, float]:
    from engine.analysis.analyser import full_res_tiles
    from engine.analysis.learned import shared_analyser
    from engine.analysis.measurements import chroma_noise_level, noise_level
    from engine.analysis.noise_level import nlf_measurements, still_chroma

    tiles = full_res_tiles(img)
    m = noise_level(tiles) | chroma_noise_level(tiles) | nlf_measurements(tiles) | still_chroma(tiles)
    m["noise_index_255"] = max(m["sigma_255"], m["chroma_excess_255"])  # as engine.analysis.analyser.measure
    out = {k: float(m[k]) for k in ("noise_index_255", "nlf_fine_255", "nlf_coarse_255", "sigma_measured_255",
                                    "still_chroma_255")}
    net = shared_analyser()
    if net is not None and min(img.shape[:2]) >= 32:
        out["network noise probability"] = float(net.report(img).kinds["noise"].measurements["probability"])
    out.update(band_features(img))
    return out


def main(argv: list[str] | None = None) -> int:
    from real_noise import PAIRS, SHARED, load, machine
    from engine.degrade.camera import camera_noise
    from training.data import load_split, load_uint8, to_float

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean-step", type=int, default=2, help="every N-th clean photo")
    ap.add_argument("--camera", type=int, default=60, help="camera-pipeline cases (training photos)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    header = machine()
    sets: dict[str, list[dict[str, float]]] = {"clean": [], "camera": [], "polyu": [], "polyu gt": []}
    for path in sorted((SHARED / "data" / "clean").iterdir())[:: args.clean_step]:
        sets["clean"].append(features(to_float(load_uint8(path))))
    train, _ = load_split(SHARED / "data" / "clean")
    rng = np.random.default_rng(7)
    for i, path in enumerate(train[:: max(1, len(train) // args.camera)][: args.camera]):
        noisy, _, _ = camera_noise(to_float(load_uint8(path)), float(rng.uniform(0.02, 0.5)), seed=i)
        sets["camera"].append(features(noisy))
    folder = PAIRS / "noise_real_polyu_crops"
    for name in sorted(p.name for p in (folder / "lq").iterdir()):
        sets["polyu"].append(features(load(folder / "lq" / name)))
        sets["polyu gt"].append(features(load(folder / "gt" / name)))
    keys = list(sets["clean"][0])
    lines = ["# Noise detection ceiling: real camera noise vs clean photos", "",
             f"Machine: {header}. `python benchmarks/noise_separability.py --clean-step {args.clean_step} "
             f"--camera {args.camera}`. " + ", ".join(f"{k}: {len(v)}" for k, v in sets.items()) + " photos.", "",
             "Threshold = the 98th percentile over clean photos (≤ 2 % false positives); share of each set above it. "
             "Values: median (p10–p90), 8-bit levels.", "",
             "| measurement | clean median (p98) | camera pipeline detected | PolyU noisy detected "
             "| PolyU ground truth flagged | camera median | PolyU noisy median (p10–p90) |",
             "|---|---|---|---|---|---|---|"]
    for k in keys:
        v = {s: np.array([r[k] for r in rows if k in r]) for s, rows in sets.items()}
        if not all(a.size for a in v.values()):
            continue
        t = np.percentile(v["clean"], 98)
        p10, p90 = np.percentile(v["polyu"], 10), np.percentile(v["polyu"], 90)
        lines.append(f"| {k} | {np.median(v['clean']):.2f} ({t:.2f}) | {(v['camera'] > t).mean():.0%} | "
                     f"{(v['polyu'] > t).mean():.0%} | {(v['polyu gt'] > t).mean():.0%} | "
                     f"{np.median(v['camera']):.2f} | {np.median(v['polyu']):.2f} ({p10:.2f}–{p90:.2f}) |")
    text = "\n".join(lines) + "\n"
    report(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
