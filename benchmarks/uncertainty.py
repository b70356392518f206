"""Calibration of the per-pixel uncertainty map (engine/uncertainty) and the candidates it was
chosen from.

Phase ``fit`` restores synthetic degradations (``engine.degrade``, one kind at a time, strength
0.3–0.8) of central crops of the first ``--train`` photos of ``../shared/data/clean`` with
``--only KIND`` (what the app runs for that kind), samples pixels, and fits per kind and for the
composed result the model of ``engine/uncertainty/model.py``; it writes
``models/uncertainty-calibration.json``.

Phase ``eval`` (the numbers) uses held-out photos (the last ``--val`` of the clean set) and the
real pairs in ``../shared/data/pairs`` (validation only, never fitted on), restored with the
default automatic plan. The actual error is |restored − truth| per pixel, mean over channels,
in 8-bit levels. For every candidate predictor it reports the Spearman correlation with the
actual error, pooled over the pixels of all photos of a kind and per photo (mean and worst),
and for the shipped model the reliability curve (mean predicted vs mean observed error by
decile of the prediction). Candidates:

- ``change``: the viewer's change map before this work (|restored − input|);
- ``change_smooth``: the same, box-averaged over the model's window;
- ``texture``: local gradient magnitude of the result; ``noise``: the analysed noise map;
- ``flip_ensemble``: |restored − flip(restore(flip(input)))| (costs one more restoration);
- ``two_experts``: |stage output − the second-ranked expert's output on the same input| (per
  stage, where the kind has two experts; costs one more run of that stage);
- ``model``: the shipped calibrated map.

It also measures the plan rule of issue 15 (soften or drop a stage whose uncertain fraction is
high and whose gain is small) by PSNR against the truth, and the cost of the map as a fraction
of the restoration time.

Run: ``OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/uncertainty.py fit`` then
``... benchmarks/uncertainty.py eval [--out benchmarks/results/uncertainty.md]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from _host import cpu_model  # benchmarks/_host.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = Path(os.environ.get("RESTORA_SHARED") or ROOT.parent / "shared")
CLEAN = SHARED / "data" / "clean"
PAIRS = SHARED / "data" / "pairs"
#: Real pair sets and the kind each one shows.
REAL_SETS = {"noise_real_polyu_crops": "noise", "blur_real_levin": "blur", "haze_reside": "haze",
             "lowlight_real_lol_train": "lowlight", "rain_synthetic": "rain"}
SYNTH_KINDS = ("noise", "blur", "jpeg", "haze", "lowlight", "rain")
SAMPLES_PER_PHOTO = 5000


def machine() -> str:
    model = cpu_model()
    return f"{model}, {os.cpu_count()} logical cores, load average {os.getloadavg()[0]:.1f} at start (shared, loaded)"


def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    top, left = max((h - size) // 2 // 16 * 16, 0), max((w - size) // 2 // 16 * 16, 0)
    return np.ascontiguousarray(img[top:top + size, left:left + size])


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def psnr(x: np.ndarray, y: np.ndarray) -> float:
    mse = float(np.mean((np.round(np.clip(x, 0, 1) * 255) / 255 - y) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


class Collector:
    """Restores photos and keeps sampled pixels of every stage and of the composed result."""

    def __init__(self, extra_candidates: bool) -> None:
        from engine.experts.default import build_registry
        from engine.pipeline.job import Restorer

        self.registry = build_registry(device="cpu")
        self.restorer = Restorer(self.registry)
        self.extra = extra_candidates
        self.stage_rows: list[dict] = []
        self.composed_rows: list[dict] = []
        self.plan_rows: list[dict] = []
        self.seconds_restore = 0.0
        self.seconds_map = 0.0

    def restore(self, degraded, truth, options, group: str, kind: str, photo: str, seed: int, jpeg=None,
                model=None) -> None:
        from engine.uncertainty.features import FEATURES, absolute_error, feature_stack
        from engine.uncertainty.session import _noise_sigma, _severity

        t0 = time.perf_counter()
        session = self.restorer.session(degraded, options, jpeg=jpeg)
        outcome = self.restorer.orchestrator.restore(session, options.choices())
        plan, results = outcome.plan, outcome.results
        strengths = plan.strengths()
        composed = session.compose(strengths)
        self.seconds_restore += time.perf_counter() - t0
        rng = np.random.default_rng(seed)
        h, w = degraded.shape[:2]
        idx = rng.choice(h * w, size=min(SAMPLES_PER_PHOTO, h * w), replace=False)

        def take(plane):
            return np.asarray(plane, np.float32).reshape(-1)[idx]

        def row(before, after, name, report, report_after):
            sigma = _noise_sigma(before, report)
            sev = _severity(report, name if name in SYNTH_KINDS else "")
            sev_after = _severity(report_after, name if name in SYNTH_KINDS else "")
            stack = feature_stack(before, after, noise_sigma=sigma, severity=sev,
                                  severity_after=sev_after).reshape(1 + len(FEATURES), -1)[:, idx]
            err = absolute_error(after, truth)
            return {"group": group, "kind": kind, "stage": name, "photo": photo, "stack": stack, "err": take(err),
                    "change": take(absolute_error(after, before)), "before": before, "after": after,
                    "sigma": sigma, "severity": sev}

        current, report = session.image, session.report
        for r in results:
            if r.dropped or r.delta is None:
                continue
            after = np.clip(current + r.delta, 0.0, 1.0)
            rec = row(current, after, r.name, report, r.output_report)
            if self.extra and r.name in SYNTH_KINDS:
                rec["two_experts"] = self._second_expert(r, current, after, report, take)
            self.stage_rows.append({k: v for k, v in rec.items() if k not in ("before", "after", "sigma")})
            current, report = after, r.output_report or report
        kept = [r for r in results if not r.dropped and r.output_report is not None]
        rec = row(session.image, composed, "composed", session.report,
                  kept[-1].output_report if kept else session.report)
        if model is not None:
            t1 = time.perf_counter()
            from engine.uncertainty import SessionUncertainty, stage_maps
            stage_maps(session)
            SessionUncertainty(session, model).composed(strengths)
            self.seconds_map += time.perf_counter() - t1
            self._plan_rule(session, results, strengths, truth, group, kind, photo, model)
        if self.extra:
            flipped = self.restorer.session(np.ascontiguousarray(degraded[:, ::-1]), options)
            self.restorer.orchestrator.run(flipped, plan)
            back = flipped.compose(strengths)[:, ::-1]
            rec["flip_ensemble"] = take(absolute_error(composed, back))
        from engine.uncertainty.features import _box, _gradient, _grey, noise_plane
        rec["texture"] = take(_box(_gradient(_grey(composed))))
        rec["noise"] = take(noise_plane(rec["sigma"], (h, w)))
        rec["change_smooth"] = take(_box(absolute_error(composed, session.image)))
        self.composed_rows.append({k: v for k, v in rec.items() if k not in ("before", "after", "sigma")})

    def _second_expert(self, r, before, after, report, take):
        from engine.experts.base import ExpertContext
        others = [e for e in self.registry.for_task(r.name) if e.info.id != r.expert_id and not e.info.generative]
        if not others:
            return None
        a = report.kinds.get(r.name)
        ctx = ExpertContext(severity=float(a.severity) if a else 0.5, measurements=dict(a.measurements) if a else {})
        try:
            other = np.clip(others[0].run(before, ctx).astype(np.float32), 0, 1)
        except Exception:  # noqa: BLE001 - a candidate that cannot run is reported as missing
            return None
        from engine.uncertainty.features import absolute_error
        return take(absolute_error(after, other))

    def _plan_rule(self, session, results, strengths, truth, group, kind, photo, model) -> None:
        """PSNR of the result as planned and with each variant of the plan rule applied."""
        from engine.uncertainty import stage_maps
        from engine.uncertainty.summary import UNCERTAIN_LEVELS
        maps = stage_maps(session, results, model)
        base = session.compose(strengths)
        from engine.uncertainty.session import _severity
        info = []
        report = session.report
        for r in results:
            if r.name in maps:
                name = r.name if r.name in SYNTH_KINDS else ""
                gain = _severity(report, name) - _severity(r.output_report, name)
                info.append((r.name, float((maps[r.name] > UNCERTAIN_LEVELS).mean()), gain))
                report = r.output_report or report
        out = {"group": group, "kind": kind, "photo": photo, "psnr_in": psnr(session.image, truth),
               "psnr": psnr(base, truth), "stages": info, "variants": {}}
        for frac in (0.1, 0.25, 0.5):
            for gmax in (0.1, 0.3):
                for action in (0.5, 0.0):
                    s = dict(strengths)
                    hit = False
                    for name, f, gain in info:
                        if f >= frac and gain < gmax:
                            s[name] = strengths.get(name, 1.0) * action
                            hit = True
                    out["variants"][f"frac>={frac},gain<{gmax},x{action}"] = psnr(session.compose(s), truth) if hit \
                        else out["psnr"]
        self.plan_rows.append(out)


def synthetic(names: list[str], kinds, crop: int, options_for, collector: Collector, group: str, model=None) -> None:
    from engine.degrade import degrade
    from engine.imageio import load_photo
    for i, name in enumerate(names):
        clean = centre_crop(load_photo(CLEAN / name).pixels, crop)
        for j, kind in enumerate(kinds):
            seed = 1000 * i + j
            strength = float(np.random.default_rng(seed).uniform(0.3, 0.8))
            degraded = degrade(clean, kind, strength, seed=seed)
            collector.restore(degraded, clean, options_for(kind), group, kind, name, seed, model=model)
        print(f"  {group} {i + 1}/{len(names)} {name}", file=sys.stderr, flush=True)


def fit(args) -> None:
    from engine.pipeline.job import RestoreOptions
    from engine.uncertainty.model import COMPOSED, UncertaintyModel, fit_kind
    names = sorted(os.listdir(CLEAN))[: args.train]
    col = Collector(extra_candidates=False)
    synthetic(names, SYNTH_KINDS, args.crop, lambda k: RestoreOptions(auto=False, only=(k,)), col, "train")
    synthetic(names[: max(1, args.train // 2)], SYNTH_KINDS, args.crop, lambda k: RestoreOptions(), col, "train-auto")
    kinds = {}
    for kind in SYNTH_KINDS:
        rows = [r for r in col.stage_rows if r["stage"] == kind]
        if rows:
            kinds[kind] = fit_kind([r["stack"] for r in rows], [r["err"] for r in rows])
    rows = col.composed_rows + [r for r in col.stage_rows if r["stage"] not in SYNTH_KINDS]
    kinds[COMPOSED] = fit_kind([r["stack"] for r in rows], [r["err"] for r in rows])
    meta = {"fitted_on": f"{len(names)} photos of data/clean (first in name order), central {args.crop}px crops, "
                         f"synthetic degradations strength 0.3-0.8, --only KIND and automatic plans",
            "samples": {k: int(sum(r["stack"].shape[1] for r in col.stage_rows if r["stage"] == k))
                        for k in SYNTH_KINDS}}
    model = UncertaintyModel(kinds, meta)
    out = ROOT / "models" / "uncertainty-calibration.json"
    out.write_text(model.to_json(), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)


def _candidates(rows, model, per_stage: bool) -> dict[str, list[tuple[np.ndarray, np.ndarray, str]]]:
    """name → [(prediction, error, photo)] over rows."""
    from engine.uncertainty.model import COMPOSED
    out: dict[str, list] = {}
    for r in rows:
        m = model.for_kind(r["stage"] if per_stage and r["stage"] in SYNTH_KINDS else COMPOSED)
        preds = {"change": r["change"], "model": m.levels(m.score(r["stack"]))}
        for k in ("change_smooth", "texture", "noise", "flip_ensemble", "two_experts"):
            if r.get(k) is not None:
                preds[k] = r[k]
        for k, p in preds.items():
            out.setdefault(k, []).append((p, r["err"], r["photo"]))
    return out


def _stats(entries) -> dict:
    pooled = spearman(np.concatenate([e[0] for e in entries]), np.concatenate([e[1] for e in entries]))
    per = [spearman(p, e) for p, e, _ in entries]
    return {"pooled": round(pooled, 3), "per_photo_mean": round(float(np.mean(per)), 3),
            "per_photo_worst": round(float(np.min(per)), 3), "photos": len(per)}


def _reliability(entries) -> list[tuple[float, float]]:
    p = np.concatenate([e[0] for e in entries])
    e = np.concatenate([e[1] for e in entries])
    edges = np.quantile(p, np.linspace(0, 1, 11))
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 9)
    return [(round(float(p[idx == d].mean()), 2), round(float(e[idx == d].mean()), 2)) if (idx == d).any()
            else (float("nan"), float("nan")) for d in range(10)]


def evaluate(args) -> None:
    from engine.imageio import load_photo
    from engine.pipeline.job import RestoreOptions
    from engine.uncertainty import default_model
    model = default_model()
    started = machine()
    col = Collector(extra_candidates=not args.no_extra)
    names = sorted(os.listdir(CLEAN))[-args.val:]
    synthetic(names, SYNTH_KINDS, args.crop, lambda k: RestoreOptions(auto=False, only=(k,)), col, "synthetic",
              model=model)
    for set_name, kind in REAL_SETS.items():
        folder = PAIRS / set_name
        if not folder.is_dir():
            continue
        files = sorted(p.name for p in (folder / "lq").iterdir())
        files = files[:: max(1, len(files) // args.pairs)][: args.pairs]
        for i, name in enumerate(files):
            photo = load_photo(folder / "lq" / name)
            truth = centre_crop(load_photo(folder / "gt" / name).pixels, args.crop)
            lq = centre_crop(photo.pixels, args.crop)
            if lq.shape != truth.shape:
                continue
            col.restore(lq, truth, RestoreOptions(), f"real:{set_name}", kind, name, 77 + i,
                        jpeg=photo.jpeg if lq.shape == photo.pixels.shape else None, model=model)
        print(f"  real {set_name} done", file=sys.stderr, flush=True)
    report = {"machine": started, "crop": args.crop, "val_photos": names, "results": {}}
    for level, rows_all, per_stage in (("stage", col.stage_rows, True), ("composed", col.composed_rows, False)):
        groups = {}
        for r in rows_all:
            if level == "stage" and r["stage"] not in SYNTH_KINDS:
                continue
            key = (r["group"].split(":")[0], r["stage"] if level == "stage" else r["kind"])
            groups.setdefault(key, []).append(r)
        for (group, kind), rows in sorted(groups.items()):
            cands = _candidates(rows, model, per_stage)
            entry = {name: _stats(v) for name, v in cands.items()}
            entry["reliability_model"] = _reliability(cands["model"])
            report["results"][f"{level}/{group}/{kind}"] = entry
    report["plan_rule"] = col.plan_rows
    report["cost"] = {"restore_s": round(col.seconds_restore, 2), "map_s": round(col.seconds_map, 2)}
    Path(args.json).write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)
    Path(args.out).write_text(markdown(report), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


CANDIDATES = ("model", "change", "change_smooth", "texture", "noise", "flip_ensemble", "two_experts")


def markdown(report: dict) -> str:
    """The results file: Spearman tables, reliability curves, plan rule, cost."""
    out = ["# Uncertainty map: calibration (benchmarks/uncertainty.py)", "",
           f"Machine: {report['machine']}. Central {report['crop']} px crops. Synthetic validation: "
           f"{len(report['val_photos'])} held-out photos of data/clean (the fit used others), one synthetic "
           "degradation each per kind (strength 0.3–0.8), restored with `--only KIND`; real pairs: "
           "data/pairs, restored with the automatic plan. Error = |restored − truth| per pixel, mean over "
           "channels, 8-bit levels. Spearman ρ between a candidate and the error: pooled over all sampled "
           "pixels of the kind's photos, and per photo (mean / worst). `model` is the shipped map; `change` "
           "is the viewer's change map before this work.", ""]
    for level, title in (("stage", "Per stage (the stage's own map vs its own output's error)"),
                         ("composed", "Composed result (what is saved / shown)")):
        out += [f"## {title}", ""]
        for group in ("synthetic", "real"):
            keys = [k for k in report["results"] if k.startswith(f"{level}/{group}/")]
            if not keys:
                continue
            out += [f"### {group}", "", "| kind | photos | " + " | ".join(
                c for c in CANDIDATES) + " |", "|---|---|" + "---|" * len(CANDIDATES)]
            for k in sorted(keys):
                e = report["results"][k]
                cells = []
                for c in CANDIDATES:
                    if c in e:
                        v = e[c]
                        cells.append(f"{v['pooled']:.2f} ({v['per_photo_mean']:.2f} / {v['per_photo_worst']:.2f})")
                    else:
                        cells.append("–")
                out.append(f"| {k.split('/')[-1]} | {e['model']['photos']} | " + " | ".join(cells) + " |")
            out += ["", "Cells: pooled ρ (per-photo mean / worst).", ""]
    out += ["## Reliability of the shipped map (mean predicted → mean observed error, levels, by decile of the "
            "prediction)", ""]
    for k, e in sorted(report["results"].items()):
        curve = ", ".join(f"{p:.1f}→{o:.1f}" for p, o in e["reliability_model"])
        out.append(f"- `{k}`: {curve}")
    out += ["", "## Plan rule: soften or drop a stage whose uncertain fraction is high and whose gain is small", "",
            "PSNR change against the result as planned (dB; rounded to 8 bits). `frac`: fraction of the stage's "
            "pixels with expected error above 8 levels; `gain`: the drop of the stage's own severity; `x0.5` "
            "halves its strength, `x0` drops it.", "",
            "| variant | group | photos changed | mean ΔPSNR | worst ΔPSNR | best ΔPSNR |", "|---|---|---|---|---|---|"]
    rows = report["plan_rule"]
    variants = sorted({v for r in rows for v in r["variants"]})
    for v in variants:
        for group in ("synthetic", "real"):
            d = [r["variants"][v] - r["psnr"] for r in rows if r["group"].split(":")[0] == group]
            changed = [x for x in d if x != 0.0]
            if d:
                out.append(f"| {v} | {group} | {len(changed)} of {len(d)} | {np.mean(d):+.3f} | {min(d):+.3f} | "
                           f"{max(d):+.3f} |")
    c = report["cost"]
    out += ["", "## Cost", "",
            f"Restoring all photos took {c['restore_s']:.1f} s; the maps (every stage's and the composed "
            f"result's) {c['map_s']:.1f} s: {100 * c['map_s'] / max(c['restore_s'], 1e-9):.1f} % of the "
            "restoration time (no network run). The flip ensemble costs one more restoration (100 %), two "
            "experts one more run of the stage.", ""]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("phase", choices=("fit", "eval"))
    ap.add_argument("--train", type=int, default=16)
    ap.add_argument("--val", type=int, default=8)
    ap.add_argument("--pairs", type=int, default=6, help="pairs per real set")
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--no-extra", action="store_true", help="skip the flip-ensemble and two-expert candidates")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "uncertainty.json"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "uncertainty.md"))
    args = ap.parse_args()
    fit(args) if args.phase == "fit" else evaluate(args)


if __name__ == "__main__":
    main()
