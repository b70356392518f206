"""The classical dehazer's settings, fitted on TRAINING photos with synthetic depth-varying haze.

Cases: training photos of ``../shared/data/clean`` (``training.data.split``, the held-out tenth
excluded; never a validation pair), each hazed twice with ``engine.degrade.weather.haze`` over a
random ``varied_depth`` (grey airlight 0.75–0.95 ± 0.04 per channel, strength 0.15–1): the photo
itself and a warm, brightened copy of it (an indoor room under tungsten light), half of them through
the camera pipeline, exactly as ``benchmarks/haze_false_positives.py`` makes its positives. A case
counts only where the default hand-made haze analysis reads it hazy (severity ≥ the presence
threshold, gates included), since only those are dehazed.

For each variant of the dehazer (``VARIANTS``: the shipped settings and alternatives for the minimum
transmission, the omega ramp, the airlight estimate and the transmission refinement) it prints the
mean and worst PSNR gain over the hazy input against the clean photo, in 8-bit levels.

``water``: how the analysis and the dehazer treat a water veil (see :func:`water`).

Run: ``python benchmarks/dehaze_fit.py [variants] --photos 40 [--out FILE]``;
``python benchmarks/dehaze_fit.py water [--out FILE]``; ``… reveal --photos 60 [--out FILE]``
(:func:`reveal`: the judge's JPEG-reveal rule for dehazing, on training photos).
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
CACHE = Path(os.environ.get("RESTORA_BENCH_WORK") or ROOT / "benchmarks" / "results" / "dehaze-fit")


def cases(photos: int, seed: int = 23) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """``(name, hazy, clean, strength)`` for the first ``photos`` training photos in a seeded order
    (hazy cases read hazy by the default hand-made analysis only)."""
    from haze_false_positives import hazed, maybe_camera, measure_case, warm_bright
    from training.data import list_images, load_uint8, split, to_float
    from engine.analysis.report import DEFAULT_PRESENCE_THRESHOLD as T

    train, _ = split(list_images(SHARED / "data" / "clean"))
    out = []
    for j in np.random.default_rng(seed).permutation(len(train))[:photos]:
        p = train[int(j)]
        rng = np.random.default_rng([seed, int(j)])
        img = to_float(load_uint8(p))
        warm = np.clip(warm_bright(img, rng) * rng.uniform(0.6, 1.0), 0, 1).astype(np.float32)
        for tag, base in (("photo", img), ("warm", warm)):
            s = float(rng.uniform(0.15, 1.0))
            x = maybe_camera(hazed(base, rng, s), rng, int(j))
            if measure_case(x)["haze"] >= T:
                out.append((f"{p.stem}:{tag}", x.astype(np.float32), base, s))
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    a = np.round(np.clip(a, 0, 1) * 255.0)
    b = np.round(np.clip(b, 0, 1) * 255.0)
    return float(10 * np.log10(255.0 ** 2 / max(float(np.mean((a - b) ** 2)), 1e-10)))


def evaluate(variants: dict, items) -> dict[str, dict]:
    res = {}
    for name, fn in variants.items():
        gains = []
        for _case, x, clean, _s in items:
            out = fn(x)
            gains.append(psnr(out, clean) - psnr(x, clean))
        g = np.array(gains)
        res[name] = {"mean": float(g.mean()), "worst": float(g.min()), "worse": int((g < -0.05).sum()),
                     "n": len(g), "gains": [round(v, 2) for v in gains]}
        print(f"{name:28s} mean {g.mean():+.2f} worst {g.min():+.2f} worse {(g < -0.05).sum()}/{len(g)}",
              flush=True)
    return res


def dehaze_variant(img: np.ndarray, omega=None, t_floor: float = 0.15, airlight_fraction: float = 0.001,
                   grey: bool = True, eps: Optional[float] = None, guide_factor: int = 4,
                   boundary: bool = False) -> np.ndarray:
    """``engine.experts.classical.dehaze.dehaze`` at the working size (every case here is at most
    1024 px) with its settings open: ``omega`` (a number, ``None`` for the shipped ramp, or a
    callable of the severity), the minimum transmission, the share of haziest pixels the airlight
    is read from and whether it is made grey, the guided filter's ``eps`` (``None``: the shipped
    ``GUIDED_EPS``) and radius (``guide_factor``
    × the patch radius), and ``boundary``: Meng et al.'s boundary constraint (the transmission no
    lower than keeps every channel of the scene inside [0, 1])."""
    from engine.color import luminance
    from engine.experts.classical import dehaze as D
    from engine.experts.classical.guided_filter import guided_filter_gray

    sev = D.haze_severity(img)
    om = D.omega_for(sev) if omega is None else (omega(sev) if callable(omega) else float(omega))
    radius = max(int(round(max(img.shape[:2]) / 80)), 3)
    dark = D.dark_channel(img, radius)
    flat = dark.ravel()
    count = max(int(flat.size * airlight_fraction), 1)
    colour = img.reshape(-1, 3)[np.argpartition(flat, flat.size - count)[-count:]].mean(axis=0)
    a = np.full(3, colour.mean(), np.float32) if grey else colour.astype(np.float32)
    t = D.transmission(img, a, radius, om)
    eps = D.GUIDED_EPS if eps is None else eps
    t = np.clip(guided_filter_gray(luminance(img), t, radius * guide_factor, eps), t_floor, 1.0)
    if boundary:
        low = np.maximum((a - img) / np.maximum(a, 1e-3), (img - a) / np.maximum(1 - a, 1e-3)).max(axis=2)
        t = np.maximum(t, np.clip(low, 0.0, 1.0))
    return (img - a) / t[..., None] + a


def refit_ramp(severity: float) -> float:
    """The omega ramp refitted on these cases (0.85 up to severity 0.55, 0.95 from 0.75): tried and
    NOT shipped, it lost 0.95 dB mean on the RESIDE pairs (see the results file)."""
    return float(np.interp(severity, (0.2, 0.4, 0.55, 0.75), (0.70, 0.85, 0.85, 0.95)))


def variants() -> dict:
    from engine.experts.classical import dehaze as D

    def make(**kw):
        return lambda x: dehaze_variant(x, **kw)
    out = {"shipped (engine)": lambda x: D.dehaze(x)[0], "shipped (this copy)": make(),
           "before this session (eps 1e-3)": make(eps=1e-3)}
    for o in (0.75, 0.85, 0.9, 0.95):
        out[f"omega {o} fixed"] = make(omega=o)
    out["omega ramp refit"] = make(omega=refit_ramp)
    for f in (0.10, 0.25, 0.35):
        out[f"t_floor {f}"] = make(t_floor=f)
    out["airlight from top 1 %"] = make(airlight_fraction=0.01)
    out["airlight in colour"] = make(grey=False)
    for e in (1e-4, 3e-3, 1e-2, 0.1):
        out[f"guided eps {e:g}"] = make(eps=e)
    for g in (2, 8):
        out[f"guided radius x{g}"] = make(guide_factor=g)
    out["boundary constraint"] = make(boundary=True)
    return out


def water(photos: int, seed: int = 5) -> dict:
    """How the default analysis reads a water veil. (1) Synthetic underwater views of training
    photos: per-channel attenuation over a ``varied_depth`` (red 1.5–3, green 0.5–1, blue 0.4–0.9,
    all × 0.5–1.2) towards a blue-green veil (R 0.05–0.3, G 0.4–0.7, B 0.45–0.8), a simplified
    Jaffe–McGlamery model: the share read hazy. (2) The camera-pipeline crop of ``bsds500_val_86068``
    (a trout in a shallow stream seen from above; central 128 px, seeds 7000–7002 as
    ``benchmarks/uncertainty.py camera`` makes them): its readings, the dehazer's airlight colour
    and contrast lift (std of luma after / before), and the PSNR against the camera's own rendering,
    beside the lift the dehazer gives synthetic haze of the cases above at the same severity."""
    from dataclasses import replace

    from engine.analysis import analyse
    from engine.analysis.analyser import working_copy
    from engine.analysis.measurements import haze_statistics
    from engine.color import luminance
    from engine.degrade.camera import camera_pipeline, sample_camera_params
    from engine.degrade.weather import varied_depth
    from engine.experts.classical import dehaze as D
    from engine.imageio import load_photo
    from training.data import list_images, load_uint8, split, to_float

    train, _ = split(list_images(SHARED / "data" / "clean"))
    rng = np.random.default_rng(seed)
    synthetic = []
    for j in rng.permutation(len(train))[:photos]:
        img = to_float(load_uint8(train[int(j)]))
        d = varied_depth(img, rng)
        beta = np.array([rng.uniform(1.5, 3.0), rng.uniform(0.5, 1.0), rng.uniform(0.4, 0.9)], np.float32)
        beta *= np.float32(rng.uniform(0.5, 1.2))
        veil = np.array([rng.uniform(0.05, 0.3), rng.uniform(0.4, 0.7), rng.uniform(0.45, 0.8)], np.float32)
        t = np.exp(-beta[None, None, :] * d[..., None])
        x = np.clip(img * t + veil * (1 - t), 0, 1).astype(np.float32)
        h = haze_statistics(working_copy(x)[0])
        synthetic.append({"photo": train[int(j)].name, "haze": round(analyse(x).severity("haze"), 3),
                          "floor_chroma": round(h["veil_floor_chroma"], 3), "airlight": round(h["veil_airlight"], 3)})
        print(json.dumps(synthetic[-1]), flush=True)

    def lift(x: np.ndarray) -> tuple[np.ndarray, float]:
        out = np.clip(D.dehaze(x)[0], 0, 1)
        return out, float(luminance(out).std() / max(float(luminance(x).std()), 1e-3))

    clean = load_photo(SHARED / "data" / "clean" / "bsds500_val_86068.jpg").pixels
    h0, w0 = clean.shape[:2]
    clean = np.ascontiguousarray(clean[(h0 - 128) // 2:(h0 - 128) // 2 + 128, (w0 - 128) // 2:(w0 - 128) // 2 + 128])
    crops = []
    for s in (7000, 7001, 7002):
        p = sample_camera_params(np.random.default_rng([s, 15]))
        deg, _ = camera_pipeline(clean, s, p)
        truth, _ = camera_pipeline(clean, s, replace(p, shot=0.0, read=0.0), noise=False)
        radius = max(int(round(128 / 80)), 3)
        airlight = D.estimate_airlight(deg, D.dark_channel(deg, radius), grey=False)
        out, k = lift(deg)
        h = haze_statistics(working_copy(deg)[0])
        crops.append({"seed": s, "haze": round(analyse(deg).severity("haze"), 3),
                      "severity": round(D.haze_severity(deg), 3), "floor_chroma": round(h["veil_floor_chroma"], 3),
                      "airlight": round(h["veil_airlight"], 3), "airlight_rgb": [round(float(v), 3) for v in airlight],
                      "lift": round(k, 3), "psnr_in": round(psnr(deg, truth), 2),
                      "psnr_dehazed": round(psnr(out, truth), 2)})
        print(json.dumps(crops[-1]), flush=True)
    lifts = [(D.haze_severity(x), lift(x)[1]) for _c, x, _y, _s in cases(40)]
    thin = [k for sev, k in lifts if sev < 0.3]
    return {"synthetic_underwater": synthetic,
            "read_hazy": sum(r["haze"] >= 0.15 for r in synthetic), "of": len(synthetic), "trout_crop": crops,
            "training_lift_below_severity_0.3": [round(k, 3) for k in thin]}


def reveal(photos: int, seed: int = 41) -> dict:
    """The judge's "must not reveal JPEG" rule for dehazing (``orchestrator.MUST_NOT_REVEAL``), checked on
    training photos: thin to medium depth-varying haze (strength 0.1–0.5, grey airlight as in
    :func:`cases`) saved as JPEG (``engine.degrade`` jpeg, quality 95 down to 52), those the default
    analysis reads hazy dehazed by the shipped classical dehazer. Per case: the default analysis' JPEG
    severity of the input and of the output (what the rule compares) and the PSNR gain of the output
    over the input against the clean photo. Prints the gains of the cases the rule drops and keeps."""
    from haze_false_positives import hazed
    from engine.analysis import analyse
    from engine.analysis.report import DEFAULT_PRESENCE_THRESHOLD as T
    from engine.degrade import degrade
    from engine.experts.classical import dehaze as D
    from training.data import list_images, load_uint8, split, to_float

    train, _ = split(list_images(SHARED / "data" / "clean"))
    rows = []
    for j in np.random.default_rng(seed).permutation(len(train))[:photos]:
        rng = np.random.default_rng([seed, int(j)])
        img = to_float(load_uint8(train[int(j)]))
        x = degrade(hazed(img, rng, float(rng.uniform(0.1, 0.5))), "jpeg", float(rng.uniform(0.0, 0.5)), int(j))
        before = analyse(x)
        if before.severity("haze") < T:
            continue
        out = np.clip(D.dehaze(x)[0], 0, 1).astype(np.float32)
        after = analyse(out)
        rows.append({"photo": train[int(j)].name, "jpeg_before": round(before.severity("jpeg"), 3),
                     "jpeg_after": round(after.severity("jpeg"), 3), "haze": round(before.severity("haze"), 3),
                     "gain": round(psnr(out, img) - psnr(x, img), 2)})
        rows[-1]["dropped"] = rows[-1]["jpeg_before"] < T <= rows[-1]["jpeg_after"]
        print(json.dumps(rows[-1]), flush=True)
    dropped = [r["gain"] for r in rows if r["dropped"]]
    kept = [r["gain"] for r in rows if not r["dropped"]]

    def stats(g: list[float]) -> dict:
        return {"n": len(g), "mean": round(float(np.mean(g)), 2) if g else None,
                "worst": round(float(min(g)), 2) if g else None, "worse": sum(v < -0.05 for v in g)}
    return {"rows": rows, "dropped": stats(dropped), "kept": stats(kept)}


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", nargs="?", default="variants", choices=("variants", "water", "reveal"))
    ap.add_argument("--photos", type=int, default=40)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.step == "reveal":
        res = reveal(args.photos)
        print(json.dumps({k: v for k, v in res.items() if k != "rows"}, indent=1))
        if args.out:
            args.out.write_text(json.dumps(res, indent=1))
        return 0
    if args.step == "water":
        res = water(30)
        print(json.dumps({k: v for k, v in res.items() if k != "synthetic_underwater"}, indent=1))
        if args.out:
            args.out.write_text(json.dumps(res, indent=1))
        return 0
    items = cases(args.photos)
    print(f"{len(items)} hazy cases read hazy", flush=True)
    res = evaluate(variants(), items)
    if args.out:
        args.out.write_text(json.dumps({"cases": [c[0] for c in items], "results": res}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
