"""Fit the blur stage's noise guard on TRAINING photos only (issue 12): does the deblurred output
hold amplified noise, or restored detail?

The plan's noise guard (:func:`engine.pipeline.orchestrator.amplified_noise`) drops a blur stage
whose output's fine-scale noise σ (``nlf_fine_255``) rose by ×1.25 and 0.2 levels. Restored
texture on a genuinely blurred photo reads as that rise too. This script records, for every blur
stage the default plan runs on a degraded training photo, the stage's input, its change, both
analysis reports and the PSNR of the input and of the output against the ground truth, so that
candidate guards can be scored on whether their verdict matches "output better than input".

Photos: the training split of ``shared/data/clean`` (:func:`training.data.load_split`), a fixed
shuffled order (seed 1212), the central 256 × 256 crop (a photo as small as a Levin pair; keeps the
run short on 2 cores). Case ``i`` is degraded by :func:`training.realistic.degrade_realistic_mix`
(blur in linear light: camera shake, a defocus disc or a Gaussian; camera-realistic sensor noise,
demosaic, in-camera noise reduction, sharpening and JPEG) with the recipe ``RECIPES[i % 4]``:
blur alone, blur with camera noise of strength U(0.1, 0.6), blur with mild camera noise
U(0.03, 0.2), or camera noise alone U(0.1, 0.7) (an unblurred noisy photo: what the guard was made
for, real PolyU crops); blur strength U(0.25, 0.75).

``run`` appends one JSON line per case to ``--rows`` and one ``.npz`` per blur stage (its input, change
and ground truth; scratch, not committed: ``report`` needs the cases of the same run) to ``--cases``
(resumable). ``report`` scores today's guard and
the candidates (:data:`SHARES`, :data:`FACTORS`, a blur-only whole-photo factor, the fine/mid band energy
ratio) on the stages the guard decides and writes ``benchmarks/results/blur-guard-fit.md`` below its
conclusions. ``diagnose LQ=GT ...`` prints the same readings for validation photos (never fitted on).

Run: ``python benchmarks/blur_guard_fit.py run --photos 463 [--minutes 40]`` then
``python benchmarks/blur_guard_fit.py report``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _host import SCRATCH, append_rows, cpu_model, shuffled_training_photos  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
ROWS = RESULTS / "blur-guard-fit" / "rows.jsonl"
CASES = SCRATCH / "blurguard" / "cases"
CROP = 256
RECIPES = ("blur", "blur+noise", "blur+mild noise", "noise")


def training_photos(count: int) -> list[Path]:
    return shuffled_training_photos(count, seed=1212)


def centre_crop(x: np.ndarray, size: int = CROP) -> np.ndarray:
    h, w = x.shape[:2]
    top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
    return np.ascontiguousarray(x[top:top + size, left:left + size])


def degrade_case(clean: np.ndarray, index: int) -> tuple[np.ndarray, dict]:
    """The degraded, 8-bit-rounded photo of case ``index`` and its recipe."""
    from engine.kinds import BLUR, NOISE
    from training.realistic import degrade_realistic_mix

    rng = np.random.default_rng([index, 1213])
    kind = RECIPES[index % len(RECIPES)]
    blur = float(rng.uniform(0.25, 0.75))
    noise = {"blur": 0.0, "blur+noise": rng.uniform(0.1, 0.6), "blur+mild noise": rng.uniform(0.03, 0.2),
             "noise": rng.uniform(0.1, 0.7)}[kind]
    recipe = ([(BLUR, blur)] if kind != "noise" else []) + ([(NOISE, float(noise))] if noise else [])
    deg, _, _ = degrade_realistic_mix(clean, recipe, seed=index)
    deg = (np.round(np.clip(deg, 0, 1) * 255) / 255).astype(np.float32)
    return deg, {"recipe": kind, "blur": blur if kind != "noise" else 0.0, "noise": float(noise)}


def case_row(path: Path, index: int, restorer, cases: Path) -> dict:
    from training.data import load_uint8, to_float
    from training.metrics import psnr

    clean = centre_crop(to_float(load_uint8(path)))
    deg, recipe = degrade_case(clean, index)
    row = {"name": path.name, "index": index, **recipe, "input": psnr(deg, clean)}
    row.update(blur_stage_row(deg, clean, restorer, cases / f"{index:04d}.npz"))
    return row


def blur_stage_row(deg: np.ndarray, clean: np.ndarray, restorer, save: Path) -> dict:
    """Restore ``deg`` with the default plan; for its blur stage (when the severity verdict ran)
    the stage's PSNR in and out against ``clean``, today's guard verdict, the verdict of the
    severities alone, the reports' noise readings; its input and change saved to ``save``."""
    from engine.photo import Photo
    from engine.pipeline import orchestrator as O
    from engine.pipeline.job import RestoreOptions
    from training.metrics import psnr

    seen: dict = {}
    original = O.judge

    def recording_judge(result, stage, input_report, image=None):
        if stage.name == "blur" and image is not None and result.delta is not None:
            delta = np.asarray(result.delta, np.float32)
            out = np.clip(image + delta, 0.0, 1.0)
            probe = copy.copy(result)
            saved = O.amplified_noise
            O.amplified_noise = lambda before, after: None
            try:
                original(probe, stage, input_report, image)
            finally:
                O.amplified_noise = saved
            nb, na = input_report.kinds.get("noise"), result.output_report.kinds.get("noise")
            seen.update(stage_in=psnr(image, clean), stage_out=psnr(out, clean),
                        old_guard_drops=O.amplified_noise(input_report, result.output_report) is not None,
                        severity_drops=bool(probe.dropped),
                        fine_before=nb.measurements.get("nlf_fine_255") if nb else None,
                        fine_after=na.measurements.get("nlf_fine_255") if na else None,
                        noise_before=input_report.severities().get("noise"),
                        blur_before=input_report.severities().get("blur"))
            save.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(save, image=image.astype(np.float32), delta=delta, clean=clean)
        return original(result, stage, input_report, image)

    O.judge = recording_judge
    try:
        restored, _ = restorer.restore_photo(Photo(pixels=deg.copy()), RestoreOptions())
    finally:
        O.judge = original
    return {**seen, "blur_stage": bool(seen), "output": psnr(restored.pixels, clean)}


def run(photos: int, minutes: float, rows: Path, cases: Path) -> int:
    from engine.experts.default import build_registry
    from engine.pipeline.job import Restorer

    restorer = Restorer(build_registry())
    append_rows(rows, training_photos(photos), minutes, lambda path, i: case_row(path, i, restorer, cases))
    return 0


def load_rows(rows: Path) -> list[dict]:
    return [json.loads(x) for x in rows.read_text().splitlines()] if rows.exists() else []


#: Candidate guards scored by ``report``: the share of the input's least structured blocks that count
#: as flat (:data:`engine.analysis.noise_rise.FLAT_SHARE`) and the factor by which their fine-scale σ
#: must rise (with at least :data:`engine.pipeline.orchestrator.NOISE_AMPLIFICATION_MIN_255` levels).
SHARES = (0.1, 0.25, 0.5)
FACTORS = (1.1, 1.15, 1.2, 1.25, 1.3, 1.4, 1.5, 1.75, 2.0)


# ---------------------------------------------------------------- candidate: noise in the input's flat areas
# Sharpened noise should raise the fine-scale std everywhere, flat areas included; restored detail
# mostly along the edges and textures it brings back. The blocks are chosen on the stage's *input*,
# smoothed first so that its own noise does not choose them, and the same blocks are measured before
# and after. (Written as an engine guard first; not shipped, see the results file.)

#: Block edge in pixels.
BLOCK = 8
#: σ (px) of the Gaussian the input is smoothed with before its structure is measured: coarser than
#: the noise, finer than the edges a deblurrer restores.
STRUCTURE_PX = 2.0
#: σ (px) of the Gaussian the fine high-pass subtracts (as ``nlf_fine_255``,
#: :data:`engine.analysis.noise_level.FINE_HIGHPASS_PX`).
FINE_HIGHPASS_PX = 0.7
#: Share of the input's unclipped blocks, the least structured, that count as flat.
FLAT_SHARE = 0.25  # the default; report scores SHARES
#: Rows of the photo read at a time (a multiple of BLOCK): bounds the memory on a large photo.
BAND_ROWS = 256
#: Blocks whose mean luma is within this of 0 or 1 are left out (clipped: no noise to measure).
CLIP_MARGIN = 2.0 / 255.0


def _block_stats(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per BLOCK×BLOCK block of two luma arrays (float32 HxW in [0, 1]): the input's structure
    (mean gradient magnitude after smoothing), its mean, and the fine high-pass std of each."""
    h, w = before.shape
    h, w = h - h % BLOCK, w - w % BLOCK
    smooth = cv2.GaussianBlur(before, (0, 0), STRUCTURE_PX)
    gy, gx = np.gradient(smooth)
    grad = np.hypot(gx, gy)[:h, :w]

    def blocks(x: np.ndarray) -> np.ndarray:
        return x[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).swapaxes(1, 2).reshape(-1, BLOCK * BLOCK)

    def fine(x: np.ndarray) -> np.ndarray:
        return blocks(x - cv2.GaussianBlur(x, (0, 0), FINE_HIGHPASS_PX)).std(axis=1)

    return blocks(grad).mean(axis=1), blocks(before).mean(axis=1), fine(before), fine(after)


def flat_noise_levels(image: np.ndarray, delta, rows: int = BAND_ROWS) -> tuple[float, float]:
    """The fine-scale noise σ (8-bit levels) of ``image`` (float HxWx3 in [0, 1], a stage's input)
    and of ``clip(image + delta)`` (its output; ``delta`` an array or a change kept on disk, read
    by rows), each the median of the block high-pass stds over the same blocks: the
    :data:`FLAT_SHARE` least structured unclipped blocks of the input, read in bands of ``rows`` rows
    (rounded down to a multiple of :data:`BLOCK`). ``(0, 0)`` for a photo with no block to measure."""
    from engine.color import luminance

    height = image.shape[0]
    step = max(BLOCK, rows - rows % BLOCK)
    parts = []
    for top in range(0, height, step):
        band = slice(top, min(top + step, height))
        x = np.asarray(image[band], np.float32)[..., :3]
        y = np.clip(x + np.asarray(delta[band], np.float32)[..., :3], 0.0, 1.0)
        parts.append(_block_stats(luminance(x).astype(np.float32), luminance(y).astype(np.float32)))
    if not parts:
        return 0.0, 0.0
    structure, mean, fine_in, fine_out = (np.concatenate(p) for p in zip(*parts, strict=True))
    keep = (mean > CLIP_MARGIN) & (mean < 1.0 - CLIP_MARGIN)
    if keep.sum() < 4:
        return 0.0, 0.0
    structure, fine_in, fine_out = structure[keep], fine_in[keep], fine_out[keep]
    flat = structure <= np.quantile(structure, FLAT_SHARE)
    return float(np.median(fine_in[flat]) * 255.0), float(np.median(fine_out[flat]) * 255.0)


def flat_levels(cases: Path, index: int, share: float) -> tuple[float, float]:
    global FLAT_SHARE
    with np.load(cases / f"{index:04d}.npz") as z:
        image, delta = z["image"], z["delta"]
    saved, FLAT_SHARE = FLAT_SHARE, share
    try:
        return flat_noise_levels(image, delta)
    finally:
        FLAT_SHARE = saved


#: The heading above which ``report`` keeps what the results file already says (the conclusions).
GENERATED = "## Measured (written by `blur_guard_fit.py report`)"
#: Whole-pixel shifts (±px) and border (px) of the aligned PSNR, as benchmarks/real_blur.py aligns.
MAX_SHIFT, BORDER = 4, 12


def aligned_psnr(out: np.ndarray, gt: np.ndarray) -> float:
    """The PSNR of ``out`` against ``gt`` at the whole-pixel shift that matches best (the border
    left out): a deblurrer whose kernel estimate is off-centre shifts the photo."""
    from training.metrics import psnr

    b, h, w = BORDER, gt.shape[0], gt.shape[1]
    ref = gt[b:h - b, b:w - b]
    return max(psnr(out[b + dy:h - b + dy, b + dx:w - b + dx], ref)
               for dy in range(-MAX_SHIFT, MAX_SHIFT + 1) for dx in range(-MAX_SHIFT, MAX_SHIFT + 1))


def band_gains(cases: Path, index: int) -> tuple[float, float]:
    """The output's luma energy over the input's in two bands: fine (the image minus its Gaussian of
    0.7 px, the band ``nlf_fine_255`` reads) and mid (Gaussian of 0.7 px minus Gaussian of 2 px).
    Deblurring restores both; sharpened noise adds mostly to the fine band."""
    from engine.color import luminance

    with np.load(cases / f"{index:04d}.npz") as z:
        image, delta = z["image"], z["delta"]
    gains = []
    for lo, hi in ((0.0, 0.7), (0.7, 2.0)):
        e = []
        for x in (image, np.clip(image + delta, 0, 1)):
            y = luminance(x)
            a = y if lo == 0 else cv2.GaussianBlur(y, (0, 0), lo)
            e.append(float(np.mean((a - cv2.GaussianBlur(y, (0, 0), hi))[8:-8, 8:-8] ** 2)))
        gains.append(e[1] / max(e[0], 1e-12))
    return gains[0], gains[1]


def aligned_gain(cases: Path, index: int) -> float:
    with np.load(cases / f"{index:04d}.npz") as z:
        image, delta, clean = z["image"], z["delta"], z["clean"]
    return aligned_psnr(np.clip(image + delta, 0, 1), clean) - aligned_psnr(image, clean)


def score(rows: list[dict], drops: list[bool], key: str = "gain") -> dict:
    """How a guard's verdicts (``drops``, one per row) fare: agreement with "the output is better
    than the input" (the stage's PSNR change vs the ground truth, row ``key``), and that change (dB)
    when kept, 0 when dropped."""
    gain = np.array([r[key] for r in rows])
    drop = np.array(drops, bool)
    chosen = np.where(drop, 0.0, gain)
    return {"agree": float(np.mean(drop == (gain <= 0.0))), "mean": float(chosen.mean()), "worst": float(chosen.min()),
            "kept_worse": int(np.sum(~drop & (gain <= 0.0))), "dropped_better": int(np.sum(drop & (gain > 0.0)))}


def report(rows_path: Path, cases: Path, out: Path) -> int:
    from engine.pipeline.orchestrator import NOISE_AMPLIFICATION_MIN_255 as MIN_255

    rows = load_rows(rows_path)
    staged = [r for r in rows if r.get("blur_stage")]
    judged = [r for r in staged if not r["severity_drops"] and (cases / f"{r['index']:04d}.npz").exists()]
    for r in judged:
        r["gain"] = r["stage_out"] - r["stage_in"]
        r["aligned"] = aligned_gain(cases, r["index"])
    counts = ", ".join(f"{k} {sum(r['recipe'] == k for r in rows)}" for k in RECIPES)
    levels = {s: [flat_levels(cases, r["index"], s) for r in judged] for s in SHARES}
    lines = [GENERATED, "",
             f"Machine: {cpu_model()}, {os.cpu_count()} logical cores, shared and loaded (PSNR is deterministic). "
             f"Command: `python benchmarks/blur_guard_fit.py run --photos N` then `report`; rows in "
             f"`{rows_path.relative_to(ROOT) if rows_path.is_relative_to(ROOT) else rows_path}`.", "",
             f"{len(rows)} training cases ({counts}); "
             f"the default plan ran a blur stage on {len(staged)}, and on {len(judged)} of them the severity verdict "
             "kept it, so the noise guard decides. Per guard over those: how often its verdict matches "
             "\"the stage's output is closer to the ground truth than its input\", the cases it keeps that got "
             "worse and drops that got better, and the stage's PSNR change (dB) with the guard's choice "
             "(kept: output − input; dropped: 0), mean and worst.", "",
             "Aligned: both shifted by the whole-pixel offset (±4 px) that best matches the ground truth, "
             "12 px border left out, as `real_blur.py` scores Levin.", "",
             "| guard | agrees | kept worse | dropped better | mean dB | worst dB | aligned: agrees | kept worse | "
             "dropped better | mean dB | worst dB |", "|---|---|---|---|---|---|---|---|---|---|---|"]

    def line(name: str, drops: list[bool]) -> None:
        cells = []
        for key in ("gain", "aligned"):
            s = score(judged, drops, key)
            cells.append(f"{s['agree']:.0%} | {s['kept_worse']} | {s['dropped_better']} | {s['mean']:+.2f} | "
                         f"{s['worst']:+.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    line("none (keep every stage)", [False] * len(judged))
    line("today: whole-photo `nlf_fine_255` ×1.25", [r["old_guard_drops"] for r in judged])
    line("oracle (unaligned)", [r["gain"] <= 0 for r in judged])
    for f in (1.3, 1.35, 1.4, 1.5, 1.75, 2.0):
        line(f"whole-photo `nlf_fine_255` ×{f:g} (blur only)",
             [r["fine_after"] > r["fine_before"] * f and r["fine_after"] - r["fine_before"] > MIN_255 for r in judged])
    bands = [band_gains(cases, r["index"]) for r in judged]
    for t in (1.0, 1.25, 1.5, 2.0, 3.0):
        line(f"today and fine/mid energy gain > {t:g}",
             [r["old_guard_drops"] and fine > t * mid for r, (fine, mid) in zip(judged, bands, strict=True)])
    for s in SHARES:
        for f in FACTORS:
            flat = [b > 0 and a > b * f and a - b > MIN_255 for b, a in levels[s]]
            line(f"flat {s:.0%} ×{f:g}", flat)
            both = [r["old_guard_drops"] and d for r, d in zip(judged, flat, strict=True)]
            line(f"today and flat {s:.0%} ×{f:g}", both)
    lines += ["", "The blur stages the guard decides, by recipe, with today's guard: the stage's PSNR change "
                  "(dropped: 0), unaligned and aligned, mean / worst, and how many end below their input", "",
              "| recipe | stages | mean / worst | below input | aligned mean / worst | below input |",
              "|---|---|---|---|---|---|"]
    for kind in RECIPES:
        g = [r for r in judged if r["recipe"] == kind]
        if not g:
            continue
        cells = []
        for key in ("gain", "aligned"):
            d = np.array([0.0 if r["old_guard_drops"] else r[key] for r in g])
            cells.append(f"{d.mean():+.2f} / {d.min():+.2f} | {int(np.sum(d < 0))}")
        lines.append(f"| {kind} | {len(g)} | " + " | ".join(cells) + " |")
    lines += ["", "Per case where today's guard drops the stage: recipe, stage PSNR in → out (and the aligned gain), "
                  "whole-photo fine σ before → after (today's reading), "
                  "flat-block fine σ before → after (25 % share), "
                  "the output's energy over the input's in the fine and the mid band", "",
              "| case | recipe | stage in | stage out | aligned gain | whole σ | flat σ (25 %) | fine, mid energy |",
              "|---|---|---|---|---|---|---|---|"]
    for r, (b, a), (fine, mid) in zip(judged, levels[0.25], bands, strict=True):
        if not r["old_guard_drops"]:
            continue
        lines.append(f"| {r['index']} {r['name']} | {r['recipe']} | {r['stage_in']:.2f} | {r['stage_out']:.2f} | "
                     f"{r['aligned']:+.2f} | {r['fine_before']:.2f} → {r['fine_after']:.2f} | {b:.2f} → {a:.2f} | "
                     f"×{fine:.2f}, ×{mid:.2f} |")
    text = "\n".join(lines) + "\n"
    kept = out.read_text().split(GENERATED)[0] if out.exists() and GENERATED in out.read_text() else \
        "# Blur stage noise guard: amplified noise or restored detail (TRAINING photos)\n\n"
    out.write_text(kept + text)
    print(text)
    return 0


def diagnose(pairs: list[str], cases: Path) -> int:
    """For each ``LQ=GT`` pair of files (a validation photo: read, never fitted on), the blur
    stage's readings as ``report`` tabulates them, printed as JSON lines."""
    from engine.experts.default import build_registry
    from engine.imageio import load_photo
    from engine.pipeline.job import Restorer

    restorer = Restorer(build_registry())
    for pair in pairs:
        lq, gt = (Path(x) for x in pair.split("="))
        save = cases / "diagnose" / f"{lq.stem}.npz"
        row = {"name": lq.name, **blur_stage_row(load_photo(lq).pixels, load_photo(gt).pixels, restorer, save)}
        if row.get("stage_out") is not None:
            folder, index = save.parent, 0
            target = folder / f"{index:04d}.npz"
            target.write_bytes(save.read_bytes())
            row.update(aligned=aligned_gain(folder, index), flat_25=flat_levels(folder, index, 0.25),
                       fine_mid=band_gains(folder, index))
        print(json.dumps(row, default=float), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=("run", "report", "diagnose"))
    p.add_argument("pairs", nargs="*", help="diagnose: LQ=GT file pairs")
    p.add_argument("--photos", type=int, default=463)
    p.add_argument("--minutes", type=float, default=40.0)
    p.add_argument("--rows", type=Path, default=ROWS)
    p.add_argument("--cases", type=Path, default=CASES)
    p.add_argument("--out", type=Path, default=RESULTS / "blur-guard-fit.md")
    a = p.parse_args(argv)
    if a.command == "run":
        from training.common import limit_threads

        limit_threads(1)
        return run(a.photos, a.minutes, a.rows, a.cases)
    if a.command == "diagnose":
        return diagnose(a.pairs, a.cases)
    return report(a.rows, a.cases, a.out)


if __name__ == "__main__":
    raise SystemExit(main())
