"""Fit and check the still-area chroma noise detector (engine.analysis.noise_level.still_chroma).

Fit (training data only): ``still_chroma_255`` over the training split of ../shared/data/clean as
stored and re-saved at each JPEG quality of ``--qualities`` (Pillow, 4:2:0); the 99th percentile
per quality is the clean-photo threshold (``STILL_THRESHOLDS``). Check, never fitted on: the
validation split of the clean photos (false positives), the real PolyU noisy crops
(``pairs/noise_real_polyu_crops/lq``, detection) and their ground truths (``gt``: a clean digital
photo saved the same way, which must not be flagged), camera-pipeline noise on training photos
(engine.degrade.camera), and ``data/real/noisy_*.png``. The PolyU files are JPEG quality 75 (their
tables say so), so they are judged against the q75 threshold, as the app does.

Run: python benchmarks/calibrate_still_chroma.py [--step 4] [--qualities 75,90] [--camera 30]
[--out benchmarks/results/still-chroma.md]
"""

from __future__ import annotations

import argparse
import io
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from _host import report  # benchmarks/_host.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _load(path: str, quality: int = 0) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    if quality:
        buf = io.BytesIO()
        rgb.save(buf, "JPEG", quality=quality)
        buf.seek(0)
        rgb = Image.open(buf).convert("RGB")
    return np.asarray(rgb, np.float32) / 255.0


def _measure(job: tuple[str, str, int]) -> tuple[str, str, int, float, float]:
    from engine.analysis.analyser import full_res_tiles
    from engine.analysis.noise_level import still_chroma
    group, path, q = job
    if group == "camera":
        from engine.degrade.camera import camera_noise
        strength = float(np.random.default_rng(q).uniform(0.02, 0.5))
        img, _, _ = camera_noise(_load(path), strength, seed=q)
    else:
        img = _load(path, q)
    m = still_chroma(full_res_tiles(img))
    return group, path, q, m["still_chroma_255"], m["still_blocks"]


def main(argv: list[str] | None = None) -> int:
    from real_noise import PAIRS, SHARED, machine
    from training.data import load_split

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", type=int, default=4, help="every N-th training photo for the re-saved fits "
                    "(the as-stored fit uses all of them)")
    ap.add_argument("--qualities", default="75,90")
    ap.add_argument("--camera", type=int, default=30)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    header = machine()
    qualities = [int(q) for q in args.qualities.split(",")]
    train, val = load_split(SHARED / "data" / "clean")
    fit = [str(p) for p in train[:: args.step]]
    jobs = [(f"train q{q}", p, q) for q in qualities for p in fit] + [("train", str(p), 0) for p in train]
    jobs += [("val", str(p), 0) for p in val] + [("val q75", str(p), 75) for p in val]
    folder = PAIRS / "noise_real_polyu_crops"
    jobs += [(g, str(p), 0) for g in ("lq", "gt") for p in sorted((folder / g).iterdir())]
    jobs += [("camera", str(p), i) for i, p in enumerate(train[1:: max(1, len(train) // args.camera)][: args.camera])]
    jobs += [("real", str(p), 0) for p in sorted((SHARED / "data" / "real").glob("noisy_*"))]
    with Pool(args.workers) as pool:
        rows = pool.map(_measure, jobs, chunksize=4)
    v: dict[str, np.ndarray] = {}
    for g in dict.fromkeys(r[0] for r in rows):
        v[g] = np.array([r[3] for r in rows if r[0] == g])
    thresholds = [(q, float(np.percentile(v[f"train q{q}"], 99.5))) for q in qualities]
    thresholds.append((95, float(np.percentile(v["train"], 99.5))))
    t75 = dict(thresholds).get(75, thresholds[-1][1])
    lines = ["# Still-area chroma noise: fit on training photos, check on real noise", "",
             f"Machine: {header}. `python benchmarks/calibrate_still_chroma.py --step {args.step} --qualities "
             f"{args.qualities} --camera {args.camera}`. Fit on the {len(train)} training photos of shared/data/clean "
             f"as stored (≈ JPEG q95 film scans; also the threshold for PNG) and {len(fit)} of them re-saved at each "
             "quality; checked on the "
             f"{v['val'].size} validation photos, the 60 PolyU crops (JPEG q75) and their ground truths, "
             f"{v['camera'].size} camera-pipeline cases on training photos and data/real/noisy_*.", "",
             "Fitted thresholds (99.5th percentile over the training photos, 8-bit levels): "
             + ", ".join(f"q{q}: {t:.3f}" for q, t in thresholds) + " (q95 = as stored; also used for PNG).", "",
             "## Operating points (ROC-style)", "",
             "Threshold set at a percentile of the clean training photos at the file's quality (q75 for the "
             "PolyU crops and the q75 re-saves; as stored for the rest).", "",
             "| clean percentile | q75 threshold | stored threshold | PolyU noisy detected "
             "| PolyU ground truth flagged | clean val FP (stored) | clean val FP (re-saved q75) "
             "| clean train FP (stored) | camera pipeline detected |",
             "|---|---|---|---|---|---|---|---|---|"]
    for pct in (80, 90, 95, 98, 99, 99.5, 100):
        a = float(np.percentile(v["train q75"], pct)) if "train q75" in v else t75
        b = float(np.percentile(v["train"], pct))
        lines.append(f"| {pct} | {a:.3f} | {b:.3f} | {(v['lq'] > a).mean():.0%} | {(v['gt'] > a).mean():.0%} | "
                     f"{(v['val'] > b).mean():.1%} | {(v['val q75'] > a).mean():.1%} | {(v['train'] > b).mean():.1%} | "
                     f"{(v['camera'] > b).mean():.0%} |")
    lines += ["", "## Distributions (8-bit levels)", "", "| set | n | median | p10 | p90 | max | no still blocks |",
              "|---|---|---|---|---|---|---|"]
    for g, a in v.items():
        lines.append(f"| {g} | {a.size} | {np.median(a):.3f} | {np.percentile(a, 10):.3f} | "
                     f"{np.percentile(a, 90):.3f} | {a.max():.3f} | {(a == 0).mean():.0%} |")
    lines += ["", "Real photos: " + ", ".join(f"{Path(r[1]).name} {r[3]:.2f} ({int(r[4])} still blocks)"
                                              for r in rows if r[0] == "real")]
    text = "\n".join(lines) + "\n"
    report(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
