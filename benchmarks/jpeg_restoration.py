"""JPEG restoration benchmark: gain over the decoded JPEG at qualities 10/20/30 (colour, 4:2:0,
Pillow) on held-aside clean photos, for the default plan, each JPEG expert, and the previous
release; the JPEG verdict on real JPEGs; and the false-positive rate of the jpeg kind on the clean
photos with the PSNR of the JPEG stage's output against its input there.

Run from the repository root (one run writes the whole results file):

    .venv/bin/python benchmarks/jpeg_restoration.py [--images 10] [--previous ccea5b3]
    .venv/bin/python benchmarks/jpeg_restoration.py --fit-sigma     # σ gain fit, training photos

Held-aside photos: the validation split of ``training.data`` (file-name hash), never trained on;
the σ fit uses training-split photos only. Everything runs with one CPU thread. The previous
release is run from ``git archive REV`` in a temporary folder, as its own code reads the same
files. Writes benchmarks/results/jpeg-restoration.md (or jpeg-sigma-fit.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from _host import cpu_model  # benchmarks/_host.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.analysis.jpeg_tables import JpegSource, with_file_evidence  # noqa: E402
from engine.analysis.report import DEFAULT_PRESENCE_THRESHOLD  # noqa: E402
from engine.experts.base import ExpertContext  # noqa: E402
from engine.experts.default import build_registry  # noqa: E402
from engine.imageio import load_photo  # noqa: E402
from engine.pipeline.job import RestoreOptions, Restorer  # noqa: E402
from engine.pipeline.plan import Plan, build_plan  # noqa: E402
from training.data import list_images, split  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
QUALITIES = (10, 20, 30)
#: The first validation JPEGs were looked at while choosing the priors; the benchmark skips them.
DEVELOPMENT_PHOTOS = 7
RESULTS = ROOT / "benchmarks" / "results"

PREVIOUS_HELPER = r"""
import sys, json, numpy as np, os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from engine.experts.default import build_registry
from engine.imageio import load_photo
from engine.pipeline.job import Restorer, RestoreOptions
restorer = Restorer(build_registry())
for path in json.loads(sys.argv[1]):
    photo = load_photo(path)
    out, result = restorer.restore_photo(photo, RestoreOptions())
    np.save(path + ".prev.npy", out.pixels.astype(np.float32))
    stages = [(s["stage"], s["expert"], s["dropped"]) for s in result.stages]
    print(json.dumps({"path": path, "stages": stages}), flush=True)
"""


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1).astype(np.float64) - b) ** 2))
    return 100.0 if mse == 0 else 10.0 * np.log10(1.0 / mse)


def machine() -> str:
    return (f"{cpu_model()}, {os.cpu_count()} logical cores (shared with other jobs), one thread used, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}, numpy {np.__version__}")


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` x ``size`` pixels (the whole photo when ``size`` is 0 or larger)."""
    h, w = image.shape[:2]
    if size <= 0 or (h <= size and w <= size):
        return image
    y, x = max(h - size, 0) // 2, max(w - size, 0) // 2
    return np.ascontiguousarray(image[y:y + size, x:x + size])


def jpeg_file(truth_u8: np.ndarray, quality: int, folder: Path, stem: str) -> Path:
    path = folder / f"{stem}_q{quality}.jpg"
    Image.fromarray(truth_u8).save(path, "JPEG", quality=quality, subsampling=2)
    return path


def jpeg_experts(registry, dncnn3: Path | None, scratch: Path) -> list:
    """The registry's JPEG experts, plus DnCNN-3 (a download with no stated licence, so not in the
    offline registry) from ``dncnn3`` when given: alone on the luma, and on the luma with FFDNet's
    chroma, both projected onto the file's tables."""
    experts = [e for e in registry.for_task("jpeg") if not e.info.generative]
    if dncnn3 is not None and dncnn3.is_file():
        import shutil

        from engine.experts.jpeg_restore import FFDNET_MODEL_ID, JpegQcpRestorer
        from engine.experts.published import LumaDnCNNExpert

        local = scratch / dncnn3.name  # the expert converts the .mat beside itself
        shutil.copyfile(dncnn3, local)
        net = LumaDnCNNExpert(local, model_id="dncnn3", name="DnCNN-3 (luma)")
        fallback = registry.get("classical.jpeg.dct_qcs")
        ffdnet = next((e for e in registry.all() if e.info.model_id == FFDNET_MODEL_ID), None)
        if ffdnet is not None:
            experts.append(JpegQcpRestorer(net, fallback, chroma_prior=ffdnet))
    return experts


def run_previous(rev: str, paths: list[Path]) -> dict[str, list]:
    """Restore ``paths`` with the default plan of the release at ``rev``; outputs land beside the
    inputs as ``<file>.prev.npy``. Returns {path: stages}."""
    with tempfile.TemporaryDirectory(prefix="restora-prev-") as tree:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "engine", "models", "training"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
        env = dict(os.environ, PYTHONPATH=tree, OMP_NUM_THREADS="1")
        proc = subprocess.run([sys.executable, "-c", PREVIOUS_HELPER, json.dumps([str(p) for p in paths])],
                              cwd=tree, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"previous release failed: {proc.stderr[-2000:]}")
        return {d["path"]: d["stages"] for d in map(json.loads, proc.stdout.splitlines()) if d}


def gains(args, registry, restorer, folder: Path) -> tuple[list[str], dict]:
    _, val = split(list_images(SHARED / "clean"))
    photos = [p for p in val if p.suffix.lower() == ".jpg"][DEVELOPMENT_PHOTOS: DEVELOPMENT_PHOTOS + args.images]
    experts = [] if args.default_only else jpeg_experts(registry, args.dncnn3, folder)
    cases = []
    for p in photos:
        truth = centre_crop(np.asarray(Image.open(p).convert("RGB")), args.crop)
        for q in QUALITIES:
            cases.append((p, q, truth, jpeg_file(truth, q, folder, p.stem)))
    prev = run_previous(args.previous, [c[3] for c in cases]) if args.previous else {}
    rows: dict[tuple[int, str], list[float]] = {}
    secs: dict[str, list[float]] = {}
    plans: dict[int, dict[str, int]] = {}

    def add(q: int, name: str, value: float) -> None:
        rows.setdefault((q, name), []).append(value)

    for p, q, truth_u8, path in cases:
        truth = truth_u8.astype(np.float32) / 255.0
        photo = load_photo(path)
        base = psnr(photo.pixels, truth)
        add(q, "input (decoded JPEG), PSNR dB", base)
        t0 = time.process_time()
        out, result = restorer.restore_photo(photo, RestoreOptions())
        secs.setdefault("default plan", []).append((time.process_time() - t0) / photo.megapixels)
        add(q, "default plan", psnr(out.pixels, truth) - base)
        ran = " → ".join(f"{s['stage']}:{s['expert']}" for s in result.stages if not s["dropped"]) or "(nothing)"
        plans.setdefault(q, {}).setdefault(ran, 0)
        plans[q][ran] += 1
        if prev:
            add(q, f"previous release ({args.previous})", psnr(np.load(str(path) + ".prev.npy"), truth) - base)
        for e in experts:
            ctx = ExpertContext(jpeg=JpegSource(photo.jpeg, photo.pixels))
            t0 = time.process_time()
            y = e.run(photo.pixels, ctx)
            secs.setdefault(e.info.id, []).append((time.process_time() - t0) / photo.megapixels)
            add(q, f"`{e.info.id}` with the file's tables", psnr(y, truth) - base)
            prior = getattr(e, "luma_prior", None)
            if prior is not None and "noise" in prior.info.tasks:  # ablation: one prior run, no projection
                from engine.experts.jpeg_restore import prior_sigma_255
                pctx = ExpertContext(noise_sigma=np.float32(prior_sigma_255(photo.jpeg) / 255.0))
                add(q, f"`{prior.info.id}` told the luma σ(q) alone (no chroma run, no projection)",
                    psnr(getattr(prior, "run_plain", prior.run)(photo.pixels, pctx), truth) - base)
        if args.default_only:
            print(f"{p.name} q{q}: base {base:.2f}, default {rows[(q, 'default plan')][-1]:+.2f}", flush=True)
            continue
        classical = registry.get("classical.jpeg.dct_qcs")
        y = classical.run(photo.pixels, ExpertContext())  # quality estimated from the pixels
        add(q, "`classical.jpeg.dct_qcs` without tables (PNG of the decoded JPEG)", psnr(y, truth) - base)
        print(f"{p.name} q{q}: base {base:.2f}, default {rows[(q, 'default plan')][-1]:+.2f}", flush=True)

    lines = [f"Held-aside photos: {len(photos)} JPEGs of the validation split of `shared/data/clean`, after the "
             f"{DEVELOPMENT_PHOTOS} looked at during development "
             f"({', '.join(p.name for p in photos)}), central {args.crop}x{args.crop} crops, each encoded by Pillow "
             f"at quality {'/'.join(map(str, QUALITIES))} with "
             "4:2:0 chroma and restored from the JPEG file (the loader reads its tables).", ""]
    names = sorted({n for (_, n) in rows}, key=lambda n: (not n.startswith("input"), not n.startswith("default"),
                                                          not n.startswith("previous"), n))
    lines.append("| method | " + " | ".join(f"q{q} mean" for q in QUALITIES) + " | "
                 + " | ".join(f"q{q} worst" for q in QUALITIES) + " |")
    lines.append("|---|" + "---|" * (2 * len(QUALITIES)))
    for n in names:
        means = [np.mean(rows[(q, n)]) for q in QUALITIES]
        worst = [np.min(rows[(q, n)]) for q in QUALITIES]
        fmt = "{:.2f}" if n.startswith("input") else "{:+.2f}"
        lines.append(f"| {n} | " + " | ".join(fmt.format(m) for m in means) + " | "
                     + " | ".join(fmt.format(w) for w in worst) + " |")
    lines += ["", "Gains are PSNR (RGB, dB) over the decoded JPEG; worst = the lowest gain over the photos.", "",
              "CPU seconds per megapixel (process time, one thread): "
              + ", ".join(f"{k} {np.mean(v):.1f}" for k, v in secs.items()), "",
              "Stages the default plan kept, by quality:", ""]
    for q in QUALITIES:
        for ran, n in sorted(plans[q].items(), key=lambda kv: -kv[1]):
            lines.append(f"- q{q}: {ran} ({n} photos)")
    summary = {q: {n: float(np.mean(rows[(q, n)])) for n in names} for q in QUALITIES}
    return lines, summary


def real_jpegs(registry, restorer) -> list[str]:
    """The JPEG verdict on the real JPEGs (no ground truth) and what the default plan's jpeg stage
    does to each: the session's jpeg stage alone (the other kinds are other benchmarks' subject)."""
    lines = ["| file | size | quality (tables) | subsampling | jpeg severity: pixels → file | jpeg stage | "
             "output vs input PSNR | blockiness before → after |", "|---|---|---|---|---|---|---|---|"]
    from engine.analysis.measurements import blockiness

    for path in sorted((SHARED / "real").glob("*.jpg")):
        photo = load_photo(path)
        session = restorer.session(photo.pixels, jpeg=photo.jpeg)
        pixels_only = session.analyser(photo.pixels).severity("jpeg")
        report = session.analyse()
        est = photo.jpeg.quality()
        plan = Plan(tuple(s for s in build_plan(report, registry).stages if s.name == "jpeg"))
        stage, change, blocks = "not planned", "∞ (untouched)", ""
        if plan.stages:
            result = session.run(plan)[0]
            out = session.compose(plan.strengths())
            stage = f"{result.expert_id}" + (f" (dropped: {result.reason})" if result.dropped else "")
            change = f"{psnr(out, photo.pixels):.1f} dB"
            blocks = f"{blockiness([photo.pixels])['blockiness']:.3f} → {blockiness([out])['blockiness']:.3f}"
        lines.append(f"| {path.name} | {photo.width}x{photo.height} | {est.quality}"
                     f"{'' if est.standard else ' (non-IJG tables)'} | {photo.jpeg.subsampling} | "
                     f"{pixels_only:.2f} → {report.severity('jpeg'):.2f} | {stage} | {change} | {blocks} |")
    return lines


def clean_false_positives(registry, restorer) -> list[str]:
    """The JPEG verdict the app reaches on every clean photo. ``analyse_default`` takes the jpeg
    kind from the hand-made analysis (``engine.analysis.learned``: jpeg → hand-made for presence
    and severity), i.e. the calibrated blockiness of :func:`engine.analysis.analyser.measure`'s
    full-resolution tiles; only that measurement is computed here (the rest of the analysis does
    not change the jpeg verdict), then the file's tables are applied as the session does. Photos
    flagged either way go through the real session with the jpeg stage of the default plan."""
    from engine.analysis.analyser import _as_rgb, full_res_tiles
    from engine.analysis.calibration import severity_from
    from engine.analysis.measurements import blockiness
    from engine.analysis.report import DegradationReport, KindAssessment
    from engine.kinds import KINDS

    photos = list_images(SHARED / "clean")
    flagged_pixels = flagged_file = touched = 0
    worst = 100.0
    for i, path in enumerate(photos):
        photo = load_photo(path)
        m = blockiness(full_res_tiles(_as_rgb(photo.pixels)))
        pixels_report = DegradationReport({k: KindAssessment(severity_from("jpeg", m) if k == "jpeg" else 0.0, 1.0,
                                                             m if k == "jpeg" else {}) for k in KINDS})
        report = with_file_evidence(pixels_report, photo.jpeg) if photo.jpeg is not None else pixels_report
        flagged_pixels += pixels_report.severity("jpeg") >= DEFAULT_PRESENCE_THRESHOLD
        flagged_file += report.severity("jpeg") >= DEFAULT_PRESENCE_THRESHOLD
        if max(pixels_report.severity("jpeg"), report.severity("jpeg")) >= DEFAULT_PRESENCE_THRESHOLD:
            session = restorer.session(photo.pixels, jpeg=photo.jpeg)
            plan = Plan(tuple(s for s in build_plan(session.analyse(), registry).stages if s.name == "jpeg"))
            if plan.stages:
                session.run(plan)
                value = psnr(session.compose(plan.strengths()), photo.pixels)
                touched += value < 100.0
                worst = min(worst, value)
        if i % 100 == 0:
            print(f"clean {i}/{len(photos)}: flagged by pixels {flagged_pixels}, with tables {flagged_file}",
                  flush=True)
    n = len(photos)
    return [f"{n} photos of `shared/data/clean` (497 JPEGs saved at quality 95, 4 PNGs). The app's JPEG verdict "
            "(the hand-made one, which `analyse_default` keeps for jpeg) is computed from the pixels, then from the "
            "file's tables as the session does; photos flagged either way are run through the session's "
            "jpeg stage.", "",
            "| | jpeg flagged (severity ≥ 0.15) | false-positive rate |", "|---|---|---|",
            f"| pixels only (previous release's verdict) | {flagged_pixels} | {flagged_pixels / n:.3f} |",
            f"| with the file's tables (this release) | {flagged_file} | {flagged_file / n:.3f} |", "",
            f"The JPEG stage of the default plan changed {touched} of {n} photos; lowest PSNR of its output "
            f"against its input: {'∞ (untouched)' if worst >= 100 else f'{worst:.1f} dB'}."]


def fit_sigma(args) -> list[str]:
    from engine.experts.classical.jpeg_qcp import project_upright
    from engine.experts.jpeg_restore import (CHROMA_SIGMA_GAIN, LUMA_SIGMA_GAIN, SIGMA_EXPONENT, luma_from,
                                             low_frequency_step)

    registry = build_registry()
    prior = next(e for e in registry.for_task("noise") if e.info.id.startswith("neural.ffdnet"))
    train, _ = split(list_images(SHARED / "clean"))
    photos = [p for p in train if p.suffix.lower() == ".jpg"][::60][: args.images]
    gains_ = (1.0, 1.3, 1.6, 2.0, 2.6, 3.5, 4.5)
    luma_gains, chroma_gains = gains_[:4], gains_[3:]
    rows: dict[tuple[int, float, float], list[float]] = {}
    steps: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        for p in photos:
            truth_u8 = np.asarray(Image.open(p).convert("RGB"))[:320, :320].copy()
            truth = truth_u8.astype(np.float32) / 255
            for q in (10, 20, 30, 50, 75):
                photo = load_photo(jpeg_file(truth_u8, q, Path(folder), p.stem))
                base = psnr(photo.pixels, truth)
                steps[q] = low_frequency_step(photo.jpeg)
                outs = {g: prior.run(photo.pixels, ExpertContext(
                    noise_sigma=np.float32(g * steps[q] ** SIGMA_EXPONENT / 255))) for g in gains_}
                for lg in luma_gains:
                    for cg in chroma_gains:
                        y = project_upright(luma_from(outs[lg], outs[cg]), photo.pixels, photo.jpeg)
                        rows.setdefault((q, lg, cg), []).append(psnr(y, truth) - base)
                print(p.name, q, flush=True)
    lines = [f"Training-split photos (top-left 320x320 crops): {', '.join(p.name for p in photos)}. "
             f"Prior `{prior.info.id}`: luma from the run told σ = luma gain · step^{SIGMA_EXPONENT}, chroma from "
             f"the run told chroma gain · step^{SIGMA_EXPONENT} (0..255 levels), then projected onto the file's "
             f"tables. Mean gain over the decoded JPEG (dB). Shipped: luma gain {LUMA_SIGMA_GAIN}, chroma gain "
             f"{CHROMA_SIGMA_GAIN}.", "",
             "| quality | low-freq step | "
             + " | ".join(f"Y {lg} / C {cg}" for lg in luma_gains for cg in chroma_gains) + " |",
             "|---|---|" + "---|" * (len(luma_gains) * len(chroma_gains))]
    for q in sorted(steps):
        lines.append(f"| {q} | {steps[q]:.1f} | " + " | ".join(
            f"{np.mean(rows[(q, lg, cg)]):+.3f}" for lg in luma_gains for cg in chroma_gains) + " |")
    best = {q: max(((lg, cg) for lg in luma_gains for cg in chroma_gains), key=lambda k: np.mean(rows[(q,) + k]))
            for q in steps}
    lines += ["", "Best per quality: " + ", ".join(f"q{q}: Y {b[0]} / C {b[1]}" for q, b in sorted(best.items())),
              "Mean over qualities 10/20/30: " + ", ".join(
                  f"Y {lg} / C {cg} {np.mean([np.mean(rows[(q, lg, cg)]) for q in (10, 20, 30)]):+.3f}"
                  for lg in luma_gains for cg in chroma_gains)]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--crop", type=int, default=256, help="central crop edge in pixels (0: whole photos)")
    ap.add_argument("--previous", default="ccea5b3", help="git revision of the previous release ('' to skip)")
    ap.add_argument("--skip-clean", action="store_true", help="skip the 501-photo false-positive run")
    ap.add_argument("--fit-sigma", action="store_true")
    ap.add_argument("--dncnn3", type=Path, default=ROOT.parent / "shared" / "weights" / "dncnn" / "DnCNN3.mat",
                    help="DnCNN-3's published .mat, to measure it as a candidate (skipped when absent)")
    ap.add_argument("--shared-data", type=Path, default=SHARED, help="the shared data folder (default ../shared/data)")
    ap.add_argument("--qualities", default="10,20,30", help="JPEG qualities to encode at")
    ap.add_argument("--default-only", action="store_true", help="measure the default plan only (no expert columns)")
    ap.add_argument("--out", type=Path, default=RESULTS / "jpeg-restoration.md", help="results file to write")
    args = ap.parse_args()
    globals()["SHARED"] = args.shared_data
    globals()["QUALITIES"] = tuple(int(q) for q in args.qualities.split(","))
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass
    command = "`.venv/bin/python benchmarks/jpeg_restoration.py " + " ".join(sys.argv[1:]) + "`"
    date = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
    header = [f"Command: {command}  ", f"Machine: {machine()}  ", f"Date: {date}", ""]
    if args.fit_sigma:
        text = ["# JPEG prior: noise level fit", ""] + header + fit_sigma(args)
        (RESULTS / "jpeg-sigma-fit.md").write_text("\n".join(text) + "\n")
        print("\n".join(text))
        return
    registry = build_registry()
    restorer = Restorer(registry)
    text = ["# JPEG restoration", ""] + header
    with tempfile.TemporaryDirectory(prefix="restora-jpeg-") as folder:
        lines, _ = gains(args, registry, restorer, Path(folder))
    text += ["## Gain over the decoded JPEG", ""] + lines
    if not args.default_only:
        text += ["", "## Real JPEGs (`shared/data/real`, no ground truth)", ""] + real_jpegs(registry, restorer)
    if not args.skip_clean:
        text += ["", "## Clean photos: false positives and untouched output", ""]
        text += clean_false_positives(registry, restorer)
    args.out.write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
