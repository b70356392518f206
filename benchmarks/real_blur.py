"""Real camera-shake blur: what the default `restora restore` and each deblur expert do to real
blurry photos, and how often the analysis calls a photo blurry that is not.

Data (validation only): ``../shared/data/pairs/blur_real_levin`` (16 pairs: 4 printed scenes…
here 2 scenes x 8 real hand-shake kernels, Levin et al. CVPR 2009, grey 255 x 255; ground truth =
the same print photographed without shake). The blurry photo sits a few pixels off the ground
truth (the shake trajectory is not centred), which no method can know, so PSNR/SSIM are given
both as they are and *aligned*: every output (the input too) shifted by the whole-pixel offset
(±8 px) that best matches the ground truth, compared on the interior (12 px border left out).
Outputs are rounded to 8 bits, as a saved PNG would be.

Methods (``--methods``, comma-separated):
- ``default``: :class:`engine.pipeline.job.Restorer` with the app's registry and analysis.
- ``previous``: the same in a subprocess on another checkout (``--previous DIR``, e.g. a
  ``git worktree`` of the commit before this work).
- ``wiener``: the classical PSF-bank Wiener expert (the previous default for blur) run alone.
- ``pnp``: the blind plug-and-play deblurrer (kernel estimate + HQS with FFDNet) run alone.

``--detect N``: the share of photos whose default plan has a blur stage, on real noisy photos
(``noise_real_polyu_crops``), every N-th clean photo, the same clean photos given a synthetic
shallow depth of field (a sharp centre ellipse, the rest defocused by a disc of 6 px radius),
and the real blurry photos (``blur_real_levin`` and ``shared/data/real/blurry_*``).

``--pictures DIR``: before/after JPEGs of ``shared/data/real/blurry_*`` through the default plan.

Run: ``.venv/bin/python benchmarks/real_blur.py [--methods default,wiener,pnp,previous]
[--previous DIR] [--detect 10] [--pictures docs/images] [--out benchmarks/results/real-blur.md]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _host import cpu_model, load_rgb as load, q8  # benchmarks/_host.py, beside this script

ROOT = Path(os.environ.get("RESTORA_CODE", Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(ROOT))

SHARED = Path(os.environ.get("RESTORA_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
PAIRS = SHARED / "data" / "pairs"
SET = "blur_real_levin"
#: Largest whole-pixel offset searched when aligning an output with its ground truth.
MAX_SHIFT = 8
#: Border left out of the aligned comparison.
BORDER = 12


def machine() -> str:
    model = cpu_model()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model}, {os.cpu_count()} logical cores, load average {load:.1f} at start (shared, loaded machine)"


def pairs(limit: int | None = None) -> list[tuple[str, Path, Path]]:
    folder = PAIRS / SET
    names = sorted(p.name for p in (folder / "lq").iterdir())[:limit]
    return [(n, folder / "lq" / n, folder / "gt" / n) for n in names]


def metrics(out: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """PSNR/SSIM as they are and after the best whole-pixel alignment (see the module docs)."""
    from training.metrics import psnr, ssim
    out = q8(out)
    b = BORDER
    best = max(((psnr(np.roll(out, (dy, dx), (0, 1))[b:-b, b:-b], gt[b:-b, b:-b]), dy, dx)
                for dy in range(-MAX_SHIFT, MAX_SHIFT + 1) for dx in range(-MAX_SHIFT, MAX_SHIFT + 1)))
    shifted = np.roll(out, best[1:], (0, 1))[b:-b, b:-b]
    return {"psnr": psnr(out, gt), "ssim": ssim(out, gt), "psnr_aligned": best[0],
            "ssim_aligned": ssim(shifted, gt[b:-b, b:-b]), "shift": [best[1], best[2]]}


# --------------------------------------------------------------------------- methods
#: Called with the rows so far after every pair (``main`` saves the partial results there).
PARTIAL = [lambda rows: None]


def run_default(items: list[tuple[str, Path, Path]]) -> list[dict]:
    from engine.experts.default import build_registry
    from engine.imageio import load_photo
    from engine.pipeline.job import Restorer, RestoreOptions

    restorer = Restorer(build_registry())
    rows = []
    for name, lq_path, gt_path in items:
        photo = load_photo(lq_path)
        t0, c0 = time.perf_counter(), time.process_time()
        restored, result = restorer.restore_photo(photo, RestoreOptions())
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        row = {"name": name, **metrics(restored.pixels, load(gt_path)), "seconds": seconds, "cpu_seconds": cpu,
               "megapixels": photo.pixels.shape[0] * photo.pixels.shape[1] / 1e6,
               "report": result.report.severities(),
               "stages": [f"{st['stage']}{'(dropped)' if st.get('dropped') else ''}" for st in result.stages],
               "reasons": [st.get("reason", "") for st in result.stages if st["stage"] == "blur"]}
        rows.append(row)
        PARTIAL[0](rows)
        print(f"  {name}: {row['psnr']:.2f} / aligned {row['psnr_aligned']:.2f} dB, {row['stages']} "
              f"{row['reasons']}", file=sys.stderr, flush=True)
    return rows


def run_previous(items: list[tuple[str, Path, Path]], code: Path) -> list[dict]:
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"real_blur_previous_{os.getpid()}.json"
    env = dict(os.environ, RESTORA_CODE=str(code), PYTHONPATH=str(code), RESTORA_SHARED=str(SHARED))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(out), "--files",
           *[f"{lq}::{gt}" for _, lq, gt in items]]
    subprocess.run(cmd, env=env, check=True)
    return json.loads(out.read_text())


def run_expert(items: list[tuple[str, Path, Path]], expert_id: str) -> list[dict]:
    """One expert alone, told the noise σ the analysis measured (as the session tells it)."""
    from engine.experts.base import ExpertContext
    from engine.experts.default import build_registry
    from engine.pipeline.session import default_analyser

    registry = build_registry()
    expert = registry.get(expert_id)
    rows = []
    for name, lq_path, gt_path in items:
        lq = load(lq_path)
        sigma = default_analyser(lq).kinds["noise"].measurements.get("sigma_255", 1.0) / 255.0
        ctx = ExpertContext(noise_sigma=np.float32(sigma))
        t0, c0 = time.perf_counter(), time.process_time()
        out = expert.run(lq, ctx)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append({"name": name, **metrics(out, load(gt_path)), "seconds": seconds, "cpu_seconds": cpu,
                     "megapixels": lq.shape[0] * lq.shape[1] / 1e6, "notes": list(ctx.notes)})
        PARTIAL[0](rows)
        print(f"  {expert_id} {name}: {rows[-1]['psnr']:.2f} / aligned {rows[-1]['psnr_aligned']:.2f} dB "
              f"{ctx.notes}", file=sys.stderr, flush=True)
    return rows


# --------------------------------------------------------------------------- detection
def shallow_dof(image: np.ndarray, radius: float = 6.0) -> np.ndarray:
    """``image`` with a sharp centre ellipse (half the width and height) and the rest defocused
    by a disc of ``radius`` px, feathered over 15 % of the ellipse: a portrait-style photo."""
    import cv2

    from engine.experts.classical.deconvolution import disk_psf
    blurred = cv2.filter2D(image, -1, disk_psf(radius), borderType=cv2.BORDER_REFLECT)
    h, w = image.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    r = np.sqrt(((yy - h / 2) / (h / 4)) ** 2 + ((xx - w / 2) / (w / 4)) ** 2)
    sharp = np.clip((1.15 - r) / 0.3, 0.0, 1.0)[..., None].astype(np.float32)
    return sharp * image + (1.0 - sharp) * blurred


def run_detection(step: int) -> tuple[list[str], dict]:
    from engine.experts.default import build_registry
    from engine.pipeline.plan import build_plan
    from engine.pipeline.session import default_analyser

    registry = build_registry()

    def flagged(image: np.ndarray) -> tuple[bool, float]:
        report = default_analyser(image)
        return "blur" in build_plan(report, registry).names(), report.severity("blur")

    clean = sorted((SHARED / "data" / "clean").iterdir())[::step]
    groups = {
        "real noisy photos (noise_real_polyu_crops)":
            [load(p) for p in sorted((PAIRS / "noise_real_polyu_crops" / "lq").iterdir())],
        f"clean photos (every {step}-th of shared/data/clean)": [load(p) for p in clean],
        "the same clean photos, synthetic shallow depth of field": [shallow_dof(load(p)) for p in clean],
        "real shake, blur_real_levin (should be flagged)": [load(lq) for _, lq, _ in pairs()],
        "real shake, shared/data/real/blurry_* (should be flagged)":
            [load(p) for p in sorted((SHARED / "data" / "real").glob("blurry_*"))],
    }
    lines = ["| photos | flagged blurry | blur severity median (max) |", "|---|---|---|"]
    data = {}
    for label, images in groups.items():
        res = [flagged(im) for im in images]
        hits = sum(r[0] for r in res)
        sev = np.array([r[1] for r in res])
        data[label] = {"flagged": hits, "n": len(res), "severities": sev.tolist()}
        lines.append(f"| {label} | {hits / max(len(res), 1):.0%} ({hits}/{len(res)}) | "
                     f"{np.median(sev):.2f} ({sev.max():.2f}) |")
        print(lines[-1], file=sys.stderr, flush=True)
    return lines, data


# --------------------------------------------------------------------------- pictures
def make_pictures(folder: Path) -> list[str]:
    """Before | after JPEGs (longer side ≤ 1400 px, q85) of the real blurry photos, plus a 2x crop."""
    from PIL import Image

    from engine.experts.default import build_registry
    from engine.imageio import load_photo
    from engine.pipeline.job import Restorer, RestoreOptions

    folder.mkdir(parents=True, exist_ok=True)
    restorer = Restorer(build_registry())
    lines = []
    for path in sorted((SHARED / "data" / "real").glob("blurry_*")):
        photo = load_photo(path)
        restored, result = restorer.restore_photo(photo, RestoreOptions())
        before, after = photo.pixels[..., :3], restored.pixels[..., :3]
        gap = np.ones((before.shape[0], 8, 3), np.float32)
        pair = np.concatenate([before, gap, after], axis=1)
        img = Image.fromarray((q8(pair) * 255).astype(np.uint8))
        scale = min(1.0, 1400 / max(img.size))
        if scale < 1.0:
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
        stem = path.stem
        img.save(folder / f"deblur-{stem}.jpg", quality=85)
        h, w = before.shape[:2]
        c = min(h, w) // 4
        crop = [x[h // 2 - c // 2:h // 2 + c // 2, w // 2 - c // 2:w // 2 + c // 2] for x in (before, after)]
        crop_pair = np.concatenate([crop[0], np.ones((crop[0].shape[0], 4, 3), np.float32), crop[1]], axis=1)
        cimg = Image.fromarray((q8(crop_pair) * 255).astype(np.uint8))
        cimg = cimg.resize((cimg.width * 2, cimg.height * 2), Image.NEAREST)
        cimg.save(folder / f"deblur-{stem}-crop.jpg", quality=85)
        stages = "; ".join(f"{st['stage']} {'dropped' if st.get('dropped') else 'kept'}"
                           + (f" ({st['reason']})" if st.get("reason") else "") for st in result.stages)
        lines.append(f"- `{path.name}`: {stages or 'no stage (nothing found)'} → `docs/images/deblur-{stem}.jpg`")
        print(lines[-1], file=sys.stderr, flush=True)
    return lines


# --------------------------------------------------------------------------- report
def summarise(label: str, rows: list[dict], inputs: dict[str, dict]) -> str:
    def gains(key: str) -> np.ndarray:
        return np.array([r[key] - inputs[r["name"]][key] for r in rows])

    gp, gpa, gsa = gains("psnr"), gains("psnr_aligned"), gains("ssim_aligned")
    mp = max(sum(r["megapixels"] for r in rows), 1e-9)
    spmp = sum(r["seconds"] for r in rows) / mp
    cpu = (f"{sum(r['cpu_seconds'] for r in rows) / mp:.1f}" if all("cpu_seconds" in r for r in rows) else "–")
    return (f"| {label} | {np.mean([r['psnr_aligned'] for r in rows]):.2f} | {gpa.mean():+.2f} | {gpa.min():+.2f} | "
            f"{gsa.mean():+.4f} | {gsa.min():+.4f} | {int((gpa < -0.005).sum())} | {gp.mean():+.2f} | "
            f"{gp.min():+.2f} | {spmp:.1f} | {cpu} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="default,wiener,pnp")
    ap.add_argument("--previous", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--detect", type=int, default=0)
    ap.add_argument("--pictures", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--pairs", default=None, help="only pairs whose name contains one of these (comma-separated)")
    ap.add_argument("--summarise", type=Path, nargs="*", default=None,
                    help="write the report from these --json files (partial runs too) instead of running")
    ap.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--files", nargs="*", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        items = [(Path(f.split("::")[0]).name, Path(f.split("::")[0]), Path(f.split("::")[1])) for f in args.files]
        args.worker.write_text(json.dumps(run_default(items), default=float))
        return 0
    if not (PAIRS / SET).is_dir():
        print(f"no {PAIRS / SET}; nothing to measure", file=sys.stderr)
        return 1
    items = pairs(args.limit)
    if args.pairs:
        items = [it for it in items if any(p in it[0] for p in args.pairs.split(","))]
    header = machine()
    inputs = {n: metrics(load(lq), load(gt)) for n, lq, gt in items}
    results: dict = {"machine": header, "inputs": inputs}
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.summarise is not None:
        results = {"machine": "", "inputs": inputs}
        for f in args.summarise:
            part = json.loads(f.read_text())
            results["machine"] = results["machine"] or part.get("machine", "")
            for m in methods:
                results.setdefault(m, []).extend(part.get(m, []))
            if "detection" in part:
                results["detection"] = part["detection"]
        header = results["machine"]
        done = set.intersection(*[{r["name"] for r in results.get(m, [])} for m in methods]) if methods else set()
        items = [it for it in items if it[0] in done]
        for m in methods:
            results[m] = [r for r in results[m] if r["name"] in done]

    def save(method: str, rows: list[dict]) -> None:
        if args.json:
            results[method] = rows
            args.json.write_text(json.dumps(results, indent=1, default=float))
    lines = [f"# Real camera-shake blur: {SET} ({len(items)} of 16 pairs)", "",
             f"Machine: {header}. Command: `python benchmarks/real_blur.py --methods {args.methods}"
             + (f" --detect {args.detect}" if args.detect else "") + "`.", "",
             "Aligned = each output (and the input) shifted by the whole-pixel offset (±8 px) that best matches "
             "the ground truth, 12 px border left out; the blurry photos sit 1–5 px off their ground truth. "
             "Gains are over the blurry input, outputs rounded to 8 bits.", "",
             "| method | mean PSNR (aligned) | mean gain | worst gain | mean SSIM gain | worst SSIM gain | "
             "pairs worse | mean gain, not aligned | worst, not aligned | s/MP (wall) | CPU s/MP |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    in_rows = [{"name": n, **inputs[n], "seconds": 0.0, "cpu_seconds": 0.0, "megapixels": 1.0} for n, _, _ in items]
    lines.append(summarise("blurry input", in_rows, inputs))
    labels = {"default": "default plan (this checkout)",
              "previous": f"default plan, previous release ({args.previous})",
              "wiener": "classical.deblur.wiener alone (previous blur expert)",
              "pnp": "PnP deblur alone (kernel estimate + HQS with FFDNet)"}
    for method in methods:
        print(f"{method} …", file=sys.stderr, flush=True)
        PARTIAL[0] = lambda rows, method=method: save(method, rows)
        if args.summarise is not None:
            rows = results.get(method, [])
        elif method == "default":
            rows = run_default(items)
        elif method == "previous":
            if args.previous is None:
                continue
            rows = run_previous(items, args.previous)
        elif method == "wiener":
            rows = run_expert(items, "classical.deblur.wiener")
        elif method == "pnp":
            from engine.experts.default import build_registry
            pnp = [e.info.id for e in build_registry().for_task("blur") if e.info.id.startswith("deblur.pnp.")]
            if not pnp:
                lines.append("| PnP deblur | – | – | – | – | – | – | – | – | – | – | (FFDNet not installed) |")
                continue
            rows = run_expert(items, pnp[0])
        else:
            raise SystemExit(f"unknown method {method!r}")
        results[method] = rows
        lines.append(summarise(labels[method], rows, inputs))
    for method in ("default", "pnp"):
        if method in results:
            lines += ["", f"Per pair ({labels[method]}): aligned PSNR input → output, the gain not aligned, the "
                      "offset (dy, dx px) that best aligns the input and the output with the ground truth, and "
                      "what it did", "",
                      "| pair | input | output | gain | gain, not aligned | offset input → output | stages / notes |",
                      "|---|---|---|---|---|---|---|"]
            for r in results[method]:
                what = ((" ".join(r["stages"]) + " " + " ".join(r["reasons"])) if "stages" in r
                        else "; ".join(r["notes"]))
                i = inputs[r["name"]]
                lines.append(f"| {r['name']} | {i['psnr_aligned']:.2f} | {r['psnr_aligned']:.2f} | "
                             f"{r['psnr_aligned'] - i['psnr_aligned']:+.2f} | {r['psnr'] - i['psnr']:+.2f} | "
                             f"{tuple(i['shift'])} → {tuple(r['shift'])} | {what.strip()} |")
    if args.detect:
        det_lines, results["detection"] = run_detection(args.detect)
    if results.get("detection"):
        det_lines = ["| photos | flagged blurry | blur severity median (max) |", "|---|---|---|"]
        for label, d in results["detection"].items():
            sev = np.array(d["severities"])
            det_lines.append(f"| {label} | {d['flagged'] / max(d['n'], 1):.0%} ({d['flagged']}/{d['n']}) | "
                             f"{np.median(sev):.2f} ({sev.max():.2f}) |")
        lines += ["", "## Which photos the default plan calls blurry", ""] + det_lines
    if args.pictures:
        lines += ["", "## Before / after pictures (default plan)", ""] + make_pictures(args.pictures)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
