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

``--variants`` (a separate run, results in benchmarks/results/still-luma-variants.md) measures what else was tried
to find the real crops the shipped rule misses, each fitted the same way on training photos only and checked on the
same sets: the still luma with a looser clipping rule (a block counts unless more than a sixteenth of its pixels is
clipped) or a smaller still area (64 blocks and a sixteenth of the photo); the JPEG-domain evidence of the file's own
DCT (in the still blocks, the quantised luma AC coefficients in zigzag positions 3–20, divided by the file's IJG luma
table for its quality: their mean count of non-zero values, and the share of 8-px blocks where all are zero); and,
for each, a threshold that flags at most 1 % of the training photos re-saved at that quality (whole photos, as the
app measures them) instead of the 99.5th percentile over photos and windows. Which variants to measure, and that
budget rule, were chosen after looking at the real PolyU crops' and ground truths' statistics; none was shipped.

Run: nice -n 10 python benchmarks/calibrate_still_luma.py [--workers 2] [--cache FILE.jsonl]
[--out benchmarks/results/still-luma.md] [--variants]
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


#: The variants of ``--variants``: name -> (clipping rule, least still blocks, least still share, feature, sign).
#: sign −1: a lower value is the noisier one (the threshold is then a lower bound).
VARIANTS: dict[str, tuple[str, int, float, str, int]] = {
    "shipped (luma 0.7–2 px, strict clipping, 128 blocks and ⅛)": ("strict", 128, 0.125, "luma", 1),
    "looser clipping (≤ 1/16 of a block's pixels)": ("loose", 128, 0.125, "luma", 1),
    "smaller still area (64 blocks and 1/16)": ("strict", 64, 0.0625, "luma", 1),
    "JPEG DCT: mean non-zero AC (zigzag 3–20) per still 8-px block": ("strict", 128, 0.125, "dct_count", 1),
    "JPEG DCT: share of still 8-px blocks with all those AC zero": ("strict", 128, 0.125, "dct_zero", -1),
}
#: The share of a 16-px block's pixels that may be clipped under the looser rule.
LOOSE_CLIPPED_SHARE = 1.0 / 16.0
#: Zigzag positions of the quantised AC coefficients counted by the JPEG-domain evidence, [3, 21): the whole second
#: to fifth anti-diagonals (periods of 16 down to about 3 px); DC is 0, and 1 and 2 are the two gradients a smooth
#: shading leaves in any still block.
DCT_ZIGZAG = (3, 21)


def _zigzag() -> np.ndarray:
    order = sorted(((i, j) for i in range(8) for j in range(8)),
                   key=lambda p: (p[0] + p[1], p[0] if (p[0] + p[1]) % 2 else p[1]))
    return np.array([i * 8 + j for i, j in order])


def _variant_blocks(img: np.ndarray, quality: int | None) -> dict[str, np.ndarray]:
    """Per 16-px block of ``img`` (float HxWx3 in [0, 1]): ``flat`` (luma 2–12 px std under the engine's
    STILL_FLAT_255), ``strict`` / ``loose`` (unclipped under either rule), ``luma`` (0.7–2 px std, levels),
    ``dct_count`` (mean over its four 8-px blocks of the non-zero quantised AC in :data:`DCT_ZIGZAG`) and
    ``dct_zero`` (the share of them with none). The DCT is taken on the decoded luma on the 8-px grid from the
    photo's corner, divided by the IJG luma table for ``quality`` (``None``: 95)."""
    import cv2

    from engine.analysis.jpeg_tables import STD_LUMA, ijg_table
    from engine.analysis.noise_level import STILL_FLAT_255, still_block_maps
    from engine.color import JFIF_YCBCR
    maps = still_block_maps(img)
    nh, nw = maps["still"].shape
    rgb = np.asarray(img, np.float32)[: nh * 16, : nw * 16, :3] * np.float32(255.0)
    y = np.ascontiguousarray((rgb @ JFIF_YCBCR.T)[..., 0])

    def per16(a: np.ndarray) -> np.ndarray:
        return a.reshape(nh, 16, nw, 16).swapaxes(1, 2).reshape(nh, nw, 256)

    flat = per16(cv2.GaussianBlur(y, (0, 0), 2.0, borderType=cv2.BORDER_REFLECT)
                 - cv2.GaussianBlur(y, (0, 0), 12.0, borderType=cv2.BORDER_REFLECT)).std(axis=2) < STILL_FLAT_255
    clipped = per16(((rgb.min(axis=2) <= 3.0) | (rgb.max(axis=2) >= 252.0)).astype(np.float32)).mean(axis=2)
    b8 = (y - 128.0).reshape(nh * 2, 8, nw * 2, 8).swapaxes(1, 2).reshape(-1, 8, 8)
    table = ijg_table(STD_LUMA, int(quality or 95)).astype(np.float32)
    coef = np.rint(np.stack([cv2.dct(b) for b in b8]) / table).reshape(-1, 64)[:, _zigzag()]
    count = (coef[:, DCT_ZIGZAG[0]:DCT_ZIGZAG[1]] != 0).sum(axis=1).reshape(nh, 2, nw, 2).swapaxes(1, 2)
    count = count.reshape(nh, nw, 4)
    return {"flat": flat, "strict": maps["unclipped"], "loose": clipped <= LOOSE_CLIPPED_SHARE, "luma": maps["luma"],
            "dct_count": count.mean(axis=2), "dct_zero": (count == 0).mean(axis=2)}


def _variant_values(blocks: dict[str, np.ndarray], sl: tuple[slice, slice]) -> dict[str, float | None]:
    """Each :data:`VARIANTS` value over the blocks ``sl`` (``None`` where the still area is too small)."""
    out: dict[str, float | None] = {}
    for name, (clip, least, share, feature, _) in VARIANTS.items():
        unclipped = blocks[clip][sl]
        still = blocks["flat"][sl] & unclipped
        n = int(still.sum())
        if n < max(least, share * int(unclipped.sum())):
            out[name] = None
        elif feature == "luma":
            out[name] = float(np.median(blocks["luma"][sl][still]))
        else:
            out[name] = float(np.mean(blocks[feature][sl][still]))
    return out


def _measure_variants(job: tuple[str, str, int]) -> dict:
    """Per photo: the :data:`VARIANTS` values of the whole photo and (training groups) of its 256-px windows,
    and the shipped still-area evidence (chroma and luma present) for the union with what the engine finds."""
    from engine.analysis.analyser import full_res_tiles
    from engine.analysis.noise_level import STILL_BLOCK, still_evidence
    group, path, resave = job
    img, q = _load(path, resave)
    m = still_evidence(full_res_tiles(img), q)
    blocks = _variant_blocks(img, q)
    row = {"group": group, "path": Path(path).name, "quality": q, "shipped_luma": m["still_luma_255"],
           "chroma_present": m["still_chroma_present"], "whole": _variant_values(blocks, (slice(None), slice(None))),
           "windows": []}
    if group in FIT_GROUPS:
        k, s = WINDOW // STILL_BLOCK, STEP // STILL_BLOCK
        nh, nw = blocks["flat"].shape
        row["windows"] = [_variant_values(blocks, (slice(i, i + k), slice(j, j + k)))
                          for i in range(0, nh - k + 1, s) for j in range(0, nw - k + 1, s)]
    return row


def _flagged(r: dict, name: str, sign: int, knots: dict[int, float]) -> bool:
    """Whether photo row ``r`` passes variant ``name``'s threshold for its quality (knots at 75 and 95)."""
    value = r["whole"][name]
    t = float(np.interp(float(r["quality"] or 95), [75, 95], [knots[75], max(knots[75], knots[95])]))
    return value is not None and sign * value > t


def _variant_knots(rows: list[dict], name: str, sign: int, rule: str, percentile: float,
                   budget: float) -> dict[int, float]:
    """The fitted (sign-mirrored) thresholds at q75 and as stored (95) for one variant and rule."""
    knots = {}
    for group, q in (("train q75", 75), ("train", 95)):
        sel = [r for r in rows if r["group"] == group]
        if rule == "p99.5":
            v = [sign * r["whole"][name] for r in sel if r["whole"][name] is not None]
            v += [sign * w[name] for r in sel for w in r["windows"] if w[name] is not None]
            knots[q] = float(np.percentile(v, percentile)) if v else float("inf")
        else:
            v = [sign * r["whole"][name] if r["whole"][name] is not None else -np.inf for r in sel]
            knots[q] = float(np.percentile(v, 100.0 - budget, method="higher")) if v else float("inf")
    return knots


def variants_report(rows: list[dict], header: str, percentile: float, budget: float = 1.0,
                    budgets: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5)) -> str:
    """The variants table: per variant and threshold rule, the knots at q75 and as stored, and what each flags."""
    from engine.analysis import noise_level as nl
    sets = ("lq", "gt", "train", "train q75", "val", "val q75")
    lq = [r for r in rows if r["group"] == "lq"]
    shipped = sum(1 for r in lq if r["chroma_present"] >= 1
                  or r["shipped_luma"] > nl.still_luma_threshold_255(r["quality"]))
    lines = [header, "", "`python benchmarks/calibrate_still_luma.py --variants`. Thresholds fitted on the training "
             "split only (q75: the training photos re-saved at quality 75; as stored: ≈ q95, also used for the "
             "validation photos as stored); for a lower-is-noisier value, its mirror. Rules: **p99.5**, the "
             f"{percentile:g}th percentile over the photos and their 256-px windows with enough still area (the "
             f"shipped rule); **photos {budget:g} %**, the value at most {budget:g} % of the training photos exceed "
             "(whole photos, as the app measures them). Counts: photos flagged by the variant alone; last column, lq "
             "crops flagged by the variant or the shipped still-area chroma.", "",
             "| variant | rule | q75 | as stored | " + " | ".join(sets) + f" | lq with chroma (shipped: {shipped}) |",
             "|---|---|---|---|" + "---|" * len(sets) + "---|"]
    for name, (_, _, _, _, sign) in VARIANTS.items():
        for rule in ("p99.5", f"photos {budget:g} %"):
            knots = _variant_knots(rows, name, sign, rule, percentile, budget)
            counts = [f"{sum(_flagged(r, name, sign, knots) for r in rows if r['group'] == g)}/"
                      f"{sum(r['group'] == g for r in rows)}" for g in sets]
            union = sum(_flagged(r, name, sign, knots) or r["chroma_present"] >= 1 for r in lq)
            lines.append(f"| {name} | {rule} | {sign * knots[75]:.3f} | {sign * max(knots[75], knots[95]):.3f} | "
                         + " | ".join(counts) + f" | {union} |")
    lines += ["", "### Added to the shipped evidence, by the share of training photos allowed", "",
              "Flagged by the shipped still-area evidence (luma or chroma, the engine's thresholds) or the variant, "
              "its threshold the value at most that share of the training photos exceed; a count in brackets is what "
              "the variant adds to the shipped evidence.", "",
              "| variant | training photos allowed | q75 | " + " | ".join(sets) + " |",
              "|---|---|---|" + "---|" * len(sets)]
    for name, (_, _, _, _, sign) in VARIANTS.items():
        if name.startswith("shipped"):
            continue
        for share in budgets:
            knots = _variant_knots(rows, name, sign, "photos", percentile, share)
            cells = []
            for g in sets:
                sel = [r for r in rows if r["group"] == g]
                base = [r["chroma_present"] >= 1 or r["shipped_luma"] > nl.still_luma_threshold_255(r["quality"])
                        for r in sel]
                both = [b or _flagged(r, name, sign, knots) for r, b in zip(sel, base, strict=True)]
                cells.append(f"{sum(both)} (+{sum(both) - sum(base)})")
            lines.append(f"| {name} | {share:g} % | {sign * knots[75]:.3f} | " + " | ".join(cells) + " |")
    return "# Still-area noise evidence: variants tried for the missed real crops\n\n" + "\n".join(lines)


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


def _cached_run(jobs: list[tuple[str, str, int]], measure, cache: Path | None, workers: int) -> list[dict]:
    """``measure`` over ``jobs`` in ``workers`` processes, reusing and appending to the jsonl ``cache``."""
    rows: list[dict] = []
    if cache and cache.is_file():
        rows = [json.loads(line) for line in cache.read_text().splitlines() if line.strip()]
    done = {(r["group"], r["path"]) for r in rows}
    todo = [j for j in jobs if (j[0], Path(j[1]).name) not in done]
    with Pool(workers) as pool:
        for row in pool.imap_unordered(measure, todo, chunksize=4):
            rows.append(row)
            if cache:
                with cache.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    return rows


def main(argv: list[str] | None = None) -> int:
    from real_noise import PAIRS, SHARED, machine
    from training.data import load_split

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--percentile", type=float, default=99.5)
    ap.add_argument("--camera", type=int, default=3, help="every N-th training photo through the camera pipeline")
    ap.add_argument("--cache", type=Path, default=None, help="jsonl of measured rows (reused if present)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--variants", action="store_true", help="measure the variants instead (see the docstring)")
    args = ap.parse_args(argv)
    header = machine()
    train, val = load_split(SHARED / "data" / "clean")
    if args.variants:
        folder = PAIRS / "noise_real_polyu_crops"
        jobs = [(g, str(p), 0) for g in ("lq", "gt") for p in sorted((folder / g).iterdir())]
        jobs += [("val", str(p), 0) for p in val] + [("val q75", str(p), 75) for p in val]
        jobs += [("train q75", str(p), 75) for p in train] + [("train", str(p), 0) for p in train]
        rows = _cached_run(jobs, _measure_variants, args.cache, args.workers)
        report(variants_report(rows, header, args.percentile), args.out)
        return 0
    jobs = [("train", str(p), 0) for p in train] + [("train q75", str(p), 75) for p in train]
    jobs += [("train q90", str(p), 90) for p in train[::2]]
    jobs += [(g, str(p), i) for i, p in list(enumerate(train))[:: args.camera] for g in ("camera", "camera q75")]
    jobs += [("val", str(p), 0) for p in val] + [("val q75", str(p), 75) for p in val]
    folder = PAIRS / "noise_real_polyu_crops"
    jobs += [(g, str(p), 0) for g in ("lq", "gt") for p in sorted((folder / g).iterdir())]
    jobs += [("real", str(p), 0) for p in sorted((SHARED / "data" / "real").glob("noisy_*"))]
    rows = _cached_run(jobs, _measure, args.cache, args.workers)

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
