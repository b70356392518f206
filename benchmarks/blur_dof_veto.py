"""Could the automatic plan's depth-of-field veto be looser? (issue 12, item 1; training photos only)

`estimate_kernel` returns no kernel when at least ``DOF_SHARP_SHARE`` (0.25) of a photo's detailed
128 px areas are "sharp": their spectral evidence for the estimated kernel is under ``MIN_EVIDENCE``
(0.8). On `../shared/data/real/blurry_fountain.png` (real camera shake) 2 of 6 areas read 0.60 and
0.76, so the automatic plan leaves it blurred (asked for, it is now deblurred). This measures, on
training photos, whether a lower evidence for "sharp" would tell camera shake from a sharp subject:

- ``shake``: the whole photo shaken (``engine.degrade.blur.shake_kernel``, extent U(10, 35) px, in linear
  light): every area is blurred, so any "sharp" area is a false one and a veto is wrong;
- ``centre``: a sharp centre ellipse, the rest defocused by a disc of U(4, 8) px (a portrait);
- ``side-disc`` / ``side-pan``: the left or right 30-45 % sharp, the rest defocused by a disc or shaken
  (a subject followed by a panning camera): a veto is right;
- ``clean``: the photo as it is (its own depth of field; many training photos have a soft background):
  any confident kernel is wrong, and a veto is what stops it.

Each photo gets Gaussian noise σ U(0.5, 2)/255 and the deblurrer's own estimate
(``PnPDeblur.estimate(..., depth_of_field=False)``: the kernel, not vetoed); for the estimates
confident enough to be deconvolved (≥ ``DROP_CONFIDENCE``), the table counts per threshold how many
would be vetoed. Rows are kept (``--rows``) and resumed.

Run: ``python benchmarks/blur_dof_veto.py [--photos 60] [--minutes 30] [--out benchmarks/results/blur-dof-veto.md]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from _host import append_rows, cpu_model, load_rgb, report, shuffled_training_photos  # noqa: E402

KINDS = ("shake", "centre", "side-disc", "side-pan", "clean")
THRESHOLDS = (0.8, 0.7, 0.6, 0.5, 0.4)


def degraded(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``img`` with the ``kind`` of blur described in the module docs, and noise."""
    from real_blur import shallow_dof

    from engine.degrade.blur import convolve_linear, disk_kernel, shake_kernel

    if kind == "clean":
        x = img
    elif kind == "shake":
        x = convolve_linear(img, shake_kernel(rng.uniform(10, 35), rng))
    elif kind == "centre":
        x = shallow_dof(img, rng.uniform(4, 8))
    else:
        back = convolve_linear(img, disk_kernel(rng.uniform(4, 8)) if kind == "side-disc"
                               else shake_kernel(rng.uniform(10, 35), rng))
        w = img.shape[1]
        cut = int(w * rng.uniform(0.3, 0.45))
        cols = np.arange(w)
        sharp = cols < cut if rng.integers(2) == 0 else cols >= w - cut
        x = np.where(sharp[None, :, None], img, back)
    return x


def make_row(path: Path, index: int) -> dict:
    from engine.analysis.blur_kernel import DOF_TILE, detailed_tile_origins, spectral_evidence
    from engine.color import luminance
    from engine.experts.pnp_deblur import PnPDeblur, downscaled

    img = load_rgb(path)
    rng = np.random.default_rng(1000 + index)
    row: dict = {"index": index, "photo": path.name}
    for kind in KINDS:
        sigma = rng.uniform(0.5, 2.0) / 255.0
        x = np.clip(degraded(img, kind, rng) + rng.normal(0.0, sigma, img.shape), 0, 1).astype(np.float32)
        est, factor = PnPDeblur.estimate(x, None, sigma, depth_of_field=False)
        entry: dict = {"kernel": int(est.kernel.shape[0]), "confidence": round(float(est.confidence), 3)}
        if est.kernel.shape[0] > 1:
            gray = downscaled(luminance(x).astype(np.float32), factor)
            entry["evidence"] = sorted(round(float(spectral_evidence(gray[y:y + DOF_TILE, c:c + DOF_TILE],
                                                                      est.kernel, sigma / factor)), 3)
                                       for y, c in detailed_tile_origins(gray))
        row[kind] = entry
    return row


def vetoed(entry: dict, threshold: float) -> bool:
    """Whether the veto (at least ``DOF_SHARP_SHARE`` of ``DOF_MIN_TILES`` or more detailed areas under
    ``threshold``) would hold this estimate back."""
    from engine.analysis.blur_kernel import DOF_MIN_TILES, DOF_SHARP_SHARE

    ev = entry.get("evidence", [])
    return len(ev) >= DOF_MIN_TILES and sum(e < threshold for e in ev) >= DOF_SHARP_SHARE * len(ev)


def summarise(rows: list[dict], photos: int) -> str:
    from engine.experts.pnp_deblur import DROP_CONFIDENCE

    lines = ["# The depth-of-field veto on training photos (issue 12)", "",
             f"`python benchmarks/blur_dof_veto.py --photos {photos}` ({len(rows)} training photos; "
             f"machine: {cpu_model()}, {os.cpu_count()} logical cores). Kinds and method: the script's docstring. "
             f"Counted: estimates with a kernel and confidence ≥ {DROP_CONFIDENCE} (what the deblurrer "
             "would deconvolve); a veto is wrong on `shake` and right on the others.", "",
             "| area counts as sharp under evidence | " + " | ".join(
                 f"{k}: vetoed" for k in KINDS) + " |",
             "|---|" + "---|" * len(KINDS)]
    confident = {k: [r[k] for r in rows if r[k]["kernel"] > 1 and r[k]["confidence"] >= DROP_CONFIDENCE]
                 for k in KINDS}
    for t in THRESHOLDS:
        cells = [f"{sum(vetoed(e, t) for e in confident[k])} of {len(confident[k])}" for k in KINDS]
        lines.append(f"| {t}{' (shipped)' if t == 0.8 else ''} | " + " | ".join(cells) + " |")
    lines += ["", "Estimates with a kernel (any confidence) per kind: " + ", ".join(
        f"{k} {sum(r[k]['kernel'] > 1 for r in rows)}" for k in KINDS) + f" of {len(rows)}.", "",
              "Sharp-subject estimates that a threshold would let through (confident, not vetoed), "
              "with their areas' evidence:", ""]
    for k in KINDS[1:]:
        for r, e in ((r, r[k]) for r in rows):
            if e["kernel"] > 1 and e["confidence"] >= DROP_CONFIDENCE:
                let = [t for t in THRESHOLDS if not vetoed(e, t)]
                if let:
                    lines.append(f"- {k} {r['photo']}: confidence {e['confidence']:.2f}, evidence {e['evidence']}; "
                                 f"let through from threshold {max(let)}")
    lines += ["", "Uniformly shaken photos the shipped veto holds back (wrongly):", ""]
    for r in rows:
        e = r["shake"]
        if e["kernel"] > 1 and e["confidence"] >= DROP_CONFIDENCE and vetoed(e, 0.8):
            lines.append(f"- {r['photo']}: confidence {e['confidence']:.2f}, evidence {e['evidence']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=60)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--minutes", type=float, default=30.0, help="stop after this long; run again to resume")
    ap.add_argument("--rows", type=Path,
                    default=REPO / "benchmarks" / "results" / "blur-dof-veto" / "rows-with-clean.jsonl")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "blur-dof-veto.md")
    args = ap.parse_args(argv)
    photos = shuffled_training_photos(args.photos, args.seed)
    append_rows(args.rows, photos, args.minutes, make_row)
    rows = [json.loads(x) for x in args.rows.read_text().splitlines()]
    report(summarise(rows, args.photos), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
