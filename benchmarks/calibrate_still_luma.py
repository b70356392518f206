"""Fit and check the still-area luma noise detector (engine.analysis.noise_level.still_luma).

Fit (training data only): ``still_luma_255`` over the training split of ../shared/data/clean, each photo
whole (as the app measures it: ``full_res_tiles``) and every 256-px window on a half-window grid (a photo
that is mostly flat, like a crop of a wall; windows are measured on the photo's own block maps), as stored
(≈ q95) and re-saved at q75 and (every other photo) q90 (Pillow, 4:2:0). Only photos and windows with
enough still area count (``STILL_LUMA_MIN_BLOCKS``, ``STILL_LUMA_MIN_SHARE``); the ``--percentile`` of
their values per quality is the clean-photo threshold (``STILL_LUMA_THRESHOLDS``, made non-decreasing in
quality by :func:`monotone_knots`).

Also fitted (``--camera N``, training photos only): the largest chroma-to-luma ratio of the still blocks
(``still_chroma_255`` / ``still_chroma_luma_255``) over every N-th training photo through the camera pipeline
(engine.degrade.camera: sensor noise at strength U(0.15, 0.6), the camera's JPEG, half of them the flattest
256-px window, each as the camera saved it and re-saved at q75) whose still chroma passes its threshold:
sensor noise reaches the chroma through demosaicing and the colour matrix and always brings luma grain
with it, while a coloured texture on a smooth surface has chroma without it
(``STILL_CHROMA_MAX_LUMA_RATIO``).

Check, never fitted on: the validation split of the clean photos as stored and re-saved at q75 (false
positives), the real PolyU noisy crops (``pairs/noise_real_polyu_crops/lq``, detection; JPEG q75 by their
tables) and their ground truths (``gt``), and ``data/real/noisy_*``; each also with the still-area chroma
(``still_chroma_present``) the analysis already uses, to show what the new evidence adds.

Run: nice -n 10 python benchmarks/calibrate_still_luma.py [--workers 2] [--cache FILE.jsonl]
[--out benchmarks/results/still-luma.md]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from _host import report  # benchmarks/_host.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

#: Side (px) of the windows cut from each training photo, and their step.
WINDOW = 256
STEP = 128
#: The training groups and the JPEG quality each fits (0: as stored; the file's tables say ≈ 95).
FIT_GROUPS = {"train q75": 75, "train q90": 90, "train": 95}


def _load(path: str, quality: int = 0) -> tuple[np.ndarray, int | None]:
    from PIL import Image

    from engine.analysis.jpeg_tables import estimate_quality, from_pillow
    with Image.open(path) as im:
        q = estimate_quality(from_pillow(im)).quality if im.format == "JPEG" else None
        rgb = im.convert("RGB")
    if quality:
        buf = io.BytesIO()
        rgb.save(buf, "JPEG", quality=quality)
        buf.seek(0)
        rgb, q = Image.open(buf).convert("RGB"), quality
    return np.asarray(rgb, np.float32) / 255.0, q


def _enough(still: int, measured: int) -> bool:
    from engine.analysis.noise_level import STILL_LUMA_MIN_BLOCKS, STILL_LUMA_MIN_SHARE
    return still >= max(STILL_LUMA_MIN_BLOCKS, STILL_LUMA_MIN_SHARE * measured)


def _camera(path: str, seed: int) -> tuple[np.ndarray, int]:
    from engine.degrade.camera import camera_pipeline, sample_camera_params
    from fit_noise_verdict import flattest_crop
    img, _ = _load(path)
    rng = np.random.default_rng([seed, 77])
    strength = float(rng.uniform(0.15, 0.6))
    params = sample_camera_params(np.random.default_rng([seed, 1700]), noise_strength=strength, jpeg=True,
                                  second_order=False)
    crop = flattest_crop(img, WINDOW) if rng.random() < 0.5 else img[:512, :512]
    out, _ = camera_pipeline(crop, seed, params)
    return out, int(params.jpeg_quality)


def _measure(job: tuple[str, str, int]) -> dict:
    from engine.analysis.analyser import full_res_tiles
    from engine.analysis.noise_level import STILL_BLOCK, still_block_maps, still_evidence
    group, path, resave = job
    if group.startswith("camera"):
        img, q = _camera(path, resave)
        if group == "camera q75":
            buf = io.BytesIO()
            from PIL import Image
            Image.fromarray(np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=75)
            buf.seek(0)
            img, q = np.asarray(Image.open(buf).convert("RGB"), np.float32) / 255.0, 75
    else:
        img, q = _load(path, resave)
    m = still_evidence(full_res_tiles(img), q)
    row = {"group": group, "path": Path(path).name, "quality": q, "luma": m["still_luma_255"],
           "share": m["still_share"], "luma_present": m["still_luma_present"],
           "chroma_present": m["still_chroma_present"], "chroma": m["still_chroma_255"],
           "chroma_luma": m["still_chroma_luma_255"], "chroma_threshold": m["still_threshold_255"], "windows": []}
    if group in FIT_GROUPS:
        maps = still_block_maps(img)
        k, s = WINDOW // STILL_BLOCK, STEP // STILL_BLOCK
        nh, nw = maps["still"].shape
        for i in range(0, nh - k + 1, s):
            for j in range(0, nw - k + 1, s):
                still = maps["still"][i:i + k, j:j + k]
                if _enough(int(still.sum()), int(maps["unclipped"][i:i + k, j:j + k].sum())):
                    row["windows"].append(float(np.median(maps["luma"][i:i + k, j:j + k][still])))
    return row


def fit(rows: list[dict], percentile: float) -> dict[int, tuple[float, int, int]]:
    """Per fitted quality: (threshold, values used, photos contributing)."""
    out = {}
    for group, q in FIT_GROUPS.items():
        values, photos = [], 0
        for r in rows:
            if r["group"] != group:
                continue
            mine = ([r["luma"]] if r["luma"] > 0 else []) + r["windows"]
            values += mine
            photos += bool(mine)
        if values:
            out[q] = (float(np.percentile(values, percentile)), len(values), photos)
    return out


def monotone_knots(thresholds: dict[int, tuple[float, int, int]]) -> tuple[tuple[int, float], ...]:
    """The fitted thresholds as ``(quality, threshold)`` knots, each raised to the largest threshold of
    the lower qualities (a running maximum): a file kept better holds at least the grain a harder-
    compressed one keeps, so its threshold is never lower; where a smaller fit group's percentile
    came out lower (q95 under q90), the conservative side is kept."""
    out, top = [], 0.0
    for q, (t, _, _) in sorted(thresholds.items()):
        top = max(top, t)
        out.append((q, round(top, 3)))
    return tuple(out)


def main(argv: list[str] | None = None) -> int:
    from real_noise import PAIRS, SHARED, machine
    from training.data import load_split

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--percentile", type=float, default=99.5)
    ap.add_argument("--camera", type=int, default=3, help="every N-th training photo through the camera pipeline")
    ap.add_argument("--cache", type=Path, default=None, help="jsonl of measured rows (reused if present)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    header = machine()
    train, val = load_split(SHARED / "data" / "clean")
    jobs = [("train", str(p), 0) for p in train] + [("train q75", str(p), 75) for p in train]
    jobs += [("train q90", str(p), 90) for p in train[::2]]
    jobs += [(g, str(p), i) for i, p in list(enumerate(train))[:: args.camera] for g in ("camera", "camera q75")]
    jobs += [("val", str(p), 0) for p in val] + [("val q75", str(p), 75) for p in val]
    folder = PAIRS / "noise_real_polyu_crops"
    jobs += [(g, str(p), 0) for g in ("lq", "gt") for p in sorted((folder / g).iterdir())]
    jobs += [("real", str(p), 0) for p in sorted((SHARED / "data" / "real").glob("noisy_*"))]
    rows: list[dict] = []
    if args.cache and args.cache.is_file():
        rows = [json.loads(line) for line in args.cache.read_text().splitlines() if line.strip()]
    done = {(r["group"], r["path"]) for r in rows}
    todo = [j for j in jobs if (j[0], Path(j[1]).name) not in done]
    with Pool(args.workers) as pool:
        for row in pool.imap_unordered(_measure, todo, chunksize=4):
            rows.append(row)
            if args.cache:
                with args.cache.open("a") as f:
                    f.write(json.dumps(row) + "\n")

    from engine.analysis import noise_level as nl
    for r in rows:  # presence by the engine's thresholds now (the cache may predate them)
        r["luma_present"] = float(r["luma"] > 0 and r["luma"] > nl.still_luma_threshold_255(r["quality"]))
    thresholds = fit(rows, args.percentile)
    cam = [r for r in rows if r["group"].startswith("camera")
           and r["chroma"] > r["chroma_threshold"] and r["chroma_luma"] > 0]
    ratios = np.array([r["chroma"] / r["chroma_luma"] for r in cam])
    ratio = float(ratios.max()) if ratios.size else float("nan")
    knots = monotone_knots(thresholds)
    lines = [header, "", f"`python benchmarks/calibrate_still_luma.py` (percentile {args.percentile:g}). "
             f"Still area needed: ≥ {nl.STILL_LUMA_MIN_BLOCKS} still blocks and ≥ {nl.STILL_LUMA_MIN_SHARE:g} of "
             f"the unclipped {nl.STILL_BLOCK}-px blocks; luma band {nl.STILL_LUMA_BAND} px.", "",
             "## Fit (training photos only)", "",
             "| quality | threshold (levels) | values (photos + windows) | photos |",
             "|---|---|---|---|"]
    lines += [f"| {q} | {t:.3f} | {n} | {p} |" for q, (t, n, p) in sorted(thresholds.items())]
    lines += ["", f"Fitted knots: `STILL_LUMA_THRESHOLDS = {knots}`; in the engine: "
              f"`{nl.STILL_LUMA_THRESHOLDS}`.", "",
              "## Chroma-to-luma ratio of still colour noise (camera pipeline on training photos)", "",
              f"{len(cam)} camera-pipeline photos with still chroma above its threshold (of "
              f"{sum(r['group'].startswith('camera') for r in rows)}); their chroma / luma ratio: median "
              f"{np.median(ratios):.2f}, 90th percentile {np.percentile(ratios, 90):.2f}, largest **{ratio:.2f}** "
              f"(fitted `STILL_CHROMA_MAX_LUMA_RATIO`; in the engine: {nl.STILL_CHROMA_MAX_LUMA_RATIO})." if ratios.size
              else "No camera-pipeline photo measured.", "",
              "## Check (the engine's thresholds; each photo at its own JPEG quality)", "",
              "| set | photos | enough still area | still luma present | still chroma present | either |",
              "|---|---|---|---|---|---|"]
    for group in ("lq", "gt", "real", "val", "val q75", "train", "train q75", "train q90", "camera", "camera q75"):
        sel = [r for r in rows if r["group"] == group]
        if not sel:
            continue
        n = len(sel)
        lum = sum(r["luma_present"] >= 1 for r in sel)
        chroma = sum(r["chroma_present"] >= 1 for r in sel)
        either = sum(r["luma_present"] >= 1 or r["chroma_present"] >= 1 for r in sel)
        enough = sum(r["luma"] > 0 for r in sel)
        lines.append(f"| {group} | {n} | {enough} | {lum} ({100 * lum / n:.1f} %) "
                     f"| {chroma} ({100 * chroma / n:.1f} %) "
                     f"| {either} ({100 * either / n:.1f} %) |")
    lines += ["", "## Real noisy crops (validation: measured, never fitted)", "",
              "| crop | still luma (levels) | threshold | still share | luma present | chroma present |",
              "|---|---|---|---|---|---|"]
    for r in sorted((r for r in rows if r["group"] == "lq"), key=lambda r: r["path"]):
        lines.append(f"| {r['path']} | {r['luma']:.2f} | {nl.still_luma_threshold_255(r['quality']):.2f} | "
                     f"{r['share']:.2f} | {int(r['luma_present'])} | {int(r['chroma_present'])} |")
    flagged = [r["path"] for r in rows if r["group"] in ("val", "val q75", "gt", "train", "train q75", "train q90")
               and r["luma_present"] >= 1]
    lines += ["", "Clean photos flagged by the still luma: " + (", ".join(sorted(set(flagged))) or "none") + "."]
    report("# Still-area luma noise: fit on training photos, check on real noise\n\n" + "\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
