"""The automatic plan's haze gate when rain is also found (``plan.AUTO_MIN_HAZE_WITH_RAIN``), refitted
on TRAINING photos.

The gate was set at 0.30 on real rain pairs (``rain_synthetic``, validation data) whose streaks read as
haze 0.15–0.23: the dehazer kept there cost up to 11 dB. This fit draws its population from
``../shared/data/clean`` minus the held-out tenth (``training.data.split``), in a seeded order; no pair
set is read. Per photo, over the photo and over a dim copy of it (linear exposure × 0.15–0.5, as in
``dim_haze_fit.py``: the table's darkest photos are dim scenes):

- ``haze+`` (dehazing is wanted): the table's haze (``degrade(…, "haze", s)``, s ~ U(0.3, 1)), then
  rain, by the table's generator (``degrade(…, "rain", U(0.2, 0.8))``) and by the realistic one
  (``weather.rain_layers``, strength U(0.2, 1), which adds its own faint veil of at most 0.15·s);
- ``haze-`` (no veil but what rain leaves): the same two rain generators on the scene without haze;

each followed, with probability 1/2, by the table's JPEG (``degrade(…, "jpeg", U(0.2, 0.7))``).
Every case is read by the analysis the table's default plan runs (``training.evaluate.default_analyser``:
the hand-made analysis combined with the bundled network).

``fit --photos N`` writes the rows (JSON lines, resumable) to ``--work``; ``report`` prints, over the
cases in which rain is found and haze is present (where the gate decides), the haze readings of each
group and, per gate, the share of ``haze+`` dehazed and ``haze-`` dehazed; the fitted gate is the one
of least balanced error (ties: the middle of the tied run, the largest margin).
Run: ``python benchmarks/haze_with_rain_fit.py fit --photos 60``, ``… report``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from dim_haze_fit import dim_copy  # noqa: E402
from haze_false_positives import _rows, append_pending  # noqa: E402

SHARED = Path(os.environ.get("RESTORA_SHARED") or ROOT.parent / "shared")
WORK = Path(os.environ.get("RESTORA_BENCH_WORK") or ROOT / "benchmarks" / "results" / "haze-with-rain")
GATES = tuple(round(0.15 + 0.01 * i, 2) for i in range(36))


def _analyser():
    from training.evaluate import default_analyser

    global _ANALYSER
    if "_ANALYSER" not in globals():
        _ANALYSER = default_analyser()
    return _ANALYSER


def read(img: np.ndarray) -> dict:
    """The combined analysis' severities, what it finds present, and the haze measurements."""
    report = _analyser()(img)
    haze = report.kinds["haze"].measurements
    return {"severity": {k: round(float(a.severity), 4) for k, a in report.kinds.items()},
            "present": report.present(),
            "veil_airlight": float(haze.get("veil_airlight", float("nan")))}


def fit_cases(path: Path, rng: np.random.Generator, seed: int) -> list[dict]:
    from engine.degrade import degrade
    from engine.degrade.weather import rain_layers
    from training.data import load_uint8, to_float

    img = to_float(load_uint8(path))
    rows = []
    for scene, base in (("photo", img), ("dim copy", dim_copy(img, rng))):
        for label in ("haze+", "haze-"):
            s_haze = float(rng.uniform(0.3, 1.0)) if label == "haze+" else 0.0
            veiled = degrade(base, "haze", s_haze, seed) if s_haze > 0 else base
            for generator in ("table rain", "realistic rain"):
                s_rain = float(rng.uniform(0.2, 0.8) if generator == "table rain" else rng.uniform(0.2, 1.0))
                x = degrade(veiled, "rain", s_rain, seed + 1) if generator == "table rain" else \
                    rain_layers(veiled, s_rain, rng)
                s_jpeg = float(rng.uniform(0.2, 0.7)) if rng.random() < 0.5 else 0.0
                if s_jpeg > 0:
                    x = degrade(x, "jpeg", s_jpeg, seed + 2)
                rows.append({"photo": path.name, "label": label, "scene": scene, "rain": generator,
                             "haze_strength": s_haze, "rain_strength": s_rain, "jpeg_strength": s_jpeg,
                             **read(x)})
    return rows


def decided(rows: list[dict]) -> list[dict]:
    """The rows in which the gate decides: rain found and haze present."""
    return [r for r in rows if "rain" in r["present"] and "haze" in r["present"]]


def fitted(rows: list[dict]) -> dict:
    """Per gate, the share of ``haze+`` and ``haze-`` dehazed among the decided rows; the gate of least
    balanced error (the middle of a tied run)."""
    rows = decided(rows)
    pos = np.array([r["severity"]["haze"] for r in rows if r["label"] == "haze+"])
    neg = np.array([r["severity"]["haze"] for r in rows if r["label"] == "haze-"])
    table = []
    for g in GATES:
        hit = float(np.mean(pos >= g)) if len(pos) else 1.0
        fa = float(np.mean(neg >= g)) if len(neg) else 0.0
        table.append({"gate": g, "haze+ dehazed": hit, "haze- dehazed": fa, "balanced error": (1 - hit + fa) / 2})
    best = min(t["balanced error"] for t in table)
    tied = [t["gate"] for t in table if t["balanced error"] <= best + 1e-9]
    return {"n haze+": len(pos), "n haze-": len(neg), "table": table, "best error": best, "tied": tied,
            "gate": tied[len(tied) // 2]}


def report(rows: list[dict]) -> None:
    print(f"{len({r['photo'] for r in rows})} training photos, {len(rows)} cases")
    for label in ("haze+", "haze-"):
        for scene in ("photo", "dim copy"):
            for gen in ("table rain", "realistic rain"):
                g = [r for r in rows if r["label"] == label and r["scene"] == scene and r["rain"] == gen]
                d = decided(g)
                h = [r["severity"]["haze"] for r in d]
                pct = (f"haze p5 {np.percentile(h, 5):.2f} p50 {np.percentile(h, 50):.2f} "
                       f"p95 {np.percentile(h, 95):.2f} max {max(h):.2f}") if h else ""
                rain_found = sum("rain" in r["present"] for r in g)
                print(f"  {label} {scene}, {gen}: n {len(g)}, rain found {rain_found}, rain+haze found {len(d)}  {pct}")
    f = fitted(rows)
    print(f"decided: {f['n haze+']} haze+, {f['n haze-']} haze-")
    print("| gate | haze+ dehazed | haze- dehazed | balanced error |\n|---|---|---|---|")
    for t in f["table"]:
        if 0.15 <= t["gate"] <= 0.45:
            print(f"| {t['gate']:.2f} | {t['haze+ dehazed']:.3f} | {t['haze- dehazed']:.3f} "
                  f"| {t['balanced error']:.3f} |")
    print(f"least balanced error {f['best error']:.3f} at gates {f['tied']}; fitted gate {f['gate']:.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("step", choices=("fit", "report"))
    p.add_argument("--photos", type=int, default=60)
    a = p.parse_args(argv)
    out = WORK / "fit-train.jsonl"
    if a.step == "fit":
        from training.common import limit_threads
        from training.data import list_images, split

        limit_threads(1)
        train, _ = split(list_images(SHARED / "data" / "clean"))
        WORK.mkdir(parents=True, exist_ok=True)
        append_pending(out, train, a.photos, 17, lambda j, p: fit_cases(p, np.random.default_rng([17, j]), j))
    report(_rows(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
