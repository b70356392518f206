"""Fit a keep/drop rule for the blur stage on TRAINING photos (issue 12): which deblurs to keep.

``blur_guard_fit.py run`` recorded, for every blur stage the default plan ran on 463 training photos
(realistic blur in linear light, with and without camera noise), the stage's input, its change and the
ground truth (``/work/scratch/blurguard/cases``, scratch) and its row (``blur-guard-fit/rows.jsonl``).
This script reads, for each stage the plan keeps today (the severity verdict and the noise guard
both pass), what the deblurrer knows at that point: its kernel estimate (confidence, anisotropy,
RMS radius, length, the confidence's checks) re-made on the stage's input with the noise σ the plan
tells the deblurrer (:func:`told_noise`: the default analysis of that input, its two-scale σ),
the ringing ratio of the output it returned, the noise readings and the blur severity of the rows.
Labels: the stage's aligned PSNR change (±4 px, 12 px border, as Levin is scored).

``readings`` writes ``benchmarks/results/blur-keep-fit/readings.jsonl`` (resumable);
``report`` scores single-reading threshold rules ("drop when reading > t" or "< t"): the
threshold is chosen on 4 of 5 folds of photos (by photo name) to maximise the summed aligned gain
and applied to the fifth, so each stage's verdict is held out. It prints the held-out score per
reading and the threshold fitted on all rows, pairs of readings, and the rule the engine ships
(:data:`engine.experts.pnp_deblur.UNSURE_MAX_RADIUS_PX`, :data:`~engine.experts.pnp_deblur.UNSURE_MIN_AGREEMENT`)
with the stages it drops. ``validation [--pairs DIR]`` prints the kernel readings of a validation set's
blurry photos (default: Levin) as loaded, for checking a rule against it, never for fitting.
Conclusions: ``benchmarks/results/blur-keep-fit.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from blur_guard_fit import CASES, ROWS, aligned_gain, load_rows  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "blur-keep-fit" / "readings.jsonl"
FOLDS = 5


def kept(rows: list[dict]) -> list[dict]:
    """The rows whose blur stage the plan keeps today."""
    return [r for r in rows if r.get("blur_stage") and "stage_in" in r and not r["severity_drops"]
            and not r["old_guard_drops"]]


def told_noise(image: np.ndarray) -> float:
    """The noise σ ([0, 1] units) the plan tells the deblurrer for ``image`` (float32 HxWx3 in [0, 1]):
    the default analysis' two-scale σ map, averaged (:func:`engine.experts.classical.noise_level.context_sigma`);
    the deblurrer's own estimate where the analysis measured no noise."""
    from engine.experts.base import ExpertContext
    from engine.experts.classical.noise_level import context_sigma
    from engine.pipeline.session import RestorationSession, default_analyser

    sigma = RestorationSession.noise_sigma(image, default_analyser(image), "blur")
    return float(context_sigma(image, ExpertContext(noise_sigma=sigma)))


def stage_readings(index: int, cases: Path) -> dict:
    """The deblurrer's readings for case ``index``'s blur stage (see the module docstring)."""
    from engine.color import luminance
    from engine.experts.pnp_deblur import PnPDeblur, fine_sigma, kernel_anisotropy, ringing_ratio, upscale_kernel

    with np.load(cases / f"{index:04d}.npz") as z:
        image, delta = z["image"], z["delta"]
    out = np.clip(image + delta, 0.0, 1.0)
    noise = told_noise(image)
    est, factor = PnPDeblur.estimate(image, None, noise)
    kernel = upscale_kernel(est.kernel, factor)
    gin, gout = luminance(image), luminance(out)
    return {"noise_told_255": noise * 255, "confidence": est.confidence, "anisotropy": kernel_anisotropy(est.kernel),
            "radius_px": est.radius_px * factor, "length_px": est.length_px * factor, "factor": factor,
            "ksize": int(kernel.shape[0]), **{f"check_{k}": float(v) for k, v in est.checks.items()},
            "ringing": ringing_ratio(gout, gin, kernel.shape[0], max(noise, fine_sigma(gin))),
            "change_rms_255": float(np.sqrt(np.mean(delta ** 2)) * 255),
            "aligned": aligned_gain(cases, index)}


def readings(rows_path: Path, cases: Path, out: Path) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(x)["index"] for x in out.read_text().splitlines()} if out.exists() else set()
    with out.open("a") as fh:
        for r in kept(load_rows(rows_path)):
            if r["index"] in done:
                continue
            row = {"index": r["index"], **stage_readings(r["index"], cases)}
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            print(json.dumps(row)[:200], flush=True)
    return 0


def validation_readings(pairs: Path) -> int:
    """The kernel-estimate readings (no deblur, no label) of each blurry photo in ``pairs/lq``, as
    the blur stage would read them on the photo as loaded: for checking a rule fitted above against
    a validation set, never for fitting it."""
    from engine.experts.pnp_deblur import PnPDeblur, kernel_anisotropy
    from training.data import load_uint8, to_float

    for path in sorted(p for p in (pairs / "lq").iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")):
        image = to_float(load_uint8(path))
        noise = told_noise(image)
        est, factor = PnPDeblur.estimate(image, None, noise)
        print(json.dumps({"pair": path.name, "noise_255": round(noise * 255, 2), "confidence": round(est.confidence, 3),
                          "anisotropy": round(kernel_anisotropy(est.kernel), 3),
                          "radius_px": round(est.radius_px * factor, 2), "length_px": round(est.length_px * factor, 2),
                          **{f"check_{k}": round(float(v), 3) for k, v in est.checks.items()}}), flush=True)
    return 0


def fold(name: str) -> int:
    return zlib.crc32(name.encode()) % FOLDS


def best_threshold(x: np.ndarray, gain: np.ndarray, above: bool) -> tuple[float, float]:
    """The threshold ``t`` whose rule (drop when ``x > t``, or ``x < t`` when not ``above``)
    maximises the summed gain of the kept stages; ties go to the rule dropping fewer. ``(t, sum)``."""
    best = (np.inf if above else -np.inf, float(gain.sum()))
    for t in np.unique(x):
        drop = x > t if above else x < t
        s = float(gain[~drop].sum())
        if s > best[1] + 1e-9:
            best = (float(t), s)
    return best


def _cross_validated(rows: list[dict], keys: tuple[str, ...], fit, drops) -> tuple[np.ndarray, list]:
    """Each row's verdict (True = drop) from the thresholds ``fit(*readings, gain)`` finds on the
    other folds; ``drops(thresholds, *readings)`` applies them. Also each fold's thresholds."""
    xs = [np.array([r[k] for r in rows], float) for k in keys]
    gain = np.array([r["aligned"] for r in rows])
    folds = np.array([fold(r["name"]) for r in rows])
    drop = np.zeros(len(rows), bool)
    ts = []
    for f in range(FOLDS):
        train, sel = folds != f, folds == f
        t = fit(*(x[train] for x in xs), gain[train])
        ts.append(t)
        drop[sel] = drops(t, *(x[sel] for x in xs))
    return drop, ts


def held_out(rows: list[dict], key: str, above: bool) -> tuple[np.ndarray, list[float]]:
    """Each row's verdict (True = drop) from the threshold fitted on the other folds."""
    return _cross_validated(rows, (key,), lambda x, gain: best_threshold(x, gain, above)[0],
                            lambda t, x: x > t if above else x < t)


def best_pair(x1: np.ndarray, x2: np.ndarray, gain: np.ndarray) -> tuple[float, float, float]:
    """The thresholds ``(t1, t2)`` whose rule "drop when ``x1 > t1`` and ``x2 < t2``" maximises the
    summed gain of the kept stages (ties: fewer drops). ``(t1, t2, sum)``."""
    best = (np.inf, -np.inf, float(gain.sum()), 0)
    for t1 in np.unique(x1):
        for t2 in np.unique(x2):
            drop = (x1 > t1) & (x2 < t2)
            s, n = float(gain[~drop].sum()), int(drop.sum())
            if s > best[2] + 1e-9:
                best = (float(t1), float(t2), s, n)
    return best[:3]


def held_out_pair(rows: list[dict], k1: str, k2: str) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Each row's verdict from the pair rule (:func:`best_pair`) fitted on the other folds."""
    return _cross_validated(rows, (k1, k2), lambda x1, x2, gain: best_pair(x1, x2, gain)[:2],
                            lambda t, x1, x2: (x1 > t[0]) & (x2 < t[1]))


def summary(gain: np.ndarray, drop: np.ndarray) -> str:
    chosen = np.where(drop, 0.0, gain)
    return (f"{chosen.mean():+.2f} | {chosen.min():+.2f} | {int(np.sum(~drop & (gain < 0)))} | "
            f"{int(np.sum(drop & (gain > 0)))} | {int(np.sum(drop & (gain > 1.0)))} | {int(drop.sum())}")


KEYS = ("confidence", "anisotropy", "radius_px", "length_px", "ringing", "change_rms_255", "noise_told_255",
        "check_connected", "check_evidence", "check_agreement", "check_sharp_tiles", "blur_before", "noise_before",
        "fine_before", "fine_ratio")


def report(rows_path: Path, out: Path) -> int:
    base = {r["index"]: r for r in load_rows(rows_path)}
    rows = []
    for line in out.read_text().splitlines():
        r = json.loads(line)
        b = base[r["index"]]
        rows.append({**b, **r, "fine_ratio": (b["fine_after"] or 0) / max(b["fine_before"] or 1e-6, 1e-6)})
    gain = np.array([r["aligned"] for r in rows])
    print(f"{len(rows)} kept stages; today: mean | worst | kept below input | dropped that gain | "
          "dropped gaining > 1 dB | dropped")
    print("today |", summary(gain, np.zeros(len(rows), bool)))
    for recipe in ("blur", "blur+noise", "blur+mild noise"):
        sel = np.array([r["recipe"] == recipe for r in rows])
        print(f"  {recipe} ({sel.sum()}) |", summary(gain[sel], np.zeros(sel.sum(), bool)))
    print("oracle |", summary(gain, gain < 0))
    for key in KEYS:
        if any(key not in r for r in rows):
            continue
        for above in (True, False):
            drop, ts = held_out(rows, key, above)
            t, _ = best_threshold(np.array([r[key] for r in rows], float), gain, above)
            blur = np.array([r["recipe"] == "blur" for r in rows])
            print(f"{key} {'>' if above else '<'} {t:.3f} (folds {', '.join(f'{v:.3g}' for v in ts)}) | "
                  f"{summary(gain, drop)} || blur only: {summary(gain[blur], drop[blur])}")
    from engine.experts.pnp_deblur import UNSURE_MAX_RADIUS_PX, UNSURE_MIN_AGREEMENT

    radius = np.array([r["radius_px"] for r in rows])
    agreement = np.array([r["check_agreement"] for r in rows])
    folds = np.array([fold(r["name"]) for r in rows])
    drop, ts = np.zeros(len(rows), bool), []
    for f in range(FOLDS):
        big = radius > UNSURE_MAX_RADIUS_PX
        t, _ = best_threshold(np.where(big, agreement, np.inf)[folds != f], gain[folds != f], False)
        ts.append(t)
        drop[folds == f] = (big & (agreement < t))[folds == f]
    fitted = ", ".join(f"{t:.3g}" for t in ts)
    print(f"\nradius > {UNSURE_MAX_RADIUS_PX} (fixed) and agreement < fitted per fold ({fitted}; inf: every "
          f"kernel above the radius), held out | {summary(gain, drop)}")
    shipped = (radius > UNSURE_MAX_RADIUS_PX) & (agreement < UNSURE_MIN_AGREEMENT)
    print(f"shipped: radius > {UNSURE_MAX_RADIUS_PX} and agreement < {UNSURE_MIN_AGREEMENT} | {summary(gain, shipped)}")
    for recipe in ("blur", "blur+noise", "blur+mild noise"):
        sel = np.array([r["recipe"] == recipe for r in rows])
        print(f"  {recipe} ({sel.sum()}) | today {summary(gain[sel], np.zeros(sel.sum(), bool))} -> "
              f"{summary(gain[sel], shipped[sel])}")
    for r, d in zip(rows, shipped, strict=True):
        if d:
            print(f"  dropped: case {r['index']} {r['name']} {r['recipe']}: radius {r['radius_px']:.2f} px, "
                  f"agreement {r['check_agreement']:.3f}, aligned gain {r['aligned']:+.2f}")

    print("\ntwo readings: drop when A > t1 and B < t2")
    for k1 in PAIR_ABOVE:
        for k2 in PAIR_BELOW:
            drop, ts = held_out_pair(rows, k1, k2)
            t1, t2, _ = best_pair(np.array([r[k1] for r in rows], float), np.array([r[k2] for r in rows], float), gain)
            blur = np.array([r["recipe"] == "blur" for r in rows])
            print(f"{k1} > {t1:.3g} and {k2} < {t2:.3g} (folds {', '.join(f'{a:.3g}/{b:.3g}' for a, b in ts)}) | "
                  f"{summary(gain, drop)} || blur only: {summary(gain[blur], drop[blur])}")
    return 0


PAIR_ABOVE = ("radius_px", "length_px", "anisotropy", "ringing")
PAIR_BELOW = ("check_agreement", "confidence", "check_evidence")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=("readings", "report", "validation"))
    p.add_argument("--rows", type=Path, default=ROWS)
    p.add_argument("--cases", type=Path, default=CASES)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--pairs", type=Path, default=ROOT.parent / "shared" / "data" / "pairs" / "blur_real_levin")
    a = p.parse_args(argv)
    if a.command == "validation":
        return validation_readings(a.pairs)
    return readings(a.rows, a.cases, a.out) if a.command == "readings" else report(a.rows, a.out)


if __name__ == "__main__":
    sys.exit(main())
