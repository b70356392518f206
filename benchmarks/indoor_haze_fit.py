"""Thin haze over saturated indoor rooms (issue 12): the training population the haze analysis
lacked, and the thin-veil route into haze fitted on it.

RESIDE's SOTS-indoor pairs (validation) carry a thin grey veil over warm, saturated rooms and the
analysis does not read them as haze: their darkest parts are a red wall, so the veil-colour gate
(``analyser.VEIL_MAX_FLOOR_CHROMA``) holds them back. The training photos (outdoor BSDS / Sun
scenes) never showed such a case. This script builds it on TRAINING photos
(``engine.degrade.weather.thin_indoor_haze``) beside its unveiled room (``indoor_scene``), and reads
the haze features of ``benchmarks/thin_veil_fit.py`` on them.

Steps:
- ``rows``: for the 200 training photos of ``thin-veil/fit-train.jsonl`` (whose negatives and
  outdoor positives are reused), two veiled rooms and one unveiled room each, half of each through
  the camera pipeline; rows in ``indoor-haze/rows.jsonl``.
- ``fit``: the thin-veil route's thresholds (:func:`fitted`).
- ``check``: the fitted route on the clean photos and every validation set (measured only).

Run: ``python benchmarks/indoor_haze_fit.py rows``; ``… fit``; ``… check``.
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


def rows_step() -> int:
    from haze_false_positives import _rows, maybe_camera
    from thin_veil_fit import features
    from engine.degrade.weather import indoor_scene, thin_indoor_haze
    from training.data import load_uint8, to_float

    names = sorted({r["photo"] for r in _rows(VEIL / "fit-train.jsonl")})
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / "rows.jsonl"
    done = {r["photo"] for r in _rows(out)}
    with out.open("a") as f:
        for j, name in enumerate(names):
            if name in done:
                continue
            rng = np.random.default_rng([53, j])
            img = to_float(load_uint8(SHARED / "data" / "clean" / name))
            cases = [("-", "indoor room", maybe_camera(indoor_scene(img, rng), rng, j))]
            for _ in range(2):
                cases.append(("+", "thin haze over an indoor room", maybe_camera(thin_indoor_haze(img, rng), rng, j)))
            for label, case, x in cases:
                f.write(json.dumps({"photo": name, "label": label, "case": case, **features(x)}) + "\n")
            f.flush()
            print(f"  {name}", file=sys.stderr, flush=True)
    return 0


def colour_line_veil(image: np.ndarray, patch: int = 8, min_std: float = 0.015, min_line: float = 0.9,
                     max_resid: float = 0.03, min_angle_deg: float = 15.0) -> dict:
    """Fattal's colour-line evidence (Fattal 2014, "Dehazing using color-lines"): in a small patch of
    one surface the colours lie on a line ``l·D`` through the origin (shading scales them), and a veil
    shifts that line by ``A·(1 − t)`` along the airlight. Per ``patch``-px patch of ``image`` (float32
    HxWx3 in [0, 1]) with no pixel ≥ 0.9, a dominant line (first eigenvalue ≥ ``min_line`` of the
    total, its std ≥ ``min_std``, all-positive direction at least ``min_angle_deg`` from grey): the
    grey offset ``v`` (per channel, 0..1) where the line passes closest to the grey axis, kept when it
    passes within ``max_resid``. Returns ``cl_n`` (patches kept), ``cl_median`` and ``cl_p25`` of v
    (NaN under 20 patches)."""
    h, w = image.shape[:2]
    p = patch
    r, c = h // p, w // p
    if r == 0 or c == 0:
        return {"cl_n": 0, "cl_median": float("nan"), "cl_p25": float("nan")}
    x = image[:r * p, :c * p].reshape(r, p, c, p, 3).transpose(0, 2, 1, 3, 4).reshape(r * c, p * p, 3)
    x = x.astype(np.float64)
    m = x.mean(1)
    y = x - m[:, None]
    ev, vecs = np.linalg.eigh(np.einsum("nki,nkj->nij", y, y) / (p * p))
    d = vecs[:, :, 2]
    d = d * np.sign(d.sum(1, keepdims=True) + 1e-12)
    a = np.ones(3) / np.sqrt(3)
    da = d @ a
    ok = (x.max(axis=(1, 2)) < 0.9) & (np.sqrt(np.maximum(ev[:, 2], 0)) >= min_std)
    ok &= (ev[:, 2] / (ev.sum(1) + 1e-12) >= min_line) & (d > 0).all(1) & (da < np.cos(np.deg2rad(min_angle_deg)))
    det = np.maximum(1.0 - da * da, 1e-9)
    dm, am = (d * m).sum(1), m @ a
    s = (am - dm * da) / det  # minimises |m + l·d − s·a| over l and s
    lam = s * da - dm
    ok &= np.linalg.norm(m + lam[:, None] * d - s[:, None] * a, axis=1) <= max_resid
    v = s[ok] / np.sqrt(3)
    if v.size < 20:
        return {"cl_n": int(v.size), "cl_median": float("nan"), "cl_p25": float("nan")}
    return {"cl_n": int(v.size), "cl_median": float(np.median(v)), "cl_p25": float(np.percentile(v, 25))}


def all_features(img: np.ndarray) -> dict:
    """:func:`thin_veil_fit.features` and :func:`colour_line_veil` on the analysis' working copy."""
    from thin_veil_fit import features
    from engine.analysis.analyser import working_copy

    return {**features(img), **colour_line_veil(working_copy(img)[0])}


def all_rows_step(photos: int = 200) -> int:
    """Every case of ``thin_veil_fit.fit`` (same photos, seeds and order) and of :func:`rows_step`,
    regenerated and read with :func:`all_features`, in ``indoor-haze/all-rows.jsonl``."""
    from haze_false_positives import _rows, dim_scene, flat_crop, hazed, maybe_camera, warm_bright
    from engine.degrade.camera import camera_noise
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
            j = order[name]
            rng = np.random.default_rng([31, j])
            img = to_float(load_uint8(SHARED / "data" / "clean" / name))
            crop = flat_crop(img, rng)
            warm = np.clip(warm_bright(img, rng) * rng.uniform(0.6, 1.0), 0, 1).astype(np.float32)
            cases = [("-", "photo", img), ("-", "photo, camera", camera_noise(img, float(rng.uniform(0.2, 0.8)), j)[0]),
                     ("-", "flat crop", maybe_camera(crop, rng, j)),
                     ("-", "warm bright crop", maybe_camera(warm_bright(crop, rng), rng, j)),
                     ("-", "warm bright photo", maybe_camera(warm_bright(img, rng), rng, j)),
                     ("-", "dim scene", dim_scene(img, rng))]
            for case, base in (("haze of the photo", img), ("haze of a warm scene", warm)):
                cases.append(("+", case, maybe_camera(hazed(base, rng, float(rng.uniform(0.15, 1.0))), rng, j)))
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
    from _host import load_rgb
    from haze_false_positives import _rows

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
    out = WORK / "check.jsonl"
    done = {(r["group"], r["photo"]) for r in _rows(out)}
    with out.open("a") as f:
        for g, paths in groups.items():
            for p in paths:
                if (g, p.name) not in done:
                    f.write(json.dumps({"group": g, "photo": p.name, **all_features(load_rgb(p))}) + "\n")
                    f.flush()
            print(f"  {g}", file=sys.stderr, flush=True)
    return _rows(out)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=("rows", "all-rows", "check-rows", "fit", "check"))
    args = ap.parse_args(argv)
    if args.step == "rows":
        return rows_step()
    if args.step == "all-rows":
        return all_rows_step()
    if args.step == "check-rows":
        check_rows()
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
