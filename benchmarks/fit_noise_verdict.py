"""Fit and check the noise verdict (engine.analysis.noise_level.noise_verdict), a logistic regression
on a few flat-block measurements (engine.analysis.noise_level.verdict_features).

Fit (training data only): the training split of ../shared/data/clean. Negatives: each photo as stored
or re-saved at a JPEG quality drawn from 70–95 (Pillow, 4:2:0), and the camera pipeline run on it
without sensor noise (engine.degrade.camera, same camera, then the same re-save). Positives: the
camera pipeline with sensor noise at strength U(0.15, 0.6) (benchmarks/results/camera-vs-real.md:
U(0.25, 0.55) matches the real PolyU noise's std), in-camera JPEG q70–96, then the same re-save draw.
Check, never fitted on: the held-out split of the clean photos (as stored and re-saved q75), the real
PolyU noisy crops (``pairs/noise_real_polyu_crops/lq``, detection) and their ground truths (``gt``),
and ``data/real/noisy_*``. The threshold is the lowest that keeps the training negatives' false
positives at or under ``--fp``.

Run: nice -n 10 python benchmarks/fit_noise_verdict.py [--step 1] [--workers 2]
[--cache /work/scratch/noisedetect/features.jsonl] [--out benchmarks/results/noise-verdict-fit.md]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from multiprocessing import Pool
from pathlib import Path

import math

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import engine.analysis.noise_level as _nl  # noqa: E402

#: Longest side of the crop the camera pipeline runs on (bounded CPU).
CAMERA_SIDE = 512


# ---------------------------------------------------------------- the candidate verdict's features
#: Share of a photo's 16-px blocks, the flattest by their luma at 2–12 px, on which the verdict's
#: features are measured: every photo has flattest blocks, so the features exist on textured photos too.
VERDICT_FLAT_SHARE = 0.05
#: Fewest blocks the verdict's features are measured on (fewer blocks in the photo: no features).
VERDICT_MIN_BLOCKS = 8
#: Offset (8-bit levels) added to a std before its log, so a perfectly flat block stays finite.
VERDICT_LOG_OFFSET = 0.05
#: The verdict's per-block measurements, in the order :func:`verdict_features` reports their medians.
VERDICT_FEATURES: tuple[str, ...] = ("vf_flat", "vf_y0", "vf_y1", "vf_y2", "vf_c", "vf_cf", "vf_lag1")


def _block_band_stds(ch: np.ndarray, a: float, b: float) -> np.ndarray:
    lo = cv2.GaussianBlur(ch, (0, 0), b, borderType=cv2.BORDER_REFLECT) if b > 0 else ch
    hi = cv2.GaussianBlur(ch, (0, 0), a, borderType=cv2.BORDER_REFLECT) if a > 0 else ch
    return _nl._blocks16(hi - lo).std(axis=1)


def verdict_features(tiles: list[np.ndarray]) -> dict[str, float]:
    """The measurements the noise verdict (:func:`noise_verdict`) is fitted on, from full-resolution
    tiles (float HxWx3 in [0, 1]); 8-bit levels unless stated.

    Blocks of :data:`_nl.STILL_BLOCK` px that are not clipped are ranked by the std of their luma
    (JFIF Y) at 2–12 px; on the flattest :data:`VERDICT_FLAT_SHARE` of them (at least
    :data:`VERDICT_MIN_BLOCKS`) the medians of the stds of: ``vf_flat`` luma at 2–12 px (how flat the
    flattest blocks are), ``vf_y0`` luma finer than 0.7 px, ``vf_y1`` luma at 0.7–2 px, ``vf_y2`` luma
    at 2–4 px, ``vf_c`` chroma (√(Cb² + Cr²)) at 1.5–6 px, ``vf_cf`` chroma finer than 1.5 px, and
    ``vf_lag1`` the neighbour correlation (−1..1) of the luma finer than 3 px (demosaicing and in-camera
    noise reduction correlate real noise over a pixel or two). ``vf_blocks``: blocks measured (0:
    nothing measured, every feature 0)."""
    from engine.color import JFIF_YCBCR

    cols: list[np.ndarray] = []
    for tile in tiles:
        t = np.asarray(tile, np.float32)[..., :3]
        if min(t.shape[:2]) < _nl.STILL_BLOCK:
            continue
        rgb = t * np.float32(255.0)
        ycc = rgb @ JFIF_YCBCR.T
        y, cb, cr = (np.ascontiguousarray(ycc[..., c]) for c in range(3))
        ok = (_nl._blocks16(rgb.min(axis=2)).min(axis=1) > 3.0) & (_nl._blocks16(rgb.max(axis=2)).max(axis=1) < 252.0)
        e = y - cv2.GaussianBlur(y, (0, 0), 3.0, borderType=cv2.BORDER_REFLECT)
        ex = np.zeros_like(e)
        ex[:, :-1] = e[:, 1:]
        ey = np.zeros_like(e)
        ey[:-1] = e[1:]
        lag1 = _nl._blocks16(e * (ex + ey) * 0.5).sum(axis=1) / (_nl._blocks16(e * e).sum(axis=1) + 1e-6)
        col = np.stack([
            _block_band_stds(y, 2.0, 12.0), _block_band_stds(y, 0.0, 0.7), _block_band_stds(y, 0.7, 2.0),
            _block_band_stds(y, 2.0, 4.0),
            np.hypot(_block_band_stds(cb, *_nl.STILL_CHROMA_BAND), _block_band_stds(cr, *_nl.STILL_CHROMA_BAND)),
            np.hypot(_block_band_stds(cb, 0.0, 1.5), _block_band_stds(cr, 0.0, 1.5)),
            lag1], axis=1)
        cols.append(col[ok])
    allb = np.concatenate(cols) if cols else np.empty((0, len(VERDICT_FEATURES)), np.float32)
    if allb.shape[0] < VERDICT_MIN_BLOCKS:
        return dict.fromkeys(VERDICT_FEATURES, 0.0) | {"vf_blocks": 0.0}
    n = max(VERDICT_MIN_BLOCKS, int(round(VERDICT_FLAT_SHARE * allb.shape[0])))
    sel = allb[np.argsort(allb[:, 0], kind="stable")[:n]]
    return {name: float(v) for name, v in zip(VERDICT_FEATURES, np.median(sel, axis=0), strict=True)} \
        | {"vf_blocks": float(n)}


def verdict_vector(measurements: dict[str, float], learned_probability: float) -> np.ndarray:
    """The classifier's input, in the order of :data:`NOISE_VERDICT_WEIGHTS`: the network's noise
    probability as log-odds (clipped to [1e-4, 1 − 1e-4]); the still-area chroma against its
    clean-photo threshold for the file's quality, log((``still_chroma_255`` + 0.05) /
    ``still_threshold_255``); and the flattest blocks' fine luma against their coarse luma,
    log((``vf_y1`` + o) / (``vf_flat`` + o)) with o = :data:`VERDICT_LOG_OFFSET` (noise adds fine
    detail where the scene is flat; a clean flat area has little at any scale)."""
    p = min(max(float(learned_probability), 1e-4), 1.0 - 1e-4)
    m = measurements
    threshold = max(float(m.get("still_threshold_255", 1.0)), 1e-3)
    still = math.log((float(m.get("still_chroma_255", 0.0)) + 0.05) / threshold)
    o = VERDICT_LOG_OFFSET
    ratio = math.log((float(m.get("vf_y1", 0.0)) + o) / (float(m.get("vf_flat", 0.0)) + o))
    return np.array([math.log(p / (1.0 - p)), still, ratio], np.float64)





def _resave(rgb: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8), "RGB").save(buf, "JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), np.float32) / 255.0


def _load(path: str) -> tuple[np.ndarray, int | None]:
    from PIL import Image

    from engine.analysis.jpeg_tables import estimate_quality, from_pillow
    with Image.open(path) as im:
        q = from_pillow(im) if im.format == "JPEG" else None
        rgb = np.asarray(im.convert("RGB"), np.float32) / 255.0
    return rgb, (estimate_quality(q).quality if q is not None else None)


def _centre(a: np.ndarray, side: int) -> np.ndarray:
    h, w = a.shape[:2]
    y, x = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return a[y:y + side, x:x + side]


#: Side of the window :func:`flattest_crop` keeps.
FLAT_CROP = 256


def flattest_crop(img: np.ndarray, side: int = FLAT_CROP) -> np.ndarray:
    """The ``side``-px window (on a grid of half-window steps) with the most still blocks (luma at
    2–12 px below :data:`engine.analysis.noise_level.STILL_FLAT_255`): a scene with flat areas,
    like the real noise crops' walls and objects, cut from a textured training photo."""
    from engine.color import JFIF_YCBCR
    h, w = img.shape[:2]
    if min(h, w) <= side:
        return img
    y = np.ascontiguousarray((img * np.float32(255.0)) @ JFIF_YCBCR[0])
    band = cv2.GaussianBlur(y, (0, 0), 2.0) - cv2.GaussianBlur(y, (0, 0), 12.0)
    best, where = -1, (0, 0)
    for y0 in range(0, h - side + 1, side // 2):
        for x0 in range(0, w - side + 1, side // 2):
            n = int((_nl._blocks16(band[y0:y0 + side, x0:x0 + side]).std(axis=1) < _nl.STILL_FLAT_255).sum())
            if n > best:
                best, where = n, (y0, x0)
    return img[where[0]:where[0] + side, where[1]:where[1] + side]


def _measure(job: tuple[str, str, int]) -> dict:
    from engine.analysis.analyser import full_res_tiles
    from engine.analysis.noise_level import still_chroma
    from engine.kinds import KINDS, NOISE
    group, path, seed = job
    img, quality = _load(path)
    rng = np.random.default_rng([seed, 77])
    resave = int(rng.integers(70, 96)) if rng.random() < 0.6 else 0
    info: dict = {"group": group, "path": Path(path).name, "seed": seed}
    if group.endswith(" flat"):
        img = flattest_crop(img)
        group = group[: -len(" flat")]
    if group in ("cam", "camclean"):
        from dataclasses import replace

        from engine.degrade.camera import camera_pipeline, sample_camera_params
        strength = float(rng.uniform(0.15, 0.6))
        p = sample_camera_params(np.random.default_rng([seed, 1700]), noise_strength=strength, jpeg=True,
                                 second_order=False)
        crop = _centre(img, CAMERA_SIDE)
        if group == "cam":
            img, _ = camera_pipeline(crop, seed, p)
        else:
            img, _ = camera_pipeline(crop, seed, replace(p, shot=0.0, read=0.0), noise=False)
        quality = p.jpeg_quality
        info["strength"] = strength
    elif group in ("val q75", "train q75"):
        resave = 75
    elif group != "train":
        resave = 0
    if resave:
        img, quality = _resave(img, resave), resave
    info["quality"] = quality
    tiles = full_res_tiles(img)
    info.update(verdict_features(tiles))
    info.update(still_chroma(tiles, quality))
    info["learned_probability"] = float(_network().scores(img)[0][KINDS.index(NOISE)])
    return info


_NET = None


def _network():
    global _NET
    if _NET is None:
        from engine.analysis.learned import LearnedAnalyser
        _NET = LearnedAnalyser(threads=1)
    return _NET


def main(argv: list[str] | None = None) -> int:
    from real_noise import PAIRS, SHARED, machine
    from training.data import load_split

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", type=int, default=1, help="every N-th training photo")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=None, help="jsonl of measured features (reused if present)")
    ap.add_argument("--flat", type=int, default=0, help="also: the flattest 256-px window of every N-th fit photo, "
                    "clean, through the camera pipeline with and without noise (groups '… flat')")
    ap.add_argument("--fp", type=float, default=0.01, help="false-positive share allowed on training negatives")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    header = machine()
    train, val = load_split(SHARED / "data" / "clean")
    fit = [(i, str(p)) for i, p in enumerate(train)][:: args.step]
    jobs = [("train", p, i) for i, p in fit] + [("cam", p, 1000 + i) for i, p in fit]
    jobs += [("camclean", p, 1000 + i) for i, p in fit[::2]] + [("train q75", p, i) for i, p in fit[1::2]]
    if args.flat:
        jobs += [(f"{g} flat", p, 2000 + i) for i, p in fit[:: args.flat] for g in ("train", "cam", "camclean")]
    jobs += [("val", str(p), 0) for p in val] + [("val q75", str(p), 0) for p in val]
    folder = PAIRS / "noise_real_polyu_crops"
    jobs += [(g, str(p), 0) for g in ("lq", "gt") for p in sorted((folder / g).iterdir())]
    jobs += [("real", str(p), 0) for p in sorted((SHARED / "data" / "real").glob("noisy_*"))]
    rows: list[dict] = []
    if args.cache and args.cache.is_file():
        rows = [json.loads(line) for line in args.cache.read_text().splitlines() if line.strip()]
    done = {(r["group"], r["path"], r["seed"]) for r in rows}
    todo = [j for j in jobs if (j[0], Path(j[1]).name, j[2]) not in done]
    # Interleaved so a stopped run still holds every group; resumable through --cache.
    todo = [todo[i] for i in np.argsort(np.random.default_rng(0).permutation(len(todo)))]
    with Pool(args.workers) as pool:
        for row in pool.imap_unordered(_measure, todo, chunksize=2):
            rows.append(row)
            if args.cache:
                with args.cache.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    report = fit_and_check(rows, args.fp)
    text = f"# Noise verdict: fit on training photos, check on real noise\n\n{header}\n\n{report}"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


#: Groups whose rows are negatives of the fit (and set the threshold), and the positives.
NEGATIVES = ("train", "train q75", "camclean")
POSITIVES = "cam"


def shipped_before(r: dict) -> bool:
    """The noise verdict before this fit: the network's presence (probability ≥ 0.5) or still-area
    colour noise above its clean threshold (the hand-made evidence that overrode the network)."""
    return r["learned_probability"] >= 0.5 or r["still_chroma_present"] >= 1.0


#: The single measurements compared (name, how to read it from a row), each thresholded alone.
SINGLE: tuple[tuple[str, object], ...] = (
    ("network noise log-odds", lambda r: verdict_vector(r, r["learned_probability"])[0]),
    ("still-area chroma / its threshold (log)", lambda r: verdict_vector(r, r["learned_probability"])[1]),
    ("flattest blocks: luma 0.7–2 px / luma 2–12 px (log)", lambda r: verdict_vector(r, r["learned_probability"])[2]),
    ("flattest blocks: luma < 0.7 px (log)", lambda r: math.log(r["vf_y0"] + VERDICT_LOG_OFFSET)),
    ("flattest blocks: luma 0.7–2 px (log)", lambda r: math.log(r["vf_y1"] + VERDICT_LOG_OFFSET)),
    ("flattest blocks: chroma 1.5–6 px (log)", lambda r: math.log(r["vf_c"] + VERDICT_LOG_OFFSET)),
    ("flattest blocks: chroma < 1.5 px (log)", lambda r: math.log(r["vf_cf"] + VERDICT_LOG_OFFSET)),
    ("flattest blocks: luma neighbour correlation", lambda r: r["vf_lag1"]),
)


def fit_and_check(rows: list[dict], fp: float) -> str:
    groups = sorted({r["group"] for r in rows})
    of = {g: [r for r in rows if r["group"] == g] for g in groups}
    X = {g: np.array([verdict_vector(r, r["learned_probability"]) for r in of[g]]) for g in groups}
    before = {g: np.array([shipped_before(r) for r in of[g]]) for g in groups}
    negatives = [g for g in NEGATIVES if g in X]
    neg = np.concatenate([X[g] for g in negatives])
    pos = X[POSITIVES]
    w = fit_logistic(np.concatenate([neg, pos]), np.r_[np.zeros(len(neg)), np.ones(len(pos))])
    score = {g: X[g] @ w[1:] + w[0] for g in groups}

    def threshold(values: dict[str, np.ndarray], share: float) -> float:
        return max(float(np.quantile(values[g], 1.0 - share, method="higher")) for g in negatives)

    shares = (fp, 0.02, 0.05)
    lines = ["## Fitted logistic verdict", "",
             "Weights (intercept, network log-odds, still-area chroma, flat-block fine/coarse luma): "
             + ", ".join(f"{v:.4f}" for v in w) + ". Threshold: the given percentile of every negative "
             "training group (" + ", ".join(negatives) + "). Positives: " + POSITIVES + ".", "",
             "| set | n | before (network ≥ 0.5 or still chroma) | " + " | ".join(
                 f"fitted, training FP {100 * q:g} %" for q in shares) + " | before or fitted (1 %) |",
             "|---|---|---|" + "---|" * (len(shares) + 1)]
    thr = {q: threshold(score, q) for q in shares}
    for g in groups:
        lines.append(f"| {g} | {len(score[g])} | {100 * before[g].mean():.1f}% | " + " | ".join(
            f"{100 * np.mean(score[g] > thr[q]):.1f}%" for q in shares)
            + f" | {100 * np.mean(before[g] | (score[g] > thr[fp])):.1f}% |")
    lines += ["", "## Each measurement alone", "",
              "Threshold: the 99th percentile of every negative training group; flagged share per set.", "",
              "| measurement | threshold | " + " | ".join(groups) + " |", "|---|---|" + "---|" * len(groups)]
    for name, get in SINGLE:
        vals = {g: np.array([get(r) for r in of[g]]) for g in groups}
        t = threshold(vals, 0.01)
        lines.append(f"| {name} | {t:.2f} | " + " | ".join(f"{100 * np.mean(vals[g] > t):.0f}%" for g in groups) + " |")
    lines += ["", "## Medians per set", "", "| measurement | " + " | ".join(groups) + " |",
              "|---|" + "---|" * len(groups)]
    for name, get in SINGLE:
        lines.append(f"| {name} | " + " | ".join(f"{np.median([get(r) for r in of[g]]):.2f}" for g in groups) + " |")
    if POSITIVES in of:
        strength = np.array([r["strength"] for r in of[POSITIVES]])
        lines += ["", "## Camera-pipeline positives by noise strength", "",
                  "| strength | n | before | network log-odds | still chroma (log) | flat fine/coarse (log) |",
                  "|---|---|---|---|---|---|"]
        for lo, hi in ((0.15, 0.3), (0.3, 0.45), (0.45, 0.6)):
            sel = (strength >= lo) & (strength < hi)
            if sel.any():
                med = np.median(X[POSITIVES][sel], axis=0)
                lines.append(f"| {lo:.2f}–{hi:.2f} | {int(sel.sum())} | {100 * before[POSITIVES][sel].mean():.0f}% | "
                             + " | ".join(f"{v:.2f}" for v in med) + " |")
    return "\n".join(lines)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iters: int = 50) -> np.ndarray:
    """Logistic regression by Newton's method (IRLS) with an L2 penalty (intercept unpenalised);
    returns (intercept, weights…)."""
    a = np.c_[np.ones(len(x)), x]
    w = np.zeros(a.shape[1])
    reg = np.eye(a.shape[1]) * l2
    reg[0, 0] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(a @ w)))
        g = a.T @ (p - y) + reg @ w
        h = (a * (p * (1 - p))[:, None]).T @ a + reg
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
