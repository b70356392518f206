"""Dark and noisy photos: does the automatic plan's order (the noise stage, then the low-light stage)
serve them, or should the low-light stage come first? Probed on TRAINING photos.

The synthetic evaluation table's lowlight+noise case loses 5.6 dB on bsds500_train_166081 against the
committed table (benchmarks/results/evaluation-default-plan.md): the noise stage (FFDNet) runs first,
and IAT-LOL, given the denoised photo, brightens it to a mean luma of 0.26 where the clean photo has 0.36
(18.2 dB); given the noisy photo, the adaptive low-light expert (its own noise-map denoiser after the
brightening) gives 24.6 dB. One photo says nothing about the rule, so this probe measures it on
training photos (``training.data.split``: ../shared/data/clean minus the held-out tenth), seeded order.

Per photo, one case: the table's generators (``degrade_chain``: low light s ~ U(0.3, 0.6), then noise
s ~ U(0.2, 0.5), then with probability 1/2 JPEG s ~ U(0.2, 0.6)), or, on every other photo, the low light
followed by the camera pipeline (``camera_noise``, strength U(0.2, 0.8): Bayer mosaic, Poisson–Gaussian
noise, demosaic, tone curve, camera JPEG). Each is restored by the app's default plan three ways:

- ``plan``: as shipped (noise, then low light);
- ``lowlight first``: the same stages, the low-light stage moved before the noise stage;
- ``lowlight alone``: the noise stage removed (the low-light expert's own denoiser is told the noise
  it measures after brightening).

Only cases whose first plan (before the follow-up round) holds both a noise and a low-light stage
tell the orders apart; the others are listed. ``probe --photos N`` writes rows (JSON lines,
resumable) to ``--work``; ``readings`` adds, per probed case, what the combined analysis reads of low
light (the severity, the hand-made exposure-index severity before the dim-scene hold-down, the 95th
percentile of luma that hold-down reads, the network's probability); ``report`` prints the mean,
worst and per-case differences and why each dark case was not brightened; ``forced`` restores each case
left dark with a low-light stage appended (what the gate holds back); ``dim --photos N`` does the same
to N dim scenes exposed for their light parts, which must stay dark (what the gate protects);
``brightener --photos N`` asks whether, after the noise stage, the brightener the adaptive expert accepts
first serves darkened noisy photos.
Run: ``python benchmarks/lowlight_noise_order.py probe --photos 24``, ``… readings``, ``… forced``,
``… report``.
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

from haze_false_positives import _rows, append_pending  # noqa: E402

SHARED = Path(os.environ.get("RESTORA_SHARED") or ROOT.parent / "shared")
WORK = Path(os.environ.get("RESTORA_BENCH_WORK") or ROOT / "benchmarks" / "results" / "lowlight-noise-order")
VARIANTS = ("plan", "lowlight first", "lowlight alone")
#: The expert the automatic plan brightens with (``engine.experts.lowlight_adaptive``).
LOWLIGHT_EXPERT = "lowlight.adaptive"


def reordered(plan, variant: str):
    """``plan`` as ``variant`` of :data:`VARIANTS` runs it (unchanged where it lacks either stage), or,
    for ``"lowlight forced"``, with a low-light stage appended (full strength, not judged) where it has none."""
    from engine.pipeline.plan import Plan

    from engine.pipeline.plan import Stage

    names = plan.names()
    if variant == "lowlight forced":
        if "lowlight" in names:
            return plan
        return Plan(plan.stages + (Stage("lowlight", LOWLIGHT_EXPERT, 1.0, auto=False),), plan.left_out)
    if variant == "plan" or "noise" not in names or "lowlight" not in names:
        return plan
    stages = [s for s in plan.stages if s.name != "noise"]
    if variant == "lowlight first":
        at = [s.name for s in stages].index("lowlight") + 1
        stages.insert(at, plan.stage("noise"))
    return Plan(tuple(stages), plan.left_out)


_RESTORER = None


def restore(image: np.ndarray, variant: str) -> tuple[np.ndarray, list[str], list[str]]:
    """The default plan's output for ``image`` (float32 HxWx3) run as ``variant``, its stages kept, and
    the stages of its first plan (before the follow-up round)."""
    global _RESTORER
    from engine.photo import Photo
    from engine.pipeline.job import Restorer, RestoreOptions

    if _RESTORER is None:
        from engine.experts.default import build_registry

        _RESTORER = Restorer(build_registry())
    r = _RESTORER
    first: list[str] = []

    def plan_for(session, options):
        plan = Restorer.plan_for(r, session, options)
        first.extend(plan.names())
        return reordered(plan, variant)

    r.plan_for = plan_for
    try:
        out, result = r.restore_photo(Photo(pixels=image), RestoreOptions())
    finally:
        del r.plan_for
    return out.pixels, [s["stage"] for s in result.stages if not s["dropped"]], first


def make_case(j: int, path: Path) -> tuple[np.ndarray, np.ndarray, str, list]:
    """``(degraded, clean, case name, steps)`` of training photo ``path`` at seeded index ``j``."""
    from engine.degrade import degrade_chain
    from engine.degrade.camera import camera_noise
    from training.data import load_uint8, to_float

    rng = np.random.default_rng([23, j])
    clean = to_float(load_uint8(path))
    s_low = float(rng.uniform(0.3, 0.6))
    if j % 2 == 0:
        steps = [("lowlight", s_low), ("noise", float(rng.uniform(0.2, 0.5)))]
        if rng.random() < 0.5:
            steps.append(("jpeg", float(rng.uniform(0.2, 0.6))))
        x = degrade_chain(clean, steps, seed=j)
        kind = "table: " + "+".join(k for k, _ in steps)
    else:
        s_cam = float(rng.uniform(0.2, 0.8))
        x = camera_noise(degrade_chain(clean, [("lowlight", s_low)], seed=j), s_cam, j)[0]
        steps, kind = [("lowlight", s_low), ("camera noise", s_cam)], "camera: lowlight+camera noise"
    return x, clean, kind, steps


def case(j: int, path: Path) -> list[dict]:
    from training.metrics import psnr

    x, clean, kind, steps = make_case(j, path)
    row = {"photo": path.name, "case": kind, "steps": steps, "input": psnr(x, clean)}
    out, stages, first = restore(x, "plan")
    row["plan"], row["stages"], row["first plan"] = psnr(out, clean), stages, first
    if "noise" in first and "lowlight" in first:
        for v in VARIANTS[1:]:
            out, kept, _ = restore(x, v)
            row[v], row[v + " stages"] = psnr(out, clean), kept
    return [row]


def readings(rows: list[dict]) -> list[dict]:
    """Per probed row, the combined analysis' low-light readings of its degraded input."""
    from engine.analysis.calibration import severity_from
    from engine.experts.lowlight_adaptive import robust_peak
    from training.data import list_images, split
    from training.evaluate import default_analyser

    train, _ = split(list_images(SHARED / "data" / "clean"))
    index = {p.name: i for i, p in enumerate(train)}
    analyser = default_analyser()
    out = []
    for r in rows:
        x, _, _, _ = make_case(index[r["photo"]], train[index[r["photo"]]])
        report = analyser(x)
        m = report.kinds["lowlight"].measurements
        out.append({"photo": r["photo"], "lowlight": float(report.severity("lowlight")),
                    "raw": float(severity_from("lowlight", m)), "p95_luma": float(m.get("p95_luma", np.nan)),
                    "learned_probability": float(m.get("learned_probability", np.nan)),
                    "noise": float(report.severity("noise")), "present": report.present(),
                    "peak": robust_peak(x)})
    return out


def forced(rows: list[dict]) -> list[dict]:
    """Per probed row left dark (no low-light stage kept), the PSNR with a low-light stage forced."""
    from training.data import list_images, split
    from training.metrics import psnr

    train, _ = split(list_images(SHARED / "data" / "clean"))
    index = {p.name: i for i, p in enumerate(train)}
    out = []
    for r in rows:
        if "lowlight" in r["stages"]:
            continue
        x, clean, _, _ = make_case(index[r["photo"]], train[index[r["photo"]]])
        y, kept, _ = restore(x, "lowlight forced")
        out.append({"photo": r["photo"], "lowlight forced": psnr(y, clean), "kept": kept})
    return out


def dim_cases(count: int) -> list[dict]:
    """The negatives: ``count`` TRAINING photos (seeded order, after the probe's) made dim scenes exposed for
    their light parts (``haze_false_positives.dim_scene``), half through the camera pipeline. The scene as
    it is stands as its own ground truth (it must stay dark): PSNR of the plan's output and of the output
    with a low-light stage forced, against the dim scene; with the robust peak (99.9th percentile of
    luma) that ``lowlight.adaptive`` scales its brightening by."""
    from engine.degrade.camera import camera_noise
    from engine.experts.lowlight_adaptive import brightening_share, robust_peak
    from haze_false_positives import dim_scene
    from training.data import list_images, load_uint8, split, to_float
    from training.metrics import psnr

    train, _ = split(list_images(SHARED / "data" / "clean"))
    order = np.random.default_rng(23).permutation(len(train))
    out = []
    for j in order[len(order) - count:]:
        rng = np.random.default_rng([29, int(j)])
        scene = dim_scene(to_float(load_uint8(train[int(j)])), rng)
        x = camera_noise(scene, float(rng.uniform(0.2, 0.8)), int(j))[0] if rng.random() < 0.5 else scene
        plan_out, kept, _ = restore(x, "plan")
        forced_out, _, _ = restore(x, "lowlight forced")
        peak = robust_peak(x)
        out.append({"photo": train[int(j)].name, "plan": psnr(plan_out, x), "stages": kept,
                    "lowlight forced": psnr(forced_out, x), "peak": peak, "share": brightening_share(peak)})
    return out


def brightener_choice(count: int) -> list[dict]:
    """After the noise stage, does the adaptive expert's first acceptable brightener (IAT-LOL) serve a
    darkened noisy photo? ``count`` TRAINING photos (the seeded order's 2·count-th to count-th from its end:
with ``dim --photos 12`` four of these photos are also dim scenes, differently degraded), the table's low
    light s ~ U(0.4, 0.6) then noise U(0.3, 0.5); restored with the plan plus a low-light stage where it has
    none (``lowlight forced``), once as shipped and once with every candidate judged by
    ``exposure_score`` alone (none "acceptable" outright). PSNR, the brightener chosen and the output's
    mean luma against the clean photo's."""
    import engine.experts.lowlight_adaptive as adaptive
    from engine.color import luminance
    from engine.degrade import degrade_chain
    from training.data import list_images, load_uint8, split, to_float
    from training.metrics import psnr

    train, _ = split(list_images(SHARED / "data" / "clean"))
    order = np.random.default_rng(23).permutation(len(train))
    expert = None
    out = []
    for j in order[len(order) - 2 * count:len(order) - count]:
        rng = np.random.default_rng([31, int(j)])
        clean = to_float(load_uint8(train[int(j)]))
        steps = [("lowlight", float(rng.uniform(0.4, 0.6))), ("noise", float(rng.uniform(0.3, 0.5)))]
        x = degrade_chain(clean, steps, seed=int(j))
        row = {"photo": train[int(j)].name, "steps": steps, "input": psnr(x, clean),
               "clean mean luma": float(luminance(clean).mean())}
        for name, accept in (("shipped", adaptive.acceptable), ("by score", lambda before, after: False)):
            original = adaptive.acceptable
            adaptive.acceptable = accept
            try:
                y, kept, _ = restore(x, "lowlight forced")
            finally:
                adaptive.acceptable = original
            expert = expert or _RESTORER.registry.get(LOWLIGHT_EXPERT)
            row[name] = {"psnr": psnr(y, clean), "stages": kept, "choice": expert.last_choice,
                         "mean luma": float(luminance(y).mean())}
        out.append(row)
    return out


def report(rows: list[dict]) -> None:
    both = [r for r in rows if "lowlight first" in r]
    read = {r["photo"]: r for r in _rows(WORK / "readings-train.jsonl")}
    forced_rows = {r["photo"]: r for r in _rows(WORK / "forced-train.jsonl")}
    print(f"{len(rows)} training cases; {len(both)} planned both a noise and a low-light stage; "
          f"{sum('lowlight' in r['stages'] for r in rows)} brightened")
    for r in rows:
        extra = " ".join(f"{v} {r[v]:.2f}" for v in VARIANTS[1:] if v in r)
        if r["photo"] in forced_rows:
            extra += f"lowlight forced {forced_rows[r['photo']]['lowlight forced']:.2f}"
        g = read.get(r["photo"])
        why = (f"; low light {g['lowlight']:.2f} (exposure index {g['raw']:.2f}, p95 {g['p95_luma']:.2f}, "
               f"network p {g['learned_probability']:.2f}, peak {g.get('peak', float('nan')):.2f})") if g else ""
        print(f"  {r['photo']} {r['case']}: input {r['input']:.2f} plan {r['plan']:.2f} "
              f"first plan {r['first plan']}, kept {r['stages']} {extra}{why}")
    for d in _rows(WORK / "dim-train.jsonl"):
        print(f"  dim scene {d['photo']}: plan {d['plan']:.2f} {d['stages']}, low light forced "
              f"{d['lowlight forced']:.2f} (against the dim scene itself), peak {d['peak']:.2f}, "
              f"share {d['share']:.2f}")
    for b in _rows(WORK / "brightener-train.jsonl"):
        print(f"  brightener {b['photo']}: input {b['input']:.2f}, clean mean luma {b['clean mean luma']:.2f}; "
              + "; ".join(f"{k} {b[k]['psnr']:.2f} {b[k]['choice']} mean {b[k]['mean luma']:.2f} {b[k]['stages']}"
                          for k in ("shipped", "by score")))
    dark = [(r, forced_rows[r["photo"]]) for r in rows if r["photo"] in forced_rows]
    if dark:
        d = np.array([f["lowlight forced"] - r["plan"] for r, f in dark])
        print(f"left dark: {len(dark)}; a low-light stage forced − plan: mean {d.mean():+.2f} dB, "
              f"worst {d.min():+.2f}, best {d.max():+.2f}, better on {(d > 0.05).sum()}")
    for v in VARIANTS[1:]:
        d = np.array([r[v] - r["plan"] for r in both])
        if len(d):
            print(f"{v} − plan: mean {d.mean():+.2f} dB, median {np.median(d):+.2f}, worst {d.min():+.2f}, "
                  f"best {d.max():+.2f}, better on {(d > 0.05).sum()}, worse on {(d < -0.05).sum()} of {len(d)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("step", choices=("probe", "readings", "forced", "dim", "brightener", "report"))
    p.add_argument("--photos", type=int, default=24)
    a = p.parse_args(argv)
    out = WORK / "probe-train.jsonl"
    if a.step in ("readings", "forced", "dim", "brightener"):
        import json

        rows = readings(_rows(out)) if a.step == "readings" else forced(_rows(out)) if a.step == "forced" \
            else dim_cases(a.photos) if a.step == "dim" else brightener_choice(a.photos)
        (WORK / f"{a.step}-train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if a.step == "probe":
        from training.common import limit_threads
        from training.data import list_images, split

        limit_threads(1)
        train, _ = split(list_images(SHARED / "data" / "clean"))
        WORK.mkdir(parents=True, exist_ok=True)
        append_pending(out, train, a.photos, 23, case)
    report(_rows(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
