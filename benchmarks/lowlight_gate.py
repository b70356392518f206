"""Can the automatic plan brighten at a lower low-light severity? The gate fitted on TRAINING photos,
a dim-scene hold-down that noise does not lift, and what each does to real dark crops.

The synthetic evaluation table's 1.5-stop mixtures are left dark on bsds500_test_102062
(benchmarks/results/evaluation-default-plan.md): with noise its brightest twentieth reads 0.52 and,
once FFDNet removed the noise, still 0.51, over the dim-scene hold-down (``analyser.LOWLIGHT_MAX_P95_LUMA``
0.47), so it reads as a dim scene exposed for its light parts (0.07); where it is under the hold-down
(blur + low light + noise, 0.42) it is under the plan's gate (``plan.AUTO_MIN_SEVERITY["lowlight"]``,
0.5), and a lower gate does not help either: after the noise stage the network no longer agrees that
it is dark and the low-light stage is skipped.

``fit``: TRAINING photos only (``training.data.split``), in a seeded order. Per photo:

- ``under``: synthetic under-exposure (``degrade(…, "lowlight", s)``, s ~ U(0.3, 1): 1 to 3.6 stops),
  alone, followed by synthetic noise (``degrade(…, "noise", U(0.1, 0.5))``) or through the camera
  pipeline (``camera_noise``, strength U(0.2, 0.8));
- ``dim``: a dim scene exposed for its light parts (tones pushed down by a power 1.5–3, highlights
  kept; ``haze_false_positives.dim_scene``), half through the camera pipeline;
- ``photo``: the photo as it is, half through the camera pipeline.

Each is analysed as the app does (the hand-made reading; the bundled network, whose agreement the
low-light verdict needs, ``engine.analysis.learned.AGREE_KINDS``), and also read with the 95th
percentile taken on a 4x area-downscaled copy (:func:`lowpass_percentile`, which noise does not lift).

``report``: the gate that best separates ``under`` (brighten) from ``dim`` (leave) by balanced error,
with the shipped hold-down and with the low-pass one (its threshold refitted as the shipped one was:
the 99th percentile over under-exposure of strength ≥ 0.5), and the max-margin gate (the middle of
the run of gates that tie).

``real --gate G FILES…``: the default plan's PSNR on validation pairs (``…/lq/NAME`` beside
``…/gt/NAME``) with the gate set to G, to see what a lower gate does to real dark crops.

Run: ``python benchmarks/lowlight_gate.py fit --photos 60`` (rows cached in ``--work``), ``… report``,
``… real --gate 0.2 ../shared/data/pairs/noise_real_polyu_crops/lq/NikonD800_11_160_3200_classroom_15.JPG``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

SHARED = Path(os.environ.get("RESTORA_SHARED") or ROOT.parent / "shared")
WORK = Path(os.environ.get("RESTORA_BENCH_WORK") or ROOT / "benchmarks" / "results" / "lowlight-gate")
#: The automatic plan's low-light gate (set on validation readings before this benchmark).
PREVIOUS_GATE = 0.5
#: How much worse brightening a dim scene is than leaving an under-exposed photo dark, from the measured
#: costs: PolyU classroom_15 brightened −29 dB; the evaluation table's 102062 left dark about −6.5 dB.
DIM_SCENE_WEIGHT = 4.0


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def cases(img: np.ndarray, rng: np.random.Generator, seed: int) -> list[tuple[str, str, float, np.ndarray]]:
    """``(label, case, strength, pixels)`` for one training photo (see the module docstring)."""
    from engine.degrade import degrade
    from engine.degrade.camera import camera_noise
    from haze_false_positives import dim_scene

    def camera(x: np.ndarray) -> np.ndarray:
        return camera_noise(x, float(rng.uniform(0.2, 0.8)), seed)[0]

    out = []
    for variant in ("alone", "noise", "camera"):
        s = float(rng.uniform(0.3, 1.0))
        x = degrade(img, "lowlight", s, seed)
        if variant == "noise":
            x = degrade(x, "noise", float(rng.uniform(0.1, 0.5)), seed + 1)
        elif variant == "camera":
            x = camera(x)
        out.append(("under", f"under-exposed, {variant}", s, x))
    dim = dim_scene(img, rng)
    out.append(("dim", "dim scene", 0.0, camera(dim) if rng.random() < 0.5 else dim))
    out.append(("photo", "photo", 0.0, camera(img) if rng.random() < 0.5 else img))
    return out


def lowpass_percentile(lum: np.ndarray, q: float, factor: int = 4) -> float:
    """The ``q``-th percentile of ``lum`` (HxW, 0..1) area-downscaled ``factor`` times: white noise's σ
    falls by ``factor``, a scene's bright twentieth keeps its level."""
    import cv2

    h, w = lum.shape[:2]
    if min(h, w) >= factor > 1:
        lum = cv2.resize(np.ascontiguousarray(lum, np.float32), (w // factor, h // factor),
                         interpolation=cv2.INTER_AREA)
    return float(np.percentile(lum, q))


def reading(x: np.ndarray, net) -> dict:
    from engine.analysis.analyser import analyse, working_copy
    from engine.analysis.calibration import severity_from
    from engine.color import luminance

    hand = analyse(x).kinds["lowlight"]
    m = dict(hand.measurements, p95_luma_lowpass=lowpass_percentile(luminance(working_copy(x)[0]), 95.0))
    prob, strength = net.scores(x)
    from engine.kinds import KINDS

    i = KINDS.index("lowlight")
    return {"raw": severity_from("lowlight", m), "p95_luma": m["p95_luma"], "p95_luma_lowpass": m["p95_luma_lowpass"],
            "learned_probability": float(prob[i]), "learned_strength": float(strength[i])}


def fit(photos: int) -> int:
    from engine.analysis.learned import LearnedAnalyser
    from training.data import list_images, load_uint8, split, to_float

    train, _ = split(list_images(SHARED / "data" / "clean"))
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / "fit-train.jsonl"
    done = {r["photo"] for r in _rows(out)}
    net = LearnedAnalyser(threads=1)
    with out.open("a") as f:
        for j in np.random.default_rng(12).permutation(len(train))[:photos]:
            p = train[int(j)]
            if p.name in done:
                continue
            rng = np.random.default_rng([12, int(j)])
            img = to_float(load_uint8(p))
            for label, case, s, x in cases(img, rng, int(j)):
                f.write(json.dumps({"photo": p.name, "label": label, "case": case, "strength": s,
                                    **reading(np.clip(x, 0, 1).astype(np.float32), net)}) + "\n")
            f.flush()
            print(f"  {p.name}", file=sys.stderr, flush=True)
    return report()


def severity(row: dict, hold: float, key: str = "p95_luma_lowpass") -> float:
    """The combined analysis' low-light severity of a cached row with the hold-down at ``hold``
    read on ``key`` (``analyser.lowlight_severity`` then ``learned.combine``'s agreement rule)."""
    from engine.analysis.learned import learned_severity
    from engine.analysis.report import DEFAULT_PRESENCE_THRESHOLD as T

    hand = row["raw"] if row[key] < hold else min(row["raw"], T / 2)
    net = learned_severity(row["learned_probability"], row["learned_strength"])
    return max(hand, T) if hand >= T and net >= T else min(hand, T / 2)


def gate_fit(under: list[dict], leave: list[dict], hold: float, key: str) -> dict:
    """The gate (severity 0.15–0.9) with the least balanced error between ``under`` (should be
    brightened) and ``leave``; where gates tie, the middle of their run (the max-margin gate)."""
    grid = np.round(np.arange(0.15, 0.901, 0.01), 2)
    sev_u = np.array([severity(r, hold, key) for r in under])
    sev_l = np.array([severity(r, hold, key) for r in leave])
    errors = np.array([(np.mean(sev_u < g) + np.mean(sev_l >= g)) / 2 for g in grid])
    ties = grid[errors <= errors.min() + 1e-12]
    return {"gate": round(float(np.median(ties)), 2), "ties": [float(ties[0]), float(ties[-1])],
            "balanced_error": round(float(errors.min()), 3)}


def fitted(rows: list[dict]) -> dict:
    from engine.analysis.analyser import LOWLIGHT_MAX_P95_LUMA

    under = [r for r in rows if r["label"] == "under"]
    dim = [r for r in rows if r["label"] == "dim"]
    lowpass_hold = float(np.percentile([r["p95_luma_lowpass"] for r in under if r["strength"] >= 0.5], 99))
    return {"photos": len({r["photo"] for r in rows}), "under": len(under), "dim": len(dim),
            "shipped hold-down": {"LOWLIGHT_MAX_P95_LUMA": LOWLIGHT_MAX_P95_LUMA,
                                  **gate_fit(under, dim, LOWLIGHT_MAX_P95_LUMA, "p95_luma")},
            "low-pass hold-down": {"LOWLIGHT_MAX_P95_LUMA": round(lowpass_hold, 3),
                                   **gate_fit(under, dim, lowpass_hold, "p95_luma_lowpass")}}


def report() -> int:
    from engine.analysis.analyser import LOWLIGHT_MAX_P95_LUMA as SHIPPED
    from engine.pipeline.plan import AUTO_MIN_SEVERITY

    rows = _rows(WORK / "fit-train.jsonl")
    fit_ = fitted(rows)
    print(json.dumps(fit_, indent=1))
    low = fit_["low-pass hold-down"]["LOWLIGHT_MAX_P95_LUMA"]
    shipped = fit_["shipped hold-down"]
    gates = sorted({AUTO_MIN_SEVERITY["lowlight"], shipped["gate"], shipped["ties"][1], PREVIOUS_GATE})
    print("| case | n | " + " | ".join(f"shipped, gate {g:.2f} | low-pass, gate {g:.2f}" for g in gates) + " |")
    print("|---|---|" + "---|---|" * len(gates))
    for case in sorted({r["case"] for r in rows}):
        sub = [r for r in rows if r["case"] == case]
        cells = []
        for g in gates:
            cells.append(f"{np.mean([severity(r, SHIPPED, 'p95_luma') >= g for r in sub]):.2f}")
            cells.append(f"{np.mean([severity(r, low) >= g for r in sub]):.2f}")
        print(f"| {case} | {len(sub)} | " + " | ".join(cells) + " |")
    under = [r for r in rows if r["label"] == "under"]
    dim = [r for r in rows if r["label"] == "dim"]
    for g in gates:
        miss = np.mean([severity(r, SHIPPED, "p95_luma") < g for r in under])
        false = np.mean([severity(r, SHIPPED, "p95_luma") >= g for r in dim])
        print(f"gate {g:.2f} (shipped hold-down): under-exposed left dark {miss:.3f}, dim scenes brightened "
              f"{false:.3f}, balanced error {(miss + false) / 2:.3f}, cost with a brightened dim scene counted "
              f"{DIM_SCENE_WEIGHT:g}x {miss + DIM_SCENE_WEIGHT * false:.3f}")
    return 0


def real(gate: float, files: list[str]) -> int:
    """The default plan's PSNR on the pairs ``files`` (``…/lq/NAME``, ground truth ``…/gt/NAME``) with
    the automatic plan's low-light gate at ``gate``; JSON lines in ``real.jsonl``."""
    import engine.pipeline.plan as plan
    from engine.experts.default import build_registry
    from engine.imageio import load_photo
    from engine.pipeline.job import Restorer, RestoreOptions
    from training.metrics import psnr

    plan.AUTO_MIN_SEVERITY["lowlight"] = gate
    restorer = Restorer(build_registry())
    WORK.mkdir(parents=True, exist_ok=True)
    with (WORK / "real.jsonl").open("a") as f:
        for lq in files:
            photo = load_photo(lq)
            gt = np.clip(load_photo(lq.replace("/lq/", "/gt/")).pixels, 0, 1)
            out, res = restorer.restore_photo(photo, RestoreOptions())
            row = {"photo": Path(lq).name, "gate": gate, "input": psnr(np.clip(photo.pixels, 0, 1), gt),
                   "output": psnr(np.clip(out.pixels, 0, 1), gt),
                   "stages": [[s["stage"], bool(s.get("dropped"))] for s in res.stages]}
            f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("step", choices=("fit", "report", "real"))
    p.add_argument("files", nargs="*", help="real: validation pairs' lq files")
    p.add_argument("--photos", type=int, default=60)
    p.add_argument("--gate", type=float, default=0.2)
    args = p.parse_intermixed_args(argv)
    if args.step == "real":
        return real(args.gate, args.files)
    return fit(args.photos) if args.step == "fit" else report()


if __name__ == "__main__":
    sys.exit(main())
