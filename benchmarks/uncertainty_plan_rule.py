"""The plan's uncertainty rule (engine/uncertainty/assess.py): fit on training photos, measure on the
real pairs.

``fit --cache TRAIN...`` reads the rows ``benchmarks/uncertainty.py collect`` cached for training
photos (``train``, ``train2``, ``camera``: central crops of ``../shared/data/clean``, synthetic
degradations and the simulated camera; only the automatic plan's rows, where the rule acts), with
the PSNR of every restored result with each subset of its kept stages halved or dropped. Per kept
stage it computes the shipped uncertainty map and three statistics: the uncertain fraction (expected
error above 8 levels), the mean expected error (levels) and that mean over the stage's mean change;
its gain is the drop of its own kind's severity. Over a grid of (statistic, threshold, gain limit,
halve or drop) it keeps the rule with the best mean PSNR change among those that made no training
photo worse by more than 0.05 dB. ``--caches VAL...`` measures every rule of the grid the same way
on the validation rows (synthetic held-out photos, real pairs) for the table; nothing there is fitted.

``measure`` restores real pairs of ``../shared/data/pairs`` (whole photos, automatic plan, rule off),
replays the kept stages through the rule (``engine.uncertainty.assess.first_drop``: what turning it
on changes, and its cost), and restores again with the rule on where it fires: PSNR with and without
the rule, per set (mean and worst), and the rule's time against the restoration's.

Run (a loaded 2-core machine): ``OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python
benchmarks/uncertainty_plan_rule.py fit --cache train.npz train2.npz camera.npz --caches val.npz
real.npz`` then ``... measure --per-set 12 --minutes 40``; both write
``benchmarks/results/uncertainty-plan-rule.{json,md}`` sections.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import uncertainty as U  # benchmarks/uncertainty.py, beside this script
from _host import cpu_model  # noqa: F401  (same host record as the calibration)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
JSON = RESULTS / "uncertainty-plan-rule.json"
AUTO_TRAIN = ("train-auto", "train-camera")
GRID = {"frac": (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9), "mean": (2, 4, 8, 12, 16, 24, 32, 48),
        "ratio": (0.5, 1, 1.5, 2, 3, 5, 8, 12)}
GAINS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.1)
ACTIONS = (0.5, 0.0)
#: A rule may make no training photo worse than this (dB).
WORST_ALLOWED = -0.05


def records(paths: list[str], calibration: str | None = None) -> list[dict]:
    """One record per restored photo (composed row) with its kept stages' statistics, the maps from
    ``calibration`` (a calibration file; default: the committed one)."""
    from engine.uncertainty import UncertaintyModel, default_model
    from engine.uncertainty.summary import UNCERTAIN_LEVELS
    model = UncertaintyModel.from_json(Path(calibration).read_text()) if calibration else default_model()
    how = model.meta.get("composed_by", "pooled")
    out = []
    for path in paths:
        rows, _ = U.load_rows(Path(path))
        stage = {}
        for r in rows:
            if r["stage"] == "composed":
                continue
            m = U.predict_row(model, r, how)
            name = r["stage"] if r["stage"] in U.SYNTH_KINDS else ""
            gain = (r["sev_in"].get(name, 0.0) - r["sev_out"].get(name, 0.0)) if name else \
                (max(r["sev_in"].values()) - max(r["sev_out"].values()))
            mean = float(m.mean())
            stage[(r["group"], r["kind"], r["photo"], r["stage"])] = {
                "frac": float((m > UNCERTAIN_LEVELS).mean()), "mean": mean, "gain": float(gain),
                "ratio": mean / max(float(r["change"].mean()), 1e-3)}
        for r in rows:
            if r["stage"] == "composed":
                out.append({"group": r["group"], "kind": r["kind"], "photo": r["photo"], "kept": r["kept"],
                            "psnr": r["psnr"], "variants": r["variants"],
                            "stages": {s: stage.get((r["group"], r["kind"], r["photo"], s)) for s in r["kept"]}})
        print(f"  {path}: {len(rows)} rows", file=sys.stderr, flush=True)
    return out


def apply(rec: dict, stat: str, threshold: float, gain: float, action: float) -> float:
    flagged = [s for s in rec["kept"] if rec["stages"].get(s) and rec["stages"][s][stat] >= threshold
               and rec["stages"][s]["gain"] < gain]
    return rec["variants"][f"{'+'.join(flagged)}|{action}"] if flagged else rec["psnr"]


def score(recs: list[dict], rule: tuple) -> dict:
    d = np.array([apply(r, *rule) - r["psnr"] for r in recs])
    return {"photos": len(d), "changed": int((d != 0).sum()), "worse": int((d < -0.005).sum()),
            "mean": round(float(d.mean()), 3) if len(d) else 0.0, "worst": round(float(d.min()), 3) if len(d) else 0.0,
            "best": round(float(d.max()), 3) if len(d) else 0.0}


def fit(args) -> None:
    train = [r for r in records(args.cache, args.calibration) if r["group"] in AUTO_TRAIN]
    rules = [(s, t, g, a) for s, ts in GRID.items() for t in ts for g in GAINS for a in ACTIONS]
    scored = {rule: score(train, rule) for rule in rules}
    safe = [r for r in rules if scored[r]["worst"] >= WORST_ALLOWED and scored[r]["changed"]]
    best = max(safe, key=lambda r: scored[r]["mean"]) if safe else None
    unconstrained = max(rules, key=lambda r: scored[r]["mean"])
    val = records(args.caches, args.calibration) if args.caches else []
    groups = {}
    for r in val:
        groups.setdefault(r["group"].split(":")[0], []).append(r)
    report = {"machine": U.machine(), "fitted_on": f"{len(train)} training results (automatic plan) "
              f"of {len({r['photo'] for r in train})} photos", "calibration": args.calibration or "committed",
              "chosen": best, "best_unconstrained": unconstrained,
              "training": {"|".join(map(str, r)): scored[r] for r in rules},
              "validation": {g: {"|".join(map(str, r)): score(rs, r) for r in rules} for g, rs in groups.items()}}
    out = Path(args.json)
    data = json.loads(out.read_text()) if out.exists() else {}
    data["fit"] = report
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps({"chosen": best, "train": scored.get(best), "unconstrained": unconstrained,
                      "train_unconstrained": scored[unconstrained],
                      **{g: {"chosen": report["validation"][g].get("|".join(map(str, best))) if best else None,
                             "unconstrained": report["validation"][g]["|".join(map(str, unconstrained))]}
                         for g in groups}}, indent=1))


def measure(args) -> None:
    from engine.imageio import load_photo
    from engine.pipeline.job import RestoreOptions, Restorer
    from engine.experts.default import build_registry
    from engine.uncertainty.assess import first_drop
    restorer = Restorer(build_registry(device="cpu"))
    queues = []
    for set_name in U.REAL_SETS:
        folder = U.PAIRS / set_name
        if folder.is_dir():
            files = sorted(p.name for p in (folder / "lq").iterdir())
            files = files[:: max(1, len(files) // args.per_set)][:args.per_set]
            queues.append([(set_name, f) for f in files])
    order = [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]
    t_end = time.monotonic() + 60 * args.minutes
    rows, restore_s, rule_s = [], 0.0, 0.0
    for set_name, name in order:
        if time.monotonic() > t_end:
            break
        folder = U.PAIRS / set_name
        photo = load_photo(folder / "lq" / name)
        gt = next(p for p in sorted((folder / "gt").iterdir()) if p.stem == Path(name).stem)
        truth = load_photo(gt).pixels
        if truth.shape != photo.pixels.shape:
            continue
        t0 = time.perf_counter()
        session = restorer.session(photo.pixels, RestoreOptions(), jpeg=photo.jpeg, metadata=photo.metadata)
        outcome = restorer.orchestrator.restore(session, RestoreOptions().choices())
        off = session.compose(outcome.plan.strengths())
        t1 = time.perf_counter()
        verdict = first_drop(session, outcome.results)
        t2 = time.perf_counter()
        restore_s, rule_s = restore_s + (t1 - t0), rule_s + (t2 - t1)
        row = {"set": set_name, "photo": name, "pixels": int(truth.shape[0] * truth.shape[1]),
               "kept": [r.name for r in outcome.results if not r.dropped],
               "psnr_in": round(U.psnr(photo.pixels, truth), 3), "psnr_off": round(U.psnr(off, truth), 3),
               "restore_s": round(t1 - t0, 2), "rule_s": round(t2 - t1, 3)}
        row["psnr_on"] = row["psnr_off"]
        if verdict is not None:
            on_session = restorer.session(photo.pixels, RestoreOptions(), jpeg=photo.jpeg, metadata=photo.metadata)
            on_session.drop_uncertain = True
            on_outcome = restorer.orchestrator.restore(on_session, RestoreOptions().choices())
            row.update(dropped=verdict[0], mean_levels=round(verdict[1].mean_levels, 2),
                       gain=round(verdict[1].gain, 3), kept_on=[r.name for r in on_outcome.results if not r.dropped],
                       psnr_on=round(U.psnr(on_session.compose(on_outcome.plan.strengths()), truth), 3))
        rows.append(row)
        print(f"  {set_name} {name}: {row['psnr_off']:.2f} → {row['psnr_on']:.2f} {row.get('dropped', '')}",
              file=sys.stderr, flush=True)
        out = Path(args.json)
        data = json.loads(out.read_text()) if out.exists() else {}
        data["measure"] = {"machine": U.machine(), "rows": rows, "restore_s": round(restore_s, 1),
                           "rule_s": round(rule_s, 2)}
        out.write_text(json.dumps(data, indent=1) + "\n")
    summarise_measure(rows, restore_s, rule_s)


def summarise_measure(rows, restore_s, rule_s) -> None:
    for set_name in U.REAL_SETS:
        d = np.array([r["psnr_on"] - r["psnr_off"] for r in rows if r["set"] == set_name])
        if len(d):
            print(f"{set_name}: {len(d)} photos, {int((d != 0).sum())} changed, mean {d.mean():+.3f}, "
                  f"worst {d.min():+.3f}, best {d.max():+.3f}")
    print(f"rule {rule_s:.1f} s against restoring {restore_s:.1f} s: {100 * rule_s / max(restore_s, 1e-9):.1f} %")


def report(args) -> None:
    """``benchmarks/results/uncertainty-plan-rule.md`` from the JSON (the hand-written summary on top
    is ``--intro``'s file)."""
    data = json.loads(Path(args.json).read_text())
    out = ["# Plan rule: drop a stage whose result is uncertain for a small gain (benchmarks/uncertainty_plan_rule.py)",
           ""]
    if args.intro:
        out += [Path(args.intro).read_text().strip(), ""]
    f = data.get("fit")
    if f:
        def cell(s):
            return (f"{s['changed']} / {s['photos']} | {s['worse']} | {s['mean']:+.3f} | {s['worst']:+.3f} | "
                    f"{s['best']:+.3f}")

        def name(k):
            stat, threshold, gain, action = k.split("|")
            return f"{stat} ≥ {threshold}, gain < {gain}, {'drop' if float(action) == 0 else 'x' + action}"
        chosen = "|".join(map(str, f["chosen"])) if f["chosen"] else None
        safe = sorted((k for k, v in f["training"].items() if v["worst"] >= WORST_ALLOWED and v["changed"]),
                      key=lambda k: -f["training"][k]["mean"])[:6]
        unc = "|".join(map(str, f["best_unconstrained"]))
        out += ["## Fit on training photos, then the same rules on validation rows (128 px crops, cached)", "",
                f"Machine: {f['machine']}. Fitted on {f['fitted_on']}. A rule: "
                "a kept stage of the automatic plan is softened (action 0.5: half strength) or dropped (0.0) when "
                "its statistic is at least the threshold and its own severity fell by less than the gain limit. "
                "Statistics of the stage's uncertainty map: `frac` (share of pixels with expected error above 8 "
                "levels), `mean` (mean expected error, levels), `ratio` (that mean over the stage's mean change). "
                "The PSNR of a rule's result is read from the cached restorations (the stage's change composed at "
                "the lower strength after the run), ΔPSNR against the plan as it ran. `synthetic` (a stage "
                "forced with `--only`) is not judged by the rule in the pipeline (only automatic stages are); it is "
                "listed for completeness.", "",
                "| rule | rows | changed | worse | mean ΔPSNR | worst | best |", "|---|---|---|---|---|---|---|"]
        for k in ([chosen] if chosen else []) + [x for x in safe if x != chosen] + [unc]:
            tag = " **(chosen)**" if k == chosen else (" (best mean, unconstrained)" if k == unc else "")
            out.append(f"| {name(k)}{tag} | training | {cell(f['training'][k])} |")
            for g, v in f["validation"].items():
                out.append(f"| {name(k)} | {g} | {cell(v[k])} |")
        out.append("")
    m = data.get("measure")
    if m:
        rows = m["rows"]
        out += ["## The rule in the pipeline, on whole real pairs", "",
                f"Machine: {m['machine']}. Each pair restored once with the automatic plan (rule off); the kept "
                "stages replayed through the rule (`engine.uncertainty.assess.first_drop`); where it fires, the "
                "photo restored again with the rule on (`RestorationSession.drop_uncertain`: the stage is dropped "
                "when judged, the later stages run on its input). ΔPSNR = on − off (dB, 8-bit rounding).", "",
                "| set | photos | fired | mean ΔPSNR | worst ΔPSNR | best ΔPSNR |", "|---|---|---|---|---|---|"]
        for set_name in U.REAL_SETS:
            d = np.array([r["psnr_on"] - r["psnr_off"] for r in rows if r["set"] == set_name])
            if len(d):
                fired = sum(1 for r in rows if r["set"] == set_name and "dropped" in r)
                out.append(f"| {set_name} | {len(d)} | {fired} | {d.mean():+.3f} | {d.min():+.3f} | {d.max():+.3f} |")
        d = np.array([r["psnr_on"] - r["psnr_off"] for r in rows])
        out += [f"| all | {len(d)} | {sum(1 for r in rows if 'dropped' in r)} | {d.mean():+.3f} | {d.min():+.3f} | "
                f"{d.max():+.3f} |", ""]
        for r in rows:
            if "dropped" in r:
                out.append(f"- {r['set']} `{r['photo']}`: dropped {r['dropped']} (mean expected error "
                           f"{r['mean_levels']:.1f} levels, gain {r['gain']:.2f}); kept {r['kept']} → {r['kept_on']}; "
                           f"{r['psnr_off']:.2f} → {r['psnr_on']:.2f} dB (input {r['psnr_in']:.2f})")
        out += ["", f"Cost: the rule's maps took {m['rule_s']:.1f} s against {m['restore_s']:.1f} s of restoration "
                f"({100 * m['rule_s'] / max(m['restore_s'], 1e-9):.1f} %; a map is computed only for a stage whose "
                "gain is under the limit, on at most 1 MP).", ""]
    Path(args.out).write_text("\n".join(out) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("phase", choices=("fit", "measure", "report"))
    ap.add_argument("--intro", help="report: the summary written by hand")
    ap.add_argument("--cache", nargs="+", help="fit: the training rows")
    ap.add_argument("--caches", nargs="*", help="fit: validation rows measured with every rule")
    ap.add_argument("--per-set", type=int, default=12)
    ap.add_argument("--minutes", type=float, default=40.0, help="measure: stop starting photos after this")
    ap.add_argument("--calibration", help="fit: the maps from this calibration file (default: the committed one)")
    ap.add_argument("--json", default=str(JSON), help="fit, measure: the JSON written into; report: read")
    ap.add_argument("--out", default=str(RESULTS / "uncertainty-plan-rule.md"), help="report: the markdown written")
    args = ap.parse_args()
    {"fit": fit, "measure": measure, "report": report}[args.phase](args)


if __name__ == "__main__":
    main()
