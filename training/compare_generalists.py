"""Compare two generalists side by side: the bundled release and a candidate.

``python -m training.compare_generalists --new training/state/generalist-v3/best.safetensors``
writes ``benchmarks/results/generalist-v3-vs-v2.md`` (+ ``.json``). Both models run exactly as
the app runs the bundled one (ONNX through ``NeuralExpert``, tiled, one thread; a safetensors
candidate is exported to ONNX first, into ``--work``).

1. **Synthetic evaluation table** (the cases of :mod:`training.evaluate`: each kind alone at 0.5
   and every evaluated mixture at 0.4 per kind, the original ``engine.degrade`` generators,
   ``--photos`` validation photos, seed 99): the generalist told the true strengths, and told
   what the analysis finds (``--only generalist``), mean PSNR per case.
2. **Real validation pairs** (``../shared/data/pairs``, validation only, never trained on) for
   the kinds the generalist runs on in the default plan: rain (it leads), haze, low light and
   noise (a candidate there): the generalist alone, told the set's kind at the analysed severity
   (at least 0.5), as ``benchmarks/real_pairs.py`` runs it. Mean and worst PSNR, and the worst
   per-pair change of the candidate against the release.

Outputs are rounded to 8 bits, as a saved PNG is. Results per (model file sha256, case) are
cached in ``--work`` so a re-run only computes the new model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks._host import SCRATCH
from engine.experts.base import ExpertContext
from engine.kinds import GENERALIST

from .common import limit_threads
from .data import DEFAULT_DATA, load_split, load_uint8, to_float
from .metrics import psnr

REPO = Path(__file__).resolve().parents[1]
OLD = REPO / "models" / "restora-generalist-v2.onnx"
PAIRS = DEFAULT_DATA.parent / "pairs"
#: Real sets per kind the generalist is told (validation only).
REAL_SETS: dict[str, tuple[str, str]] = {
    "rain": ("rain", "rain_synthetic"), "haze": ("haze", "haze_reside"),
    "lowlight": ("lowlight", "lowlight_real_lol_train"), "noise": ("noise", "noise_real_polyu_crops"),
    "noise_full": ("noise", "noise_real_polyu_fullsize"),
}


def q8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0.0, 1.0) * 255.0) / 255.0


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def as_onnx(path: Path, work: Path) -> Path:
    """``path`` itself if ONNX, else its export (clipped output, like the bundled file) in ``work``."""
    if path.suffix == ".onnx":
        return path
    import torch

    from engine.nets.generalist import load_generalist

    from .export import _ClampedGeneralist, export_onnx

    out = work / f"candidate-{sha(path)}.onnx"
    if not out.exists():
        model = load_generalist(path)
        work.mkdir(parents=True, exist_ok=True)
        export_onnx(_ClampedGeneralist(model), {"input": torch.rand(1, 3, 64, 64),
                                                "strengths": torch.rand(1, model.config.cond_dim)}, out, "output")
    return out


def load_pair(lq: Path, gt: Path) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    def load(p: Path) -> np.ndarray:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"), np.float32) / 255.0

    a, b = load(lq), load(gt)
    if a.shape != b.shape:
        dy, dx = (b.shape[0] - a.shape[0]) // 2, (b.shape[1] - a.shape[1]) // 2
        b = b[dy:dy + a.shape[0], dx:dx + a.shape[1]]
    return a, b


def real_items(folder: str, limit: int | None) -> list[tuple[str, Path, Path]]:
    base = PAIRS / folder
    if not (base / "lq").is_dir():
        return []
    gts = {p.stem: p for p in (base / "gt").iterdir()}
    items = [(p.name, p, gts[p.stem]) for p in sorted((base / "lq").iterdir()) if p.stem in gts]
    if limit:
        items = items[:: max(1, len(items) // limit)][:limit]
    return items


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", type=Path, default=OLD)
    p.add_argument("--new", type=Path, required=True)
    p.add_argument("--photos", type=int, default=4)
    p.add_argument("--sets", default="rain,haze,lowlight,noise,noise_full")
    p.add_argument("--limit", type=int, default=None, help="pairs per real set (every k-th)")
    p.add_argument("--no-synthetic", action="store_true")
    p.add_argument("--work", type=Path, default=SCRATCH / "generalist" / "compare")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "generalist-v3-vs-v2.md")
    args = p.parse_args(argv)
    limit_threads(1)
    sys.path.insert(0, str(REPO / "benchmarks"))
    from engine.pipeline.session import default_analyser

    from .evaluate import cases, default_analyser as eval_analyser, generalist_expert, run_pipeline

    args.work.mkdir(parents=True, exist_ok=True)
    models = {"old": args.old, "new": as_onnx(args.new, args.work)}
    experts = {k: generalist_expert(v) for k, v in models.items()}
    keys = {k: sha(v) for k, v in models.items()}
    cache_path = args.work / "cache.json"
    cache: dict = json.loads(cache_path.read_text()) if cache_path.exists() else {}

    def cached(key: str, fn, *fn_args):
        if key not in cache:
            cache[key] = fn(*fn_args)
            tmp = cache_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(cache))
            os.replace(tmp, cache_path)
        return cache[key]

    t0 = time.time()
    result: dict = {"models": {k: str(v) for k, v in models.items()}, "synthetic": [], "real": {}}
    if not args.no_synthetic:
        from engine.degrade import degrade_chain
        from engine.experts.base import ExpertRegistry
        from engine.experts.classical import classical_experts

        _, val = load_split()
        step = max(len(val) // max(args.photos, 1), 1)
        analyser = eval_analyser()
        registries = {k: ExpertRegistry(list(classical_experts()) + [e]) for k, e in experts.items()}
        for i, path in enumerate(val[::step][:args.photos]):
            clean = to_float(load_uint8(path))
            for j, (label, recipe) in enumerate(cases()):
                deg = degrade_chain(clean, recipe, seed=99 + 100 * i + j)
                row = {"photo": path.name, "case": label, "input": psnr(q8(deg), clean)}
                for k in models:
                    row[f"{k}_truth"] = cached(f"syn-truth/{keys[k]}/{path.name}/{label}", _told_truth,
                                               experts[k], deg, recipe, clean)
                    row[f"{k}_told"] = cached(f"syn-told/{keys[k]}/{path.name}/{label}", _told_analysis,
                                              registries[k], analyser, deg, clean, run_pipeline)
                result["synthetic"].append(row)
                print(f"{path.name} {label}: " + " ".join(f"{n} {v:.2f}" for n, v in row.items()
                                                         if isinstance(v, float)), flush=True)
    for set_name in [s for s in args.sets.split(",") if s]:
        kind, folder = REAL_SETS[set_name]
        rows = []
        for name, lq, gt in real_items(folder, args.limit):
            image, truth = load_pair(lq, gt)
            reports: list = []
            row = {"name": name, "input": psnr(image, truth)}
            for k in models:
                row[k] = cached(f"real/{keys[k]}/{folder}/{name}", _real, experts[k], kind, image, truth, reports,
                                default_analyser)
            rows.append(row)
            print(f"{set_name} {name}: input {row['input']:.2f} old {row['old']:.2f} new {row['new']:.2f}", flush=True)
        result["real"][set_name] = rows
    result["wall_min"] = (time.time() - t0) / 60
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    args.out.write_text(render(result, args))
    print(args.out.read_text())
    return 0


def _told_truth(expert, deg: np.ndarray, recipe, clean: np.ndarray) -> float:
    return psnr(q8(expert.run(deg, ExpertContext(strengths=dict(recipe)))), clean)


def _told_analysis(registry, analyser, deg: np.ndarray, clean: np.ndarray, run_pipeline) -> float:
    return psnr(q8(run_pipeline(deg, registry, analyser, True, only=[GENERALIST])), clean)


def _real(expert, kind: str, image: np.ndarray, truth: np.ndarray, reports: list, analyse) -> float:
    """The generalist told ``kind`` at the analysed severity (at least 0.5); ``reports`` caches the
    analysis of ``image`` between the two models."""
    if not reports:
        reports.append(analyse(image))
    a = reports[0].kinds.get(kind)
    sev = float(a.severity) if a is not None else 1.0
    ctx = ExpertContext(severity=sev, strengths={kind: max(round(sev, 2), 0.5)})
    return psnr(q8(expert.run(image, ctx)), truth)


def render(result: dict, args: argparse.Namespace) -> str:
    lines = [f"# Generalist: candidate `{Path(result['models']['new']).name}` vs release "
             f"`{Path(result['models']['old']).name}`", "",
             "Produced by `python -m training.compare_generalists` (one CPU thread on a shared, loaded 2-core "
             "machine; outputs rounded to 8 bits). PSNR in dB.", ""]
    syn = result["synthetic"]
    if syn:
        lines += ["## Synthetic evaluation table (original generators, validation photos)", "",
                  "| case | input | release told truth | candidate told truth | release told analysis | "
                  "candidate told analysis |", "|---|---|---|---|---|---|"]
        labels = list(dict.fromkeys(r["case"] for r in syn))
        for label in labels + ["**mean**"]:
            rs = syn if label == "**mean**" else [r for r in syn if r["case"] == label]
            m = {c: float(np.mean([r[c] for r in rs])) for c in ("input", "old_truth", "new_truth", "old_told",
                                                                   "new_told")}
            lines.append(f"| {label} | {m['input']:.2f} | {m['old_truth']:.2f} | {m['new_truth']:.2f} | "
                         f"{m['old_told']:.2f} | {m['new_told']:.2f} |")
        lines.append("")
    if result["real"]:
        lines += ["## Real validation pairs (generalist alone, told the set's kind at the analysed severity ≥ 0.5)",
                  "", "| set | pairs | input mean / worst | release mean / worst | candidate mean / worst | "
                  "candidate − release: mean / worst pair | pairs worse than input: release / candidate |",
                  "|---|---|---|---|---|---|---|"]
        for set_name, rows in result["real"].items():
            if not rows:
                continue
            inp = np.array([r["input"] for r in rows])
            old = np.array([r["old"] for r in rows])
            new = np.array([r["new"] for r in rows])
            d = new - old
            lines.append(f"| {set_name} | {len(rows)} | {inp.mean():.2f} / {inp.min():.2f} | {old.mean():.2f} / "
                         f"{old.min():.2f} | {new.mean():.2f} / {new.min():.2f} | {d.mean():+.2f} / {d.min():+.2f} | "
                         f"{int((old < inp - 0.005).sum())} / {int((new < inp - 0.005).sum())} |")
        lines.append("")
    lines.append(f"Wall time: {result['wall_min']:.1f} min.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
