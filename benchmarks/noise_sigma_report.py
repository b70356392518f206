"""Fit the σ told to FFDNet on the training cases of ``noise_sigma_fit.py`` and check it, without
refitting, on the real PolyU crops.

Each case holds FFDNet's PSNR at every σ of a grid (stopped two points past the peak) and the
analysis' measurements. A candidate mapping (measurements → σ, the form of
:func:`engine.analysis.noise_sigma.told_sigma_255`) is scored by the PSNR it loses against the
case's best σ: the PSNR at the told σ is interpolated in log σ between grid points (beyond the
measured range, the last segment's slope is extended, never rising). The gains are chosen on the
training cases only (camera pipeline + white noise) by a grid search minimising the mean loss;
the PolyU rows are only reported. ``--told`` adds the measured PSNR of FFDNet told the session's
noise map at the new and the previous σ (``noise_sigma_fit.py --set told``).

Run: ``python benchmarks/noise_sigma_report.py --train T.json … --polyu P.json … [--told R.json …]
[--out benchmarks/results/real-noise-sigma-fit.md]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

from _host import report  # benchmarks/_host.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def psnr_at(row: dict, sigma: float) -> float:
    """PSNR (dB) of the case at told ``sigma`` from its grid, interpolated in log σ."""
    pts = sorted((float(k), v) for k, v in row["scores"].items())
    xs = np.log([p[0] for p in pts])
    ys = np.array([p[1] for p in pts])
    x = np.log(max(sigma, 0.5))
    if len(xs) == 1:
        return float(ys[0])
    if x <= xs[0]:
        slope = (ys[1] - ys[0]) / (xs[1] - xs[0])
        return float(ys[0] + max(slope, 0.0) * (x - xs[0]))
    if x >= xs[-1]:
        slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
        return float(ys[-1] + min(slope, 0.0) * (x - xs[-1]))
    return float(np.interp(x, xs, ys))


def old_told(r: dict) -> float:
    """The previous rule: fine + 2.5·max(coarse − fine, 0)."""
    return r["nlf_fine_255"] + 2.5 * max(r["nlf_coarse_255"] - r["nlf_fine_255"], 0.0)


def model(params: dict, r: dict) -> float:
    """σ told (8-bit levels) by :func:`engine.analysis.noise_sigma.told_sigma_255` with ``params``."""
    import engine.analysis.noise_sigma as ns
    saved = ns.GAIN_COARSE, ns.GAIN_CORRELATED, ns.GAIN_JPEG
    try:
        ns.GAIN_COARSE, ns.GAIN_CORRELATED, ns.GAIN_JPEG = params["a"], params["b"], params["k"]
        q = r.get("quality")
        return ns.told_sigma_255(r["nlf_coarse_255"], r["nlf_half_255"], None if q is None or q != q else q)
    finally:
        ns.GAIN_COARSE, ns.GAIN_CORRELATED, ns.GAIN_JPEG = saved


GRID = {"a": [0.6, 0.8, 1.0, 1.2, 1.4], "b": [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0],
        "k": [0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0]}


def losses(rows: dict, fn) -> np.ndarray:
    return np.array([r["best_psnr"] - psnr_at(r, fn(r)) for r in rows.values()])


def load(paths: list[Path]) -> dict:
    out: dict = {}
    for p in paths:
        if p.is_file():
            out.update(json.loads(p.read_text()))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=Path, nargs="+", required=True)
    ap.add_argument("--polyu", type=Path, nargs="*", default=[])
    ap.add_argument("--told", type=Path, nargs="*", default=[])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--fix-coarse", type=float, default=None, help="hold the coarse gain at this value")
    ap.add_argument("--min-gain", type=float, default=0.5,
                    help="fit on training cases where FFDNet at its best σ gains at least this (dB): a noisy photo")
    args = ap.parse_args(argv)
    train, polyu, told = load(args.train), load(args.polyu), load(args.told)
    every = len(train)
    train = {n: r for n, r in train.items() if r["best_psnr"] - r["input"] >= args.min_gain}
    best, best_loss = None, np.inf
    for a, b, k in itertools.product([args.fix_coarse] if args.fix_coarse else GRID["a"], GRID["b"], GRID["k"]):
        if b > a:  # σ would fall as the coarse σ rises
            continue
        params = {"a": a, "b": b, "k": k}
        loss = losses(train, lambda r, p=params: model(p, r)).mean()
        if loss < best_loss:
            best, best_loss = params, loss
    import engine.analysis.noise_sigma as ns
    shipped = {"a": ns.GAIN_COARSE, "b": ns.GAIN_CORRELATED, "k": ns.GAIN_JPEG}
    camera = sum("white" not in r.get("what", {}) for r in train.values())
    lines = [f"Training cases: {len(train)} of {every} ({camera} camera pipeline, {len(train) - camera} white noise): "
             f"those where FFDNet at its best σ gains ≥ {args.min_gain} dB (a photo noisy enough for the noise "
             "stage to matter; elsewhere the σ told is never used or the stage is dropped). "
             f"Best gains on them (least mean PSNR lost against each case's best σ): "
             f"coarse {best['a']}, correlated {best['b']}, JPEG {best['k']}; shipped: coarse {shipped['a']}, "
             f"correlated {shipped['b']}, JPEG {shipped['k']}.", "",
             "| set | σ rule | cases | PSNR lost vs best σ: mean | worst | σ told − best σ: mean | median abs | worst |"
             "",
             "|---|---|---|---|---|---|---|---|"]
    for name, rows in (("training (fit)", train), ("PolyU (validation)", polyu)):
        if not rows:
            continue
        for label, fn in (("previous (fine + 2.5·excess)", old_told), ("fitted", lambda r: model(best, r)),
                          ("shipped", lambda r: model(shipped, r))):
            ls = losses(rows, fn)
            err = np.array([fn(r) - r["best_sigma"] for r in rows.values()])
            lines.append(f"| {name} | {label} | {len(rows)} | {ls.mean():.2f} | {ls.max():.2f} | {err.mean():+.1f} | "
                         f"{np.median(np.abs(err)):.1f} | {err[np.argmax(np.abs(err))]:+.1f} |")
    if polyu:
        lines += ["", "PolyU crops, FFDNet (registry expert, chroma pass, told the file's tables): best uniform σ "
                  "(grid from 4.5, parabola-refined) and its gain; the σ each rule tells; measured gains of the "
                  "session's noise map at the shipped and the previous σ where `--set told` ran.", "",
                  "| crop | input dB | best σ | gain at best σ | σ told before | σ told now | gain before | gain now |",
                  "|---|---|---|---|---|---|---|---|"]
        for n in sorted(set(polyu) | set(told)):
            r, t = polyu.get(n), told.get(n)
            before = f"{t['old']['psnr'] - t['input']:+.2f}" if t else "–"
            now = f"{t['new']['psnr'] - t['input']:+.2f}" if t else "–"
            inp = r["input"] if r else t["input"]
            oracle = f"{r['best_sigma']:.1f} | {r['best_psnr'] - r['input']:+.2f}" if r else "– | –"
            was = f"{t['old']['told']:.1f}" if t else f"{old_told(r):.1f}"
            now_sigma = f"{t['new']['told']:.1f}" if t else f"{model(shipped, r):.1f}"
            lines.append(f"| {n} | {inp:.2f} | {oracle} | {was} | {now_sigma} | {before} | {now} |")
    if told:
        g_old = np.array([t["old"]["psnr"] - t["input"] for t in told.values()])
        g_new = np.array([t["new"]["psnr"] - t["input"] for t in told.values()])
        both = [n for n in told if n in polyu]
        orc = np.array([polyu[n]["best_psnr"] - polyu[n]["input"] for n in both])
        g_new_both = np.array([told[n]["new"]["psnr"] - told[n]["input"] for n in both])
        lines += ["", "| FFDNet on the PolyU crops | crops | mean gain | worst | crops worse than the input |",
                  "|---|---|---|---|---|",
                  f"| told the previous σ (session's map) | {len(g_old)} | {g_old.mean():+.2f} | {g_old.min():+.2f} | "
                  f"{(g_old < 0).sum()} |",
                  f"| told the new σ (session's map) | {len(g_new)} | {g_new.mean():+.2f} | {g_new.min():+.2f} | "
                  f"{(g_new < 0).sum()} |"]
        if orc.size:
            lines.append(f"| oracle: its best uniform σ per crop (crops with both) | {orc.size} | {orc.mean():+.2f} | "
                         f"{orc.min():+.2f} | {(orc < 0).sum()} |")
            lines.append(f"| told the new σ, the same crops | {orc.size} | {g_new_both.mean():+.2f} | "
                         f"{g_new_both.min():+.2f} | {(g_new_both < 0).sum()} |")
    text = "\n".join(lines) + "\n"
    report(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
