"""Thin haze over saturated indoor rooms (issue 12): the training population the haze analysis
lacked, and the thin-veil route into haze fitted on it.

RESIDE's SOTS-indoor pairs (validation) carry a thin grey veil over warm, saturated rooms and the
analysis does not read them as haze: their darkest parts are a red wall, so the veil-colour gate
(``analyser.VEIL_MAX_FLOOR_CHROMA``) holds them back. The training photos (outdoor BSDS / Sun
scenes) never showed such a case. This script builds it on TRAINING photos
(``engine.degrade.weather.thin_indoor_haze``) beside its unveiled room (``indoor_scene``), and reads
the haze features of ``benchmarks/thin_veil_fit.py`` on them.

Steps:
- ``all-rows``: for the 200 training photos of ``thin_veil_fit.py fit`` (the same cases, seeds and
  order: the photo, through the camera pipeline, its flattest crop, warm-bright crop and photo, a
  dim scene, depth-varying haze of the photo and of a warm copy) plus one unveiled room and two
  veiled rooms each (half of each through the camera pipeline), read with :func:`all_features`
  (the thin-veil features and the colour lines); rows in ``indoor-haze/all-rows.jsonl``.
- ``fit``: the thin-veil route's lower bound (:func:`fitted`), printed (``indoor-haze/fit.json``).
- ``gain``: the app's default plan with and without the route on training thin indoor haze.
- ``check-rows`` / ``check``: the fitted route on the clean photos and every validation set
  (measured only; ``indoor-haze/check.jsonl``).

Run: ``python benchmarks/indoor_haze_fit.py all-rows``; ``… fit``; ``… gain --photos 200``; ``… check``.
The route's thresholds are in engine/analysis/analyser.py (``THIN_VEIL_MIN_LINE_OFFSET``); results in
benchmarks/results/indoor-haze.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

SHARED = Path(os.environ.get("RESTORA_SHARED") or ROOT.parent / "shared")
WORK = ROOT / "benchmarks" / "results" / "indoor-haze"
VEIL = ROOT / "benchmarks" / "results" / "thin-veil"


def colour_line_veil(image: np.ndarray) -> dict:
    """:func:`engine.analysis.measurements.colour_line_veil` under this script's row names (``cl_n``,
    ``cl_median``)."""
    from engine.analysis.measurements import colour_line_veil as measure

    out = measure(image)
    return {"cl_n": int(out["veil_lines"]), "cl_median": out["veil_line_offset"]}

def all_features(img: np.ndarray) -> dict:
    """:func:`thin_veil_fit.features` and :func:`colour_line_veil` on the analysis' working copy."""
    from thin_veil_fit import features
    from engine.analysis.analyser import working_copy

    return {**features(img), **colour_line_veil(working_copy(img)[0])}


def all_rows_step(photos: int = 200) -> int:
    """Every case of ``thin_veil_fit.fit`` (same photos, seeds and order) and of :func:`rows_step`,
    regenerated and read with :func:`all_features`, in ``indoor-haze/all-rows.jsonl``."""
    from haze_false_positives import _rows, maybe_camera
    from thin_veil_fit import veil_cases
    from engine.degrade.weather import indoor_scene, thin_indoor_haze
    from training.data import list_images, load_uint8, split, to_float

    train, _ = split(list_images(SHARED / "data" / "clean"))
    order = {train[int(j)].name: int(j) for j in np.random.default_rng(31).permutation(len(train))[:photos]}
    names = sorted(order)
    out = WORK / "all-rows.jsonl"
    done = {r["photo"] for r in _rows(out)}
    with out.open("a") as f:
        for k, name in enumerate(names):
            if name in done:
                continue
            img = to_float(load_uint8(SHARED / "data" / "clean" / name))
            cases = veil_cases(img, order[name])
            rng = np.random.default_rng([53, k])
            cases.append(("-", "indoor room", maybe_camera(indoor_scene(img, rng), rng, k)))
            for _ in range(2):
                cases.append(("+", "thin haze over an indoor room", maybe_camera(thin_indoor_haze(img, rng), rng, k)))
            for label, case, x in cases:
                f.write(json.dumps({"photo": name, "label": label, "case": case, **all_features(x)}) + "\n")
            f.flush()
            print(f"  {name}", file=sys.stderr, flush=True)
    return 0


def check_rows() -> list[dict]:
    """:func:`all_features` of the clean photos and of every validation set (measured only), cached in
    ``indoor-haze/check.jsonl``."""
    from thin_veil_fit import measured_groups

    data = SHARED / "data"
    pairs = data / "pairs"
    pics = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

    def files(d: Path) -> list[Path]:
        return sorted(p for p in d.iterdir() if p.suffix.lower() in pics) if d.is_dir() else []

    groups = {"clean (all 501)": files(data / "clean"), "real": files(data / "real")}
    for s in ("noise_real_polyu_crops", "lowlight_real_lol_train", "rain_synthetic", "haze_reside",
              "blur_real_levin"):
        groups[f"{s} lq"] = files(pairs / s / "lq")
        groups[f"{s} gt"] = files(pairs / s / "gt")
    return measured_groups(WORK / "check.jsonl", groups, all_features)


#: Most negatives of one training group the route may fire on (the issue's clean false-positive budget).
MAX_FALSE_RATE = 0.02
#: Least colour-line patches for a reading (:func:`colour_line_veil` returns NaN under it).
MIN_LINES = 20


def in_domain(row: dict) -> bool:
    """Where the route can change the analysis: the dark channel reads haze (raw severity at least
    the presence threshold) under a bright airlight, but the veil-colour gate holds it back."""
    from engine.analysis.analyser import VEIL_MAX_FLOOR_CHROMA, VEIL_MIN_AIRLIGHT
    from engine.analysis.report import DEFAULT_PRESENCE_THRESHOLD as T

    return row["haze_raw"] >= T and row["airlight"] >= VEIL_MIN_AIRLIGHT and row["floor_chroma"] > VEIL_MAX_FLOOR_CHROMA


def route_fires(row: dict, low: float) -> bool:
    """The thin-veil route on a cached row: in :func:`in_domain`, and the patches' colour lines meet
    the grey axis above ``low`` and below ``1 − VEIL_MAX_FLOOR_CHROMA`` (a grey veil ``v`` added to
    every channel leaves a floor chroma of at most ``1 − v``: a larger reading with a coloured floor
    is not the haze model's veil)."""
    from engine.analysis.analyser import VEIL_MAX_FLOOR_CHROMA

    v = row.get("cl_median", float("nan"))
    return in_domain(row) and np.isfinite(v) and low < v < 1.0 - VEIL_MAX_FLOOR_CHROMA


def fitted(rows: list[dict]) -> dict:
    """The route's lower colour-line bound from training rows: the smallest value (0 to 0.6 in steps of
    0.01) at which the route fires on at most :data:`MAX_FALSE_RATE` of every negative group, and
    what it then catches."""
    neg = [r for r in rows if r["label"] == "-"]
    pos = [r for r in rows if r["label"] == "+"]
    groups = sorted({r["case"] for r in neg})
    for low in np.round(np.arange(0.0, 0.601, 0.01), 2):
        rates = {g: float(np.mean([route_fires(r, low) for r in neg if r["case"] == g])) for g in groups}
        if max(rates.values()) <= MAX_FALSE_RATE:
            break
    per_case = {}
    for c in sorted({r["case"] for r in pos}):
        sub = [r for r in pos if r["case"] == c]
        before = int(sum(r["haze_raw"] >= 0.15 and not in_domain(r) for r in sub))
        per_case[c] = {"views": len(sub), "read hazy before": before,
                       "held by the colour gate": int(sum(in_domain(r) for r in sub)),
                       "route fires": int(sum(route_fires(r, low) for r in sub))}
    return {"THIN_VEIL_MIN_LINE_OFFSET": float(low), "photos": len({r["photo"] for r in rows}),
            "negative fire rates": rates,
            "negatives fired": [(r["photo"], r["case"]) for r in neg if route_fires(r, low)],
            "positives": per_case}


def check(low: float) -> int:
    """The fitted route on the clean photos and every validation set (measured only)."""
    rows = check_rows()
    for g in dict.fromkeys(r["group"] for r in rows):
        sub = [r for r in rows if r["group"] == g]
        dom = [r["photo"] for r in sub if in_domain(r)]
        hit = [r["photo"] for r in sub if route_fires(r, low)]
        print(f"  {g}: route fires on {len(hit)} of {len(sub)} {hit[:12]}; held by the colour gate {len(dom)}")
    return 0


def gain_step(photos: int) -> int:
    """What the route is worth on training: thin indoor haze (seed 71) over ``photos`` training photos,
    saved as 8-bit PNG; where the floor-colour gate alone holds the hand-made reading
    (``analyser.colour_gated``), the app's default plan with the route and without it
    (``THIN_VEIL_MIN_LINE_OFFSET`` = inf), PSNR (dB) against the unveiled room. Rows in
    ``indoor-haze/gain.jsonl``."""
    import cv2

    from haze_false_positives import _rows
    from real_pairs import default_restorer
    from engine.analysis import analyser
    from engine.analysis.calibration import severity_from
    from engine.analysis.measurements import colour_line_veil as lines, haze_statistics
    from engine.degrade.weather import indoor_scene, thin_indoor_haze
    from training.data import load_uint8, to_float

    names = sorted({r["photo"] for r in _rows(VEIL / "fit-train.jsonl")})[:photos]
    tmp = WORK / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    out = WORK / "gain.jsonl"
    done = {r["photo"] for r in _rows(out)}
    restore = default_restorer()
    shipped = analyser.THIN_VEIL_MIN_LINE_OFFSET

    def psnr(x: np.ndarray, ref: np.ndarray) -> float:
        mse = float(np.mean((np.round(x * 255) / 255 - ref) ** 2))
        return float(10 * np.log10(1.0 / max(mse, 1e-12)))

    with out.open("a") as f:
        for k, name in enumerate(names):
            if name in done:
                continue
            img = to_float(load_uint8(SHARED / "data" / "clean" / name))
            room = np.round(indoor_scene(img, np.random.default_rng([71, k])) * 255) / 255
            hazy = np.round(thin_indoor_haze(img, np.random.default_rng([71, k])) * 255) / 255
            work = analyser.working_copy(hazy)[0]
            stats = haze_statistics(work)
            row = {"photo": name, "input_db": psnr(hazy, room),
                   "gated": analyser.colour_gated(severity_from("haze", stats), stats)}
            if row["gated"]:
                path = tmp / f"{Path(name).stem}.png"
                cv2.imwrite(str(path), cv2.cvtColor((hazy * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
                row["route"] = analyser.thin_veil(lines(work))
                for label, low in (("with", shipped), ("without", float("inf"))):
                    analyser.THIN_VEIL_MIN_LINE_OFFSET = low
                    try:
                        pixels, info = restore(path)
                    finally:
                        analyser.THIN_VEIL_MIN_LINE_OFFSET = shipped
                    row[f"{label}_db"], row[f"{label}_stages"] = psnr(pixels, room), info["stages"]
                path.unlink()
            f.write(json.dumps(row) + "\n")
            f.flush()
            print(f"  {name}", file=sys.stderr, flush=True)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=("all-rows", "check-rows", "gain", "fit", "check"))
    ap.add_argument("--photos", type=int, default=200)
    args = ap.parse_args(argv)
    if args.step == "all-rows":
        return all_rows_step()
    if args.step == "gain":
        return gain_step(args.photos)
    if args.step == "check-rows":
        check_rows()
        return 0
    from haze_false_positives import _rows

    found = fitted(_rows(WORK / "all-rows.jsonl"))
    print(json.dumps(found, indent=1))
    if args.step == "check":
        return check(found["THIN_VEIL_MIN_LINE_OFFSET"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
