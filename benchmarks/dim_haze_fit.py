"""The dim-airlight haze gate (``analyser.VEIL_MIN_AIRLIGHT``) refitted on a population that holds
the evaluation table's own haze on dim and dark scenes, and the negatives that gate protects.

``haze_false_positives.py fit`` set the gate at the 1st percentile of the airlight read on synthetic
haze of training photos (``varied_depth``, grey airlight 0.75–0.95): 0.607 over 142 cases. Its
positives are normally exposed photos; a veil of the same airlight over a dim scene is thinner where
the dark channel is highest, so its airlight reads lower (the table's haze of its darkest validation
photo reads 0.57–0.61). This fit adds, per TRAINING photo (``training.data.split``: ../shared/data/clean
minus the held-out tenth; no pair set is read):

- positives (``haze+``): ``engine.degrade.degrade(…, "haze", s)`` — the table's generator
  (``depth_proxy``, β = 2.5·s, grey airlight 0.75–0.95 ± 0.03), s uniform in [0.3, 1] — over the photo,
  over a dim copy of it (linear exposure × 0.15–0.5: a dusk or an unlit room) and over the dim copy
  followed by the table's rain (``degrade_chain`` haze then rain, s and 0.4); half of each through
  the camera pipeline. Counted only where the scene without the veil reads clear (raw severity under
  the presence threshold), as in the original fit.
- negatives (``haze-``): the photo, its flattest crop, the dim copy, the flattest crop of the dim
  copy, a dim scene exposed for its light parts (``dim_scene``), synthetic under-exposure
  (``degrade(…, "lowlight", s ≥ 0.3)``), half with camera noise.

``fit`` writes rows to ``--work`` (JSON lines, resumable) and prints, for the original and the new
population: the positives' airlight percentiles; per negative group, how many pass every other
haze gate (raw severity ≥ threshold, grey floor) and how many of those each airlight bound lets
through. Run: ``python benchmarks/dim_haze_fit.py fit --photos 150``.
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

from haze_false_positives import _rows, append_pending, dim_scene, flat_crop, maybe_camera, measure_case  # noqa: E402

SHARED = Path(os.environ.get("RESTORA_SHARED") or ROOT.parent / "shared")
WORK = Path(os.environ.get("RESTORA_BENCH_WORK") or ROOT / "benchmarks" / "results" / "dim-haze")
BOUNDS = (0.45, 0.5, 0.52, 0.54, 0.55, 0.56, 0.58, 0.6, 0.61)


def dim_copy(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The photo 1–2.7 stops darker in linear light (exposure × 0.15–0.5): a dusk or an unlit room."""
    from engine.degrade._common import linear_to_srgb, srgb_to_linear

    lin = srgb_to_linear(img) * np.float32(rng.uniform(0.15, 0.5))
    return np.clip(linear_to_srgb(lin), 0, 1).astype(np.float32)


def fit_cases(path: Path, rng: np.random.Generator, seed: int) -> list[dict]:
    from engine.degrade import degrade, degrade_chain
    from training.data import load_uint8, to_float

    img = to_float(load_uint8(path))
    dim = dim_copy(img, rng)
    scenes = {"photo": img, "dim copy": dim}
    rows = []
    for name, base in (("haze of the photo", img), ("haze of the dim copy", dim), ("haze+rain of the dim copy", dim)):
        s = float(rng.uniform(0.3, 1.0))
        steps = [("haze", s), ("rain", 0.4)] if "rain" in name else [("haze", s)]
        x = maybe_camera(degrade_chain(base, steps, seed=seed * 7 + len(rows)), rng, seed)
        rows.append({"label": "haze+", "case": name, "strength": s, **measure_case(x),
                     "scene_haze_raw": measure_case(scenes["dim copy" if "dim" in name else "photo"])["haze_raw"]})
    s = float(rng.uniform(0.3, 1.0))
    negatives = [("photo", img), ("flat crop", flat_crop(img, rng)), ("dim copy", dim),
                 ("flat crop of the dim copy", flat_crop(dim, rng)), ("dim scene exposed for its light parts",
                                                                      dim_scene(img, rng)),
                 ("under-exposed", degrade(img, "lowlight", s, seed))]
    for name, x in negatives:
        rows.append({"label": "haze-", "case": name, **measure_case(maybe_camera(x, rng, seed))})
    return [dict(r, photo=path.name) for r in rows]


def summary(rows: list[dict], label: str) -> None:
    from engine.analysis.analyser import VEIL_MAX_FLOOR_CHROMA
    from engine.analysis.report import DEFAULT_PRESENCE_THRESHOLD as T

    pos = [r for r in rows if r["label"] == "haze+" and r["haze_raw"] >= T and r["scene_haze_raw"] < T]
    print(f"## {label}: {len(pos)} positives read hazy")
    for case in sorted({r["case"] for r in pos}):
        a = [r["veil_airlight"] for r in pos if r["case"] == case]
        print(f"  {case}: n {len(a)}, airlight p1 {np.percentile(a, 1):.3f} p2 {np.percentile(a, 2):.3f} "
              f"p5 {np.percentile(a, 5):.3f} min {min(a):.3f}")
    a = [r["veil_airlight"] for r in pos]
    if a:
        print(f"  all: p1 {np.percentile(a, 1):.3f} p2 {np.percentile(a, 2):.3f} p5 {np.percentile(a, 5):.3f}")
        print("  positives passing the airlight bound: " + ", ".join(
            f"{b}: {np.mean([x >= b for x in a]):.3f}" for b in BOUNDS))
    for case in sorted({r["case"] for r in rows if r["label"] != "haze+"}):
        g = [r for r in rows if r["label"] != "haze+" and r["case"] == case]
        open_ = [r for r in g if r["haze_raw"] >= T and r["veil_floor_chroma"] <= VEIL_MAX_FLOOR_CHROMA]
        print(f"  negatives {case}: n {len(g)}, past the other gates {len(open_)}; through the airlight bound: "
              + ", ".join(f"{b}: {sum(r['veil_airlight'] >= b for r in open_)}" for b in BOUNDS))


def fit(photos: int) -> int:
    from training.data import list_images, split

    train, _ = split(list_images(SHARED / "data" / "clean"))
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / "fit-train.jsonl"
    append_pending(out, train, photos, 13, lambda j, p: fit_cases(p, np.random.default_rng([13, j]), j))
    summary(_rows(ROOT / "benchmarks" / "results" / "haze-false-positives" / "fit-train.jsonl"),
            "the original fit's rows (haze_false_positives.py)")
    summary(_rows(out), "this fit's rows")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("step", choices=("fit", "summary"))
    p.add_argument("--photos", type=int, default=150)
    a = p.parse_args(argv)
    if a.step == "fit":
        return fit(a.photos)
    summary(_rows(WORK / "fit-train.jsonl"), "this fit's rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
