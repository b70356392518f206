"""Fit the gains of the σ told to FFDNet on noisy camera JPEGs (the JPEG-floor branch of
:func:`engine.analysis.noise_sigma.told_sigma_255`) on the cases of ``noise_sigma_jpeg_fit.py``,
and check them on held-out training photos.

Only cases where the noise stage runs in place of the JPEG stage (``serves``: the analysis, with the
file's tables and the coefficient grain, finds noise on a q 60–89 JPEG) carry a σ grid and count: elsewhere
the σ is never told. Photos are split by index (:func:`held_out`: a third held out, the rest fitted). A candidate

    σ = hypot(a·coarse + b·max(2·half − coarse, 0), k·jpeg_floor(q))

is scored per case by the PSNR lost against the case's best grid σ, the PSNR at the told σ interpolated
in log σ on the case's grid (``noise_sigma_report.psnr_at``); the gains with the least mean loss on the
fitted photos are chosen by a grid search (b ≤ a). Today's rule (the shipped gains) is scored alike.

Run: ``python benchmarks/noise_sigma_jpeg_report.py --train C.json [--out benchmarks/results/…md]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _host import report  # noqa: E402
from noise_sigma_report import psnr_at  # noqa: E402

#: The forms tried, each ``(σ of (gains, case), gain grids)``: ``c`` the coarse σ, ``x`` the correlated
#: excess max(2·half − c, 0), ``f`` the JPEG floor; the one with the least mean loss on the fitted photos is chosen.
FORMS = {
    "hypot(a·c + b·x, k·f)": (lambda p, c, x, f: float(np.hypot(p[0] * c + p[1] * x, p[2] * f)),
                              ("a", "b", "k"), ([0.8, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0], [0.0, 0.25, 0.5],
                                                [0.0, 0.5, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5])),
    "k·f + a·c + b·x": (lambda p, c, x, f: p[2] * f + p[0] * c + p[1] * x,
                        ("a", "b", "k"), ([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5], [0.0, 0.25, 0.5],
                                          [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5])),
    "hypot(a·min(c, c1) + max(c − c1, 0), k·f)": (
        lambda p, c, x, f: float(np.hypot(p[0] * min(c, p[1]) + max(c - p[1], 0.0), p[2] * f)),
        ("a", "c1", "k"), ([1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0], [2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 100.0],
                           [0.0, 0.5, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5])),
}


def held_out(r: dict) -> bool:
    """Whole triples of photos held out (``(photo // 3) % 3 == 0``): ``--set matched`` enlarges every third
    photo, so a split on ``photo % 3`` would hold out only native crops."""
    return (r["photo"] // 3) % 3 == 0


def terms(r: dict) -> tuple[float, float, float]:
    from engine.analysis.noise_sigma import jpeg_floor_255
    c = r["nlf_coarse_255"]
    return c, max(2 * r["nlf_half_255"] - c, 0.0), jpeg_floor_255(r["quality"])


def today(r: dict) -> float:
    """The σ the code under test tells (``told_sigma_255``)."""
    from engine.analysis.noise_sigma import told_sigma_255
    return told_sigma_255(r["nlf_coarse_255"], r["nlf_half_255"], r["quality"])


def losses(rows: list[dict], fn) -> np.ndarray:
    return np.array([r["best_psnr"] - psnr_at(r, fn(r)) for r in rows])


def summary(rows: list[dict], fn) -> str:
    ls = losses(rows, fn)
    err = np.array([fn(r) - r["best_sigma"] for r in rows])
    return f"{len(rows)} | {ls.mean():.3f} | {ls.max():.2f} | {np.median(ls):.3f} | {err.mean():+.1f} | " \
           f"{np.median(np.abs(err)):.1f}"


def fit(rows: list[dict], form) -> tuple[tuple, float]:
    """The gains of ``form`` on its grid with the least mean loss on ``rows``."""
    fn, _, grid = form
    best, best_loss = None, np.inf
    for p in itertools.product(*grid):
        loss = losses(rows, lambda r, p=p: fn(p, *terms(r))).mean()
        if loss < best_loss:
            best, best_loss = p, loss
    return best, best_loss


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=Path, nargs="+", required=True)
    ap.add_argument("--baseline", type=str, default="1.0,0.0,1.5",
                    help="the gains a,b,k of the rule before the refit, scored by its formula")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    every: dict = {}
    for p in args.train:
        every.update({f"{p.stem}/{k}": dict(r, source=p.stem) for k, r in json.loads(p.read_text()).items()})
    rows = [r for r in every.values() if r.get("serves") and "scores" in r]
    fitted = [r for r in rows if not held_out(r)]
    held = [r for r in rows if held_out(r)]
    a0, b0, k0 = (float(v) for v in args.baseline.split(","))
    candidates = [(f"before the refit: hypot({a0:g}·c + {b0:g}·x, {k0:g}·f)",
                   lambda r: float(np.hypot(a0 * terms(r)[0] + b0 * terms(r)[1], k0 * terms(r)[2])))]
    fits = []
    for name, form in FORMS.items():
        p, loss = fit(fitted, form)
        fits.append((loss, name, p))
        label = name + ": " + ", ".join(f"{n} {v:g}" for n, v in zip(form[1], p, strict=True))
        candidates.append((label, lambda r, fn=form[0], p=p: fn(p, *terms(r))))
    chosen = min(range(len(fits)), key=lambda i: fits[i][0]) + 1
    candidates.append(("the code under test (told_sigma_255)", today))
    by_kind = {f"{src}, {kind}": [r for r in held if r["kind"] == kind and r["source"] == src]
               for src in sorted({r["source"] for r in rows}) for kind in sorted({r["kind"] for r in rows})}
    faint = [r for r in held if r["input"] >= 30.0]
    modest = [r for r in held if r["best_psnr"] - r["input"] <= 6.0]
    n_present = sum(r["present"] for r in every.values())
    lines = [f"Cases: {len(every)} (q {min(r['quality'] for r in every.values())}–"
             f"{max(r['quality'] for r in every.values())}); noise found on {n_present}; the noise stage runs in "
             f"place of the JPEG stage on {len(rows)} ({len(fitted)} on fitted photos, {len(held)} held out).", "",
             "| set | σ rule | cases | PSNR lost vs best σ: mean | worst | median | σ told − best σ: mean | "
             "median abs |", "|---|---|---|---|---|---|---|---|"]
    for name, subset in (("fitted photos", fitted), ("held-out photos", held),
                         *((f"held-out, {k}", v) for k, v in by_kind.items() if v),
                         ("held-out, input ≥ 30 dB", faint),
                         ("held-out, best gain ≤ 6 dB (the real crops' range)", modest)):
        if not subset:
            continue
        for label, fn in candidates:
            lines.append(f"| {name} | {label} | {summary(subset, fn)} |")
    lines.insert(1, f"\nChosen (least mean loss on the fitted photos): {candidates[chosen][0]}.")
    held_today = losses(held, candidates[0][1])
    held_new = losses(held, candidates[chosen][1])
    d = held_new - held_today
    lines += ["", f"Held out, per case (chosen − before, dB lost): mean {d.mean():+.3f}, worst {d.max():+.3f}, "
              f"better on {(d < -1e-9).sum()}, worse on {(d > 1e-9).sum()} of {d.size}.",
              f"Gate (held-out): mean lost {held_new.mean():.3f} < today's {held_today.mean():.3f}: "
              f"{'yes' if held_new.mean() < held_today.mean() else 'no'}; worst lost {held_new.max():.2f} ≤ today's "
              f"{held_today.max():.2f} + 0.1: {'yes' if held_new.max() <= held_today.max() + 0.1 else 'no'}."]
    report("\n".join(lines) + "\n", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
