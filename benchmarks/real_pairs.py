"""Low light, haze and rain on the validation pairs with ground truth: the input, a previous
release, every candidate expert alone and the default plan, mean and worst PSNR/SSIM and s/MP.

Data (validation only, never trained on): ``../shared/data/pairs/``
- ``lowlight_real_lol_train`` (19 real under-exposed photos, LOL; note: the LOL *training*
  split, which IAT-LOL-v1 was trained on, so its figures there are optimistic),
- ``haze_reside`` (10 RESIDE SOTS/ITS synthetic-haze pairs; 4 ground truths carry a 10-px
  border that the hazy image lacks, cropped away here),
- ``rain_synthetic`` (40 Rain100H/Rain100L/JORDER-E pairs).

Methods per set (``--methods``):
- ``input``: the degraded photo itself.
- ``previous``: the default plan of another checkout (``--previous DIR``, e.g. a ``git archive``
  of the release before this work), in a subprocess with its own imports.
- ``default``: :class:`engine.pipeline.job.Restorer` with the app's registry and analysis, what
  ``restora restore IN -o OUT`` computes.
- every expert of the registry for the set's kind, alone at full strength, as the app would run
  it in a one-stage plan (told the analysed severity and measurements; the generalist is told
  the set's kind at the analysed severity, at least 0.5).
Outputs are rounded to 8 bits, as a saved PNG is. Run:
``python benchmarks/real_pairs.py [--sets lowlight,haze,rain] [--limit N] [--previous DIR]
[--out benchmarks/results/real-pairs.md]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from _host import cpu_model, load_rgb as load, q8  # benchmarks/_host.py, beside this script

ROOT = Path(os.environ.get("RESTORA_CODE", Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(ROOT))

SHARED = Path(os.environ.get("RESTORA_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
PAIRS = SHARED / "data" / "pairs"
SETS = {"lowlight": "lowlight_real_lol_train", "haze": "haze_reside", "rain": "rain_synthetic"}


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu_model()}, {os.cpu_count()} logical cores shared with other jobs, load average {load:.1f} at start"


def pairs(kind: str, limit: Optional[int] = None) -> list[tuple[str, Path, Path]]:
    """``(name, degraded path, ground-truth path)``; a ground truth may differ in extension
    (SOTS outdoor: hazy .jpg, clean .png)."""
    folder = PAIRS / SETS[kind]
    if not (folder / "lq").is_dir():
        return []
    gts = {p.stem: p for p in (folder / "gt").iterdir()}
    items = [(p.name, p, gts[p.stem]) for p in sorted((folder / "lq").iterdir()) if p.stem in gts]
    if limit:
        items = items[:: max(1, len(items) // limit)][:limit]
    return items


def load_pair(lq_path: Path, gt_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The degraded photo and its ground truth, the latter centre-cropped to the former's size
    (SOTS indoor ground truths are 640×480 around a 620×460 hazy image)."""
    lq, gt = load(lq_path), load(gt_path)
    if gt.shape != lq.shape:
        dy, dx = (gt.shape[0] - lq.shape[0]) // 2, (gt.shape[1] - lq.shape[1]) // 2
        gt = gt[dy:dy + lq.shape[0], dx:dx + lq.shape[1]]
    return lq, gt


def metrics(out: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    from training.metrics import psnr, ssim
    return float(psnr(q8(out), gt)), float(ssim(q8(out), gt))


# --------------------------------------------------------------------------- methods
def default_restorer() -> Callable[[Path], tuple[np.ndarray, dict]]:
    """``restore(path) → (pixels, info)`` with the app's default plan."""
    from engine.experts.default import build_registry
    from engine.imageio import load_photo
    from engine.pipeline.job import Restorer, RestoreOptions

    restorer = Restorer(build_registry())

    def restore(path: Path) -> tuple[np.ndarray, dict]:
        photo = load_photo(path)
        restored, result = restorer.restore_photo(photo, RestoreOptions())
        stages = [f"{st['stage']}:{st['expert']}{' (dropped)' if st.get('dropped') else ''}"
                  for st in result.stages]
        return restored.pixels, {"stages": stages,
                                 "report": {k: round(v, 2) for k, v in result.report.severities().items()}}
    return restore


def candidate_experts(kind: str) -> list:
    """Every non-generative expert of the app's registry for ``kind``, plus the generalist."""
    from engine.experts.default import build_registry
    from engine.kinds import GENERALIST

    registry = build_registry()
    out = [e for e in registry.for_task(kind) if not e.info.generative]
    out += [e for e in registry.for_task(GENERALIST) if not e.info.generative]
    return out


def run_expert(kind: str, expert, image: np.ndarray) -> np.ndarray:
    """``expert`` alone as a one-stage plan would run it: told the analysed severity and
    measurements of ``kind`` (a generalist: told ``kind`` at that severity, at least 0.5)."""
    from engine.experts.base import ExpertContext
    from engine.kinds import GENERALIST
    from engine.pipeline.session import default_analyser

    report = default_analyser(image)
    a = report.kinds.get(kind)
    severity = float(a.severity) if a is not None else 1.0
    measurements = dict(a.measurements) if a is not None else {}
    if GENERALIST in expert.info.tasks:
        ctx = ExpertContext(severity=severity, strengths={kind: max(round(severity, 2), 0.5)})
    else:
        ctx = ExpertContext(severity=severity, measurements=measurements)
    return expert.run(image, ctx)


def evaluate(kind: str, items, methods: list[str], previous: Optional[Path],
             previous_rows: Optional[list[dict]] = None) -> dict[str, list[dict]]:
    """``{method: [{name, psnr, ssim, seconds, megapixels, ...}, ...]}``."""
    rows: dict[str, list[dict]] = {}
    data = {name: load_pair(lq, gt) for name, lq, gt in items}

    def record(method: str, name: str, out: np.ndarray, seconds: float, **extra) -> None:
        lq, gt = data[name]
        p, s = metrics(out, gt)
        rows.setdefault(method, []).append({"name": name, "psnr": p, "ssim": s, "seconds": seconds,
                                            "megapixels": lq.shape[0] * lq.shape[1] / 1e6, **extra})
        print(f"  {kind} {method} {name}: {p:.2f} dB {s:.3f} {extra.get('stages', '')}", file=sys.stderr, flush=True)

    if "input" in methods:
        for name, (lq, _) in data.items():
            record("input", name, lq, 0.0)
    if "previous" in methods and previous_rows:
        names = {name for name, _, _ in items}
        rows["previous"] = [r for r in previous_rows if r["name"] in names]
    elif "previous" in methods and previous is not None:
        for r in run_previous(items, previous):
            lq, gt = data[r["name"]]
            rows.setdefault("previous", []).append(r)
    if "default" in methods:
        restore = default_restorer()
        for name, lq_path, _ in items:
            t0 = time.perf_counter()
            out, info = restore(lq_path)
            record("default", name, out, time.perf_counter() - t0, **info)
    if "experts" in methods:
        for expert in candidate_experts(kind):
            for name, (lq, _) in data.items():
                t0 = time.perf_counter()
                out = run_expert(kind, expert, lq)
                record(expert.info.id, name, out, time.perf_counter() - t0)
    return rows


def run_previous(items, code: Path) -> list[dict]:
    """The default plan of the checkout at ``code``, in a subprocess (its own imports)."""
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"real_pairs_previous_{os.getpid()}.json"
    env = dict(os.environ, RESTORA_CODE=str(code), PYTHONPATH=str(code))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(out), "--files",
           *[f"{lq}::{gt}" for _, lq, gt in items]]
    subprocess.run(cmd, env=env, check=True)
    rows = json.loads(out.read_text())
    out.unlink(missing_ok=True)
    return rows


def worker(out: Path, files: list[str]) -> int:
    restore = default_restorer()
    rows = []
    for spec in files:
        lq_path, gt_path = (Path(p) for p in spec.split("::"))
        lq, gt = load_pair(lq_path, gt_path)
        t0 = time.perf_counter()
        pixels, info = restore(lq_path)
        seconds = time.perf_counter() - t0
        p, s = metrics(pixels, gt)
        rows.append({"name": lq_path.name, "psnr": p, "ssim": s, "seconds": seconds,
                     "megapixels": lq.shape[0] * lq.shape[1] / 1e6, **info})
        print(f"  previous {lq_path.name}: {p:.2f} dB {info['stages']}", file=sys.stderr, flush=True)
    out.write_text(json.dumps(rows))
    return 0


# --------------------------------------------------------------------------- report
def summary(rows: list[dict], base: dict[str, float]) -> dict[str, float]:
    p = np.array([r["psnr"] for r in rows])
    s = np.array([r["ssim"] for r in rows])
    gain = np.array([r["psnr"] - base[r["name"]] for r in rows])
    mp = sum(r["megapixels"] for r in rows)
    return {"psnr_mean": float(p.mean()), "psnr_worst": float(p.min()), "ssim_mean": float(s.mean()),
            "ssim_worst": float(s.min()), "gain_mean": float(gain.mean()), "gain_worst": float(gain.min()),
            "worse": int((gain < -0.05).sum()), "n": len(rows),
            "s_per_mp": float(sum(r["seconds"] for r in rows) / mp) if mp else float("nan")}


def table(kind: str, rows: dict[str, list[dict]]) -> list[str]:
    base = {r["name"]: r["psnr"] for r in rows["input"]}
    lines = [f"### {kind} — `{SETS[kind]}` ({len(base)} pairs)", "",
             "| method | PSNR mean | PSNR worst | SSIM mean | SSIM worst | gain mean | gain worst "
             "| worse than input | s/MP |",
             "|---|---|---|---|---|---|---|---|---|"]
    for method, rs in rows.items():
        m = summary(rs, base)
        lines.append(f"| {method} | {m['psnr_mean']:.2f} | {m['psnr_worst']:.2f} | {m['ssim_mean']:.3f} | "
                     f"{m['ssim_worst']:.3f} | {m['gain_mean']:+.2f} | {m['gain_worst']:+.2f} | "
                     f"{m['worse']}/{m['n']} | {m['s_per_mp']:.1f} |")
    if "default" in rows:
        lines += ["", "Default plan per photo (stages; severities the analysis read):", ""]
        for r in rows["default"]:
            lines.append(f"- {r['name']}: {r['psnr']:.2f} dB (input {base[r['name']]:.2f}); "
                         f"{', '.join(r['stages']) or 'no stage'}; "
                         f"{ {k: v for k, v in r['report'].items() if v >= 0.15} }")
    return lines + [""]


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="lowlight,haze,rain")
    ap.add_argument("--methods", default="input,previous,experts,default")
    ap.add_argument("--limit", type=int, default=None, help="at most N pairs per set (evenly spaced)")
    ap.add_argument("--previous", type=Path, default=None, help="checkout of the previous release")
    ap.add_argument("--previous-json", type=Path, default=None,
                    help="a --json file of an earlier run whose 'default' rows stand for the previous release")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--files", nargs="*", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.files or [])
    methods = args.methods.split(",")
    started, t0 = machine(), time.perf_counter()
    results = {}
    for kind in args.sets.split(","):
        items = pairs(kind, args.limit)
        if not items:
            print(f"{kind}: no pairs under {PAIRS / SETS[kind]}; skipped", file=sys.stderr)
            continue
        earlier = json.loads(args.previous_json.read_text()).get(kind, {}) if args.previous_json else {}
        results[kind] = evaluate(kind, items, methods, args.previous, earlier.get("default"))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    lines = ["# Low light, haze and rain on the validation pairs", "",
             f"Produced by `python {' '.join(['benchmarks/real_pairs.py'] + (argv or sys.argv[1:]))}`.",
             f"Machine: {started} (shared with other jobs, so s/MP is only indicative).", "",
             "PSNR in dB and SSIM of the 8-bit output against the ground truth; *gain* = method − input "
             "(dB); *worse than input*: pairs where the gain is below −0.05 dB. `previous` = the default "
             "plan of the release before this work; `default` = what `restora restore` does now; an "
             "expert id = that expert alone at full strength, told the analysed severity (the "
             "generalist: told the set's kind). IAT-LOL-v1 was trained on the LOL training split these "
             "low-light pairs come from: its low-light figures are optimistic.", ""]
    for kind, rows in results.items():
        lines += table(kind, rows)
    lines.append(f"Wall time: {(time.perf_counter() - t0) / 60:.1f} min.")
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
