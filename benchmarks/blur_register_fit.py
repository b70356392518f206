"""Keep the deblurred photo registered with its input, measured on TRAINING photos (issue 12).

The plug-and-play deblurrer took its kernel estimate's centre of mass as the deconvolution's origin,
but an estimate with spurious mass off to one side (a defocus disc or Gaussian with a spur) has its
centre of mass pulled towards the spur, and the output moves against the input by a pixel or more.
:func:`engine.experts.pnp_deblur.deconvolution_origin` now puts the origin at the kernel's smoothed
peak where its dense core is round. This script chose that and measures it.

Photos: the cases of ``blur_guard_fit.py`` (463 training photos of ``shared/data/clean``, central 256 px
crop, blur in linear light: camera shake, defocus disc or Gaussian, alone or with camera-realistic noise;
``training.realistic``). The true kernel of each case is re-made from its seed, so the reference the
output should sit on is known: the ground truth moved by the true kernel's centre of mass (0 for discs
and Gaussians; a shake kernel is centred on its bounding box, so its photo moves, as a real shaken one
does, and its output should stay with it).

Commands:

- ``bands``: a candidate that was NOT shipped: the stage output as it was, moved back onto its input by
  the shift the phase slope of their cross spectrum reads in a low band (:func:`register`; 0.03, 0.05,
  0.08 cycles/px or scaled by the kernel's radius), on the kept blur stages' saved outputs of
  ``blur_guard_fit.py run`` (the large-kernel rule of ``blur-keep-fit.md`` applied as it drops them).
- ``origins [--recipes R,...]``: the deblurrer re-run alone on each kept stage's saved input with each
  origin of :data:`ORIGINS` (the estimate made once per stage and reused): the fit.
- ``plan --origin before|shipped``: the default plan re-run on every case with a blur stage, with the
  centre of mass as the origin (before) or the shipped rule; rows in
  ``benchmarks/results/blur-register-fit/plan-{before,shipped}.jsonl`` (arrays in scratch).
- ``report``: the two plan runs side by side, per kernel family.

Measures, per stage: the residual shift of the output against the reference (px: the phase-slope
reading :func:`content_shift` in the 0.05 band, and the sub-pixel shift that best matches it by PSNR,
:func:`best_shift`), the stage's PSNR change unaligned and aligned (±4 whole px, 12 px border, as Levin
is scored), and whether it ends below its input.

Run: ``OMP_NUM_THREADS=1 python benchmarks/blur_register_fit.py origins --recipes blur`` (about 10 min);
``... plan --origin before``; ``... plan --origin shipped`` (about 15 min each); ``... report``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _host import SCRATCH, cpu_model  # noqa: E402
from blur_guard_fit import CASES, ROWS, aligned_psnr, blur_stage_row, centre_crop, degrade_case, load_rows  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "blur-register-fit"
REGISTER_CASES = SCRATCH / "tablefix" / "register-cases"
#: The candidate bands (cycles/px) ``bands`` compares; "radius" scales 0.2 / the estimate's RMS radius.
BANDS = (0.03, 0.05, 0.08, "radius")
#: The indices the shipped large-kernel rule (blur-keep-fit.md) drops among the kept stages of the rows.
KEEP_RULE_DROPS = (53, 72, 132, 172, 324, 348, 448, 456)


def content_shift(reference: np.ndarray, moved: np.ndarray, max_freq: float) -> tuple[float, float]:
    """The sub-pixel (dy, dx) in px by which ``moved``'s content sits from ``reference``'s (float32
    H x W x 3 in [0, 1], the same size): the least-squares slope of the phase of their cross spectrum
    (luminance, Hann-windowed, each less its mean) over the frequencies under ``max_freq`` cycles/px,
    each weighted by the square root of its magnitude. Unambiguous up to ``1 / (2 max_freq)`` px."""
    from engine.color import luminance

    a, b = luminance(reference), luminance(moved)
    win = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    fa, fb = (np.fft.fft2((x - x.mean()) * win) for x in (a, b))
    fy, fx = np.meshgrid(np.fft.fftfreq(a.shape[0]), np.fft.fftfreq(a.shape[1]), indexing="ij")
    use = (np.hypot(fy, fx) < max_freq) & (np.hypot(fy, fx) > 0)
    cross = np.conj(fa[use]) * fb[use]
    weight = np.sqrt(np.abs(cross))
    design = -2.0 * np.pi * np.stack([fy[use], fx[use]], axis=1) * weight[:, None]
    (dy, dx), *_ = np.linalg.lstsq(design, np.angle(cross) * weight, rcond=None)
    return float(dy), float(dx)


def shifted(image: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """``image`` (float32 H x W x C in [0, 1]) with its content moved by (dy, dx) px (Lanczos, mirrored
    borders), clipped to [0, 1]."""
    import cv2

    m = np.float32([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    out = cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), flags=cv2.INTER_LANCZOS4,
                         borderMode=cv2.BORDER_REFLECT_101)
    return np.clip(out.reshape(image.shape), 0.0, 1.0).astype(np.float32, copy=False)


def register(output: np.ndarray, image: np.ndarray, band: float) -> np.ndarray:
    """The candidate not shipped: ``output`` moved back by :func:`content_shift` (``image``, ``output``,
    ``band``), unless that reads more than 4 px (a wrapped phase)."""
    dy, dx = content_shift(image, output, band)
    return output if np.hypot(dy, dx) > 4.0 else shifted(output, -dy, -dx)


def true_kernel(index: int, blur: float) -> tuple[str, np.ndarray]:
    """The blur variant and kernel :func:`training.realistic.degrade_realistic_mix` drew for case ``index``."""
    from training.realistic import blur_kernel

    return blur_kernel(blur, np.random.default_rng([index, 0x12EA]))


def reference(clean: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Where a photo blurred by ``kernel`` (array-centred, as ``convolve_linear`` applies it) sits:
    ``clean`` moved by the kernel's centre of mass."""
    from engine.analysis.blur_kernel import kernel_centroid

    cy, cx = kernel_centroid(kernel)
    c = kernel.shape[0] // 2
    return shifted(clean, cy - c, cx - c)


def best_shift(out: np.ndarray, ref: np.ndarray, border: int = 12) -> float:
    """The length (px) of the sub-pixel shift of ``out`` that best matches ``ref`` by PSNR: whole px
    within ±4, then ±0.5 px in steps of 1/8."""
    from engine.color import luminance

    a, b = luminance(out)[..., None], luminance(ref)
    inner = (slice(border, -border), slice(border, -border))

    def err(dy: float, dx: float) -> float:
        return float(np.mean((shifted(a, dy, dx)[..., 0][inner] - b[inner]) ** 2))

    grid = [(err(dy, dx), dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)]
    _, y0, x0 = min(grid)
    fine = [(err(y0 + dy, x0 + dx), y0 + dy, x0 + dx) for dy in np.arange(-0.5, 0.51, 0.125)
            for dx in np.arange(-0.5, 0.51, 0.125)]
    _, y, x = min(fine)
    return float(np.hypot(y, x))


def stage_numbers(image: np.ndarray, out: np.ndarray, clean: np.ndarray, ref: np.ndarray) -> dict:
    """The measures of the module docstring for one stage (``image`` its input, ``out`` its output)."""
    from training.metrics import psnr

    dy, dx = content_shift(ref, out, 0.05)
    return {"gain": psnr(out, clean) - psnr(image, clean),
            "aligned": aligned_psnr(out, clean) - aligned_psnr(image, clean),
            "shift": float(np.hypot(dy, dx)), "best_shift": best_shift(out, ref)}


def kept_rows() -> list[dict]:
    """The rows of ``blur_guard_fit.py run`` whose blur stage the plan keeps today."""
    from blur_keep_fit import kept

    return kept(load_rows(ROWS))


def bands(cases: Path, out: Path) -> int:
    readings = {json.loads(x)["index"]: json.loads(x)
                for x in (ROOT / "benchmarks/results/blur-keep-fit/readings.jsonl").read_text().splitlines()}
    results: dict[str, list[dict]] = {}
    for r in kept_rows():
        variant, kernel = true_kernel(r["index"], r["blur"])
        with np.load(cases / f"{r['index']:04d}.npz") as z:
            image, delta, clean = z["image"], z["delta"], z["clean"]
        dropped = r["index"] in KEEP_RULE_DROPS
        stage_out = image if dropped else np.clip(image + delta, 0.0, 1.0)
        ref = reference(clean, kernel)
        outs = {"as deconvolved": stage_out}
        for band in BANDS:
            f = 0.2 / max(readings[r["index"]]["radius_px"], 1e-3) if band == "radius" else band
            f = float(np.clip(f, 0.02, 0.08))
            outs[f"registered, band {band}"] = stage_out if dropped else register(stage_out, image, f)
        for name, o in outs.items():
            results.setdefault(name, []).append({"index": r["index"], "variant": variant, "recipe": r["recipe"],
                                                 **stage_numbers(image, o, clean, ref)})
        print(r["index"], variant, {k: round(v[-1]["gain"], 2) for k, v in results.items()}, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bands.json").write_text(json.dumps(results))
    print(table(results, "kept blur stages (saved outputs of blur_guard_fit.py run; large-kernel rule applied)"))
    return 0


def _shipped_origin():
    from engine.experts.pnp_deblur import deconvolution_origin

    return deconvolution_origin


#: The engine's own choice, kept before any stand-in replaces it in the module.
SHIPPED_ORIGIN = _shipped_origin()
#: The deconvolution origins ``origins`` compares: name and the smoothing (px) of the peak, None for the
#: centre of mass, "shipped" for :func:`engine.experts.pnp_deblur.deconvolution_origin`.
ORIGINS = (("centre of mass (before)", None), ("smoothed peak, 1 px", 1.0), ("smoothed peak, 2 px", 2.0),
           ("smoothed peak, 3 px", 3.0), ("shipped: peak of a round core, else centre of mass", "shipped"))


def forced_origin(smooth):
    """A stand-in for :func:`engine.experts.pnp_deblur.deconvolution_origin` that always answers the
    centre of mass (``smooth`` None) or the peak smoothed by ``smooth`` px; the shipped one for "shipped"."""
    from engine.analysis.blur_kernel import kernel_peak

    if smooth == "shipped":
        return SHIPPED_ORIGIN
    if smooth is None:
        return lambda kernel, factor=1.0: (None, "centre of mass (forced)")
    return lambda kernel, factor=1.0: (kernel_peak(kernel, smooth * factor), f"smoothed peak {smooth} px (forced)")


def origins(cases: Path, out: Path, recipes: tuple[str, ...]) -> int:
    """The deblurrer re-run on the saved input of every kept blur stage with each origin of
    :data:`ORIGINS` (its kernel estimate made once per stage and reused; told the noise σ the plan tells
    it; stages the large-kernel rule drops count as unchanged). The expert runs alone (no earlier stage's
    confirmation from the photo as loaded), so this compares origins; ``plan`` gives the plan's numbers."""
    import engine.experts.pnp_deblur as P
    from blur_keep_fit import told_noise
    from engine.experts.base import ExpertContext
    from engine.experts.default import build_registry
    from training.common import limit_threads

    limit_threads(1)
    expert = next(e for e in build_registry().for_task("blur") if isinstance(e, P.PnPDeblur))
    estimate = P.PnPDeblur.estimate
    results: dict[str, list[dict]] = {}
    rows_path = out / f"origins-{'-'.join(r.replace(' ', '_').replace('+', '_') for r in recipes)}.jsonl"
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    with rows_path.open("w") as fh:
        for r in kept_rows():
            if r["recipe"] not in recipes:
                continue
            variant, kernel = true_kernel(r["index"], r["blur"])
            with np.load(cases / f"{r['index']:04d}.npz") as z:
                image, clean = z["image"], z["clean"]
            noise = told_noise(image)
            est = estimate(image, None, noise)
            P.PnPDeblur.estimate = staticmethod(lambda *a, est=est, **k: est)
            ref = reference(clean, kernel)
            row = {"index": r["index"], "variant": variant, "recipe": r["recipe"]}
            shipped = P.deconvolution_origin
            try:
                for name, smooth in ORIGINS:
                    P.deconvolution_origin = forced_origin(smooth)
                    o = expert.run(image, ExpertContext(noise_sigma=np.float32(noise)))
                    numbers = {"index": r["index"], "variant": variant, "recipe": r["recipe"],
                               **stage_numbers(image, o, clean, ref)}
                    results.setdefault(name, []).append(numbers)
                    row[name] = numbers
            finally:
                P.PnPDeblur.estimate = estimate
                P.deconvolution_origin = shipped
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            print(r["index"], variant, {k: round(v[-1]["gain"], 2) for k, v in results.items()}, flush=True)
    print(table(results, "kept blur stages, the deblurrer re-run alone on each stage's saved input"))
    return 0


def table(results: dict[str, list[dict]], what: str) -> str:
    lines = [f"{what}: per kernel family, the residual shift against the reference (phase slope / best PSNR "
             "shift, px, mean / worst), the stage's PSNR change unaligned and aligned (dB, mean / worst) and "
             "how many end below their input", "",
             "| method | family | stages | shift (phase) | shift (best PSNR) | unaligned | below | aligned | below |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, rows in results.items():
        for family in ("shake", "defocus", "gaussian", "all"):
            s = [x for x in rows if family == "all" or x["variant"] == family]
            if not s:
                continue
            g, a = np.array([x["gain"] for x in s]), np.array([x["aligned"] for x in s])
            sh, bs = np.array([x["shift"] for x in s]), np.array([x["best_shift"] for x in s])
            lines.append(f"| {name} | {family} | {len(s)} | {sh.mean():.2f} / {sh.max():.2f} | "
                         f"{bs.mean():.2f} / {bs.max():.2f} | {g.mean():+.2f} / {g.min():+.2f} | "
                         f"{int(np.sum(g < 0))} | "
                         f"{a.mean():+.2f} / {a.min():+.2f} | {int(np.sum(a < 0))} |")
    return "\n".join(lines) + "\n"


def plan(origin: str, out: Path, scratch: Path, limit: int) -> int:
    """Re-run the default plan on each case of the rows that had a blur stage, the deconvolution's origin
    the centre of mass (``origin`` "before") or the shipped rule ("shipped")."""
    import engine.experts.pnp_deblur as P
    from engine.experts.default import build_registry
    from engine.pipeline.job import Restorer
    from training.common import limit_threads
    from training.data import load_uint8, to_float

    from _host import shuffled_training_photos

    limit_threads(1)
    P.deconvolution_origin = forced_origin(None if origin == "before" else "shipped")
    name = origin
    rows_path = out / f"plan-{name}.jsonl"
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(x)["index"] for x in rows_path.read_text().splitlines()} if rows_path.exists() else set()
    photos = shuffled_training_photos(463, seed=1212)
    restorer = Restorer(build_registry())
    todo = [r for r in load_rows(ROWS) if r.get("blur_stage") and r["index"] not in done][:limit or None]
    with rows_path.open("a") as fh:
        for r in todo:
            path = photos[r["index"]]
            assert path.name == r["name"], (path, r["name"])
            clean = centre_crop(to_float(load_uint8(path)))
            deg, recipe = degrade_case(clean, r["index"])
            save = scratch / name / f"{r['index']:04d}.npz"
            row = {"index": r["index"], "name": path.name, **recipe,
                   **blur_stage_row(deg, clean, restorer, save)}
            row["variant"] = true_kernel(r["index"], recipe["blur"])[0]
            if row.get("blur_stage"):
                with np.load(save) as z:
                    image, delta = z["image"], z["delta"]
                stage_out = np.clip(image + delta, 0.0, 1.0)
                row.update(stage_numbers(image, stage_out, clean,
                                         reference(clean, true_kernel(r["index"], recipe["blur"])[1])))
            fh.write(json.dumps(row, default=float) + "\n")
            fh.flush()
            print(json.dumps(row, default=float)[:240], flush=True)
    return 0


def report(out: Path) -> int:
    results = {}
    for name in ("before", "shipped"):
        rows = [json.loads(x) for x in (out / f"plan-{name}.jsonl").read_text().splitlines()]
        results[f"origin: {name}"] = [r for r in rows if r.get("blur_stage") and not r["severity_drops"]
                                      and not r["old_guard_drops"]]
    text = (f"Machine: {cpu_model()}, {os.cpu_count()} logical cores, shared (PSNR is deterministic).\n\n"
            + table(results, "Default plan re-run on the training cases with a blur stage, the blur stages it keeps"))
    for recipe in ("blur", "blur+noise", "blur+mild noise"):
        text += "\n" + table({k: [r for r in v if r["recipe"] == recipe] for k, v in results.items()},
                              f"recipe {recipe} only")
    print(text)
    (out / "plan-report.md").write_text(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=("bands", "origins", "plan", "report"))
    p.add_argument("--recipes", default="blur,blur+noise,blur+mild noise", help="origins: the recipes run")
    p.add_argument("--origin", choices=("before", "shipped"), default="shipped")
    p.add_argument("--cases", type=Path, default=CASES)
    p.add_argument("--scratch", type=Path, default=REGISTER_CASES)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--limit", type=int, default=0, help="plan: at most this many cases (0: all)")
    a = p.parse_args(argv)
    if a.command == "bands":
        return bands(a.cases, a.out)
    if a.command == "origins":
        return origins(a.cases, a.out, tuple(a.recipes.split(",")))
    if a.command == "plan":
        return plan(a.origin, a.out, a.scratch, a.limit)
    return report(a.out)


if __name__ == "__main__":
    sys.exit(main())
