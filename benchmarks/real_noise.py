"""Real camera noise: what the default `restora restore` does to real noisy photos, side by side
with a denoiser told the best uniform σ (oracle), CBM3D told an estimated σ, and a previous release.

Data: ``../shared/data/pairs/noise_real_polyu_crops`` (60 real noisy / ground-truth pairs, DSLR,
ISO 1600–12800; ground truth = the mean of many frames) and optionally ``.._fullsize`` (5 pairs),
validation only. For every pair and method: PSNR and SSIM of the output against the ground
truth, minus those of the noisy input (the gain), the kinds the analysis found and the σ it
measured, and seconds per megapixel. Outputs are rounded to 8 bits, as a saved PNG would be.

Methods (``--methods``, comma-separated):
- ``analysis``: the default analysis alone, as the session sees each file (EXIF, JPEG quality), on
  the noisy input and on its ground truth: noise detection rate (and false alarms on the ground
  truths) and the σ told to the denoiser.
- ``default``: :class:`engine.pipeline.job.Restorer` with the app's registry and analysis: what
  ``restora restore IN -o OUT`` computes.
- ``previous``: the same, run in a subprocess on another checkout (``--previous DIR``, e.g. a
  ``git archive ccea5b3`` of the release before this work).
- ``ffdnet_oracle``: FFDNet as published (one full-resolution run, ``chroma_pass=False``) told
  one uniform σ for the whole set, the one with the best mean PSNR over the grid ``--sigmas``
  (and per photo its own best σ, to compare with the estimated one).
- ``ffdnet_chroma_only_oracle``: the registry's FFDNet expert (its half-resolution chroma pass,
  told it restores a JPEG file's decoding) over the same grid, uniform and per-photo best σ;
  ``ffdnet_chroma_oracle``: the same after pixel-shuffle down-sampling (PD; measured, not shipped).
- ``one_run``: whether one FFDNet run can serve a photo that gets both a JPEG and a noise stage:
  the file-aware JPEG stage followed by the noise expert, against the noise expert alone and the
  noise expert followed by the projection onto the file's quantisation tables, all at the
  ``ffdnet_chroma_oracle``'s uniform σ (needs that method first).
- ``cbm3d``: CBM3D (the ``bm3d`` package, benchmark only) told the σ the analysis estimated
  (on every ``--cbm3d-every``-th pair: it takes minutes per pair on this CPU).

Run: ``.venv/bin/python benchmarks/real_noise.py [--set crops|fullsize] [--limit N]
[--methods default,previous,ffdnet_oracle,cbm3d] [--previous /tmp/restora-prev]
[--out benchmarks/results/real-noise.md]``.
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

from _host import cpu_model, load_rgb, q8  # benchmarks/_host.py, beside this script

ROOT = Path(os.environ.get("RESTORA_CODE", Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(ROOT))

#: ``../shared`` next to the repository, or ``$RESTORA_SHARED`` (e.g. in a git worktree).
SHARED = Path(os.environ.get("RESTORA_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
PAIRS = SHARED / "data" / "pairs"
SETS = {"crops": "noise_real_polyu_crops", "fullsize": "noise_real_polyu_fullsize"}


def machine() -> str:
    model = cpu_model()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model}, {os.cpu_count()} logical cores, load average {load:.1f} at start"


#: Centre crop (pixels per side, 0 = whole photo) applied to every loaded photo (``--crop``).
CROP = 0


def centre(a: np.ndarray, side: int = 0) -> np.ndarray:
    """The centre ``side`` x ``side`` of ``a`` (or ``CROP``), starting on the 8-pixel JPEG grid."""
    side = side or CROP
    if not side or min(a.shape[:2]) <= side:
        return a
    y, x = (a.shape[0] - side) // 2 // 8 * 8, (a.shape[1] - side) // 2 // 8 * 8
    return a[y:y + side, x:x + side]


def grid_crop(a: np.ndarray, side: int) -> np.ndarray:
    """A contiguous copy of the centre ``side`` x ``side`` of ``a``, starting on the 8-pixel JPEG
    grid; a side of ``a`` not longer than ``side`` is kept whole from 0 (unlike :func:`centre`,
    which returns a photo smaller than the crop as it is, on both sides)."""
    y, x = max(0, (a.shape[0] - side) // 2 // 8 * 8), max(0, (a.shape[1] - side) // 2 // 8 * 8)
    return np.ascontiguousarray(a[y:y + side, x:x + side])


def load(path: Path) -> np.ndarray:
    return centre(load_rgb(path))


def load_cropped_photo(path: Path):
    """``engine.imageio.load_photo`` with its pixels centre-cropped on the 8-pixel grid; EXIF and
    the file's quantisation tables are kept."""
    import dataclasses

    from engine.imageio import load_photo
    photo = load_photo(path)
    if not CROP:
        return photo
    return dataclasses.replace(photo, pixels=np.ascontiguousarray(centre(photo.pixels)))


def pairs(set_name: str, limit: int | None) -> list[tuple[str, Path, Path]]:
    folder = PAIRS / SETS[set_name]
    names = sorted(p.name for p in (folder / "lq").iterdir())
    if limit:
        names = names[:: max(1, len(names) // limit)][:limit]
    return [(n, folder / "lq" / n, folder / "gt" / n) for n in names]


def metrics(out: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    from training.metrics import psnr, ssim
    return psnr(q8(out), gt), ssim(q8(out), gt)


# --------------------------------------------------------------------------- the app's plan
def run_default(items: list[tuple[str, Path, Path]]) -> list[dict]:
    """Restore every input with the app's default plan; per input its metrics and report."""
    from engine.experts.default import build_registry
    from engine.pipeline.job import Restorer, RestoreOptions

    restorer = Restorer(build_registry())
    rows = []
    for name, lq_path, gt_path in items:
        photo = load_cropped_photo(lq_path)
        t0 = time.perf_counter()
        restored, result = restorer.restore_photo(photo, RestoreOptions())
        seconds = time.perf_counter() - t0
        gt = load(gt_path)
        p, s = metrics(restored.pixels, gt)
        noise = result.report.kinds["noise"].measurements
        rows.append({"name": name, "psnr": p, "ssim": s, "seconds": seconds,
                     "megapixels": photo.pixels.shape[0] * photo.pixels.shape[1] / 1e6,
                     "report": result.report.severities(),
                     "sigma_255": float(noise.get("sigma_told_255", noise.get("sigma_255", float("nan")))),
                     "noise_measurements": {k: float(v) for k, v in noise.items()
                                            if k in ("nlf_fine_255", "nlf_coarse_255", "iso_prior_255", "exif_present",
                                                     "learned_probability", "noise_index_255", "still_chroma_255",
                                                     "still_threshold_255", "still_chroma_present")},
                     "stages": [f"{st['stage']}{'(dropped)' if st.get('dropped') else ''}" for st in result.stages]})
        print(f"  {name}: {p:.2f} dB, {[k for k, v in rows[-1]['report'].items() if v >= 0.15]}, "
              f"{rows[-1]['stages']}", file=sys.stderr, flush=True)
    return rows


def run_analysis(items: list[tuple[str, Path, Path]]) -> list[dict]:
    """The default analysis alone (as the session sees the file: EXIF and JPEG quality), on every
    noisy input and on its ground truth: whether noise is found and the σ told."""
    from engine.experts.default import build_registry
    from engine.pipeline.job import Restorer

    from engine.pipeline.job import RestoreOptions

    restorer = Restorer(build_registry())
    rows = []
    for name, lq_path, gt_path in items:
        row: dict = {"name": name}
        for which, path in (("lq", lq_path), ("gt", gt_path)):
            photo = load_cropped_photo(path)
            session = restorer.session(photo.pixels, jpeg=photo.jpeg, metadata=photo.metadata)
            report = session.analyse()
            stages = [s.name for s in restorer.plan_for(session, RestoreOptions()).stages]
            m = report.kinds["noise"].measurements
            row[which] = {"noise": report.severity("noise"), "sigma_255": float(m.get("sigma_told_255", float("nan"))),
                          "still_chroma_255": float(m.get("still_chroma_255", float("nan"))),
                          "still_chroma_present": float(m.get("still_chroma_present", 0.0)),
                          "learned_probability": float(m.get("learned_probability", float("nan"))),
                          "stages": stages}
        rows.append(row)
        print(f"  {name}: noise {row['lq']['noise']:.2f} (ground truth {row['gt']['noise']:.2f}), "
              f"still chroma {row['lq']['still_chroma_255']:.2f}, σ told {row['lq']['sigma_255']:.1f}, "
              f"plan {'+'.join(row['lq']['stages']) or '(none)'} "
              f"(ground truth {'+'.join(row['gt']['stages']) or '(none)'})",
              file=sys.stderr, flush=True)
    return rows


def run_previous(items: list[tuple[str, Path, Path]], code: Path) -> list[dict]:
    """:func:`run_default` on another checkout, in a subprocess (its own imports)."""
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"real_noise_previous_{os.getpid()}.json"
    env = dict(os.environ, RESTORA_CODE=str(code), PYTHONPATH=str(code))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(out), "--crop", str(CROP), "--files",
           *[f"{lq}::{gt}" for _, lq, gt in items]]
    subprocess.run(cmd, env=env, check=True)
    return json.loads(out.read_text())


# --------------------------------------------------------------------------- references
def ffdnet_expert(plain: bool = False, pixel_shuffle: bool = False):
    """The registry's FFDNet expert (chroma pass, no pixel-shuffling), or (``plain``) the same
    network run as published: one full-resolution pass, no chroma pass; ``pixel_shuffle``: the
    chroma pass after pixel-shuffle down-sampling for a JPEG file's decoding."""
    from engine.experts.default import build_registry
    for e in build_registry().for_task("noise"):
        if "ffdnet" in e.info.id.lower():
            if plain or pixel_shuffle:
                from engine.experts.published import FFDNetExpert
                return FFDNetExpert(e.path, model_id=e.info.model_id, chroma_pass=not plain,
                                    pixel_shuffle=pixel_shuffle)
            return e
    return None


def jpeg_source(lq_path: Path):
    """The file's :class:`JpegSource` (tables and decoded pixels, cropped as :func:`load`), or None."""
    from engine.analysis.jpeg_tables import JpegSource
    photo = load_cropped_photo(lq_path)
    return None if photo.jpeg is None else JpegSource(photo.jpeg, photo.pixels)


def run_ffdnet_grid(items, sigmas: list[float], plain: bool = True,
                    pixel_shuffle: bool = True) -> dict[str, dict[float, tuple[float, float]]]:
    """PSNR/SSIM of FFDNet told each uniform σ of ``sigmas`` (8-bit levels) on every pair; the
    expert is told the file's JPEG source as the session tells it."""
    from engine.experts.base import ExpertContext
    expert = ffdnet_expert(plain=plain, pixel_shuffle=pixel_shuffle)
    if expert is None:
        return {}
    grid: dict[str, dict[float, tuple[float, float]]] = {}
    for name, lq_path, gt_path in items:
        lq, gt = load(lq_path), load(gt_path)
        source = jpeg_source(lq_path)
        grid[name] = {}
        for s in sigmas:
            out = expert.run(lq, ExpertContext(noise_sigma=np.float32(s / 255.0), jpeg=source))
            grid[name][s] = metrics(out, gt)
    return grid


def run_one_run(items, sigma_255: float) -> dict[str, list[float]]:
    """Gains (PSNR dB) per pair of: the file-aware JPEG stage then the noise expert told
    ``sigma_255``; the noise expert alone; the noise expert then the projection onto the file's
    tables. Also the CPU seconds per megapixel of each (process time)."""
    from engine.experts.base import ExpertContext
    from engine.experts.classical.jpeg_qcp import project_upright
    from engine.experts.default import build_registry
    from engine.experts.jpeg_restore import JpegQcpRestorer
    registry = build_registry()
    jpeg = next(e for e in registry.for_task("jpeg") if isinstance(e, JpegQcpRestorer))
    noise = ffdnet_expert()
    out: dict[str, list[float]] = {"jpeg stage then noise": [], "noise alone": [],
                                   "noise then projection onto the file's tables": []}
    secs: dict[str, list[float]] = {k: [] for k in out}
    for name, lq_path, gt_path in items:
        lq, gt = load(lq_path), load(gt_path)
        source = jpeg_source(lq_path)
        base = metrics(lq, gt)[0]
        mp = lq.shape[0] * lq.shape[1] / 1e6
        ctx = ExpertContext(noise_sigma=np.float32(sigma_255 / 255.0), jpeg=source)
        t0 = time.process_time()
        after_jpeg = jpeg.run(lq, ExpertContext(jpeg=source))
        both = noise.run(after_jpeg, ctx)
        t2 = time.process_time()
        alone = noise.run(lq, ctx)
        t3 = time.process_time()
        projected = project_upright(alone, source.decoded, source.quantisation) if source is not None else alone
        t4 = time.process_time()
        for key, y, t in (("jpeg stage then noise", both, t2 - t0), ("noise alone", alone, t3 - t2),
                          ("noise then projection onto the file's tables", projected, t3 - t2 + t4 - t3)):
            out[key].append(metrics(y, gt)[0] - base)
            secs[key].append(t / mp)
        print(f"  one run {name}: " + ", ".join(f"{k} {v[-1]:+.2f}" for k, v in out.items()), file=sys.stderr,
              flush=True)
    return {"gains": out, "s_per_mp": {k: float(np.mean(v)) for k, v in secs.items()}}


def run_cbm3d(items, sigma_255: dict[str, float]) -> list[dict]:
    import bm3d
    rows = []
    for name, lq_path, gt_path in items:
        print(f"  cbm3d {name}", file=sys.stderr, flush=True)
        lq, gt = load(lq_path), load(gt_path)
        s = max(float(sigma_255.get(name, 5.0)), 0.5)
        t0 = time.perf_counter()
        out = bm3d.bm3d_rgb(lq, s / 255.0)
        p, ss = metrics(np.asarray(out, np.float32), gt)
        rows.append({"name": name, "psnr": p, "ssim": ss, "sigma_255": s, "seconds": time.perf_counter() - t0})
    return rows


# --------------------------------------------------------------------------- AWGN and clean photos
def run_awgn(count: int, sigmas=(15, 25, 50), crop: int = 0, cbm3d: bool = True) -> list[str]:
    """Default plan vs CBM3D told the true σ on ``count`` validation clean photos with white noise
    (their centre ``crop`` x ``crop`` pixels; 0: whole photos). Mean and worst gain over the input.
    ``cbm3d=False``: CBM3D's PSNR per photo from the cache file ``awgn-cbm3d.json`` beside the results
    (written by a run with it; NaN where it holds none), so that only the default plan runs."""
    cache = ROOT / "benchmarks" / "results" / "awgn-cbm3d.json"
    recorded = json.loads(cache.read_text()) if cache.is_file() else {}
    if cbm3d:
        import bm3d

    from engine.degrade import gaussian_noise
    from engine.experts.default import build_registry
    from engine.photo import Photo
    from engine.pipeline.job import Restorer
    from training.data import load_split, load_uint8, to_float
    from training.metrics import psnr

    _, val = load_split(SHARED / "data" / "clean")
    val = val[:: max(1, len(val) // count)][:count]
    restorer = Restorer(build_registry())
    lines = ["| AWGN σ | input dB | default plan dB | CBM3D told the true σ dB | default − CBM3D, mean | "
             "default − CBM3D, worst photo |", "|---|---|---|---|---|---|"]
    for sigma in sigmas:
        p_in, p_def, p_bm = [], [], []
        for i, path in enumerate(val):
            clean = to_float(load_uint8(path))
            clean = np.ascontiguousarray(centre(clean, crop)) if crop else clean
            noisy = gaussian_noise(clean, sigma / 255.0, np.random.default_rng(1000 + i))
            restored, _ = restorer.restore_photo(Photo(pixels=noisy))
            p_in.append(psnr(q8(noisy), clean))
            p_def.append(psnr(q8(restored.pixels), clean))
            key = f"{sigma}/{crop}/{path.name}"
            if cbm3d:
                recorded[key] = psnr(q8(np.asarray(bm3d.bm3d_rgb(noisy, sigma / 255.0), np.float32)), clean)
                cache.write_text(json.dumps(recorded, indent=0))
            p_bm.append(recorded.get(key, float("nan")))
            print(f"  awgn σ {sigma} {path.name}: input {p_in[-1]:.2f} default {p_def[-1]:.2f} "
                  f"CBM3D {p_bm[-1]:.2f}", file=sys.stderr, flush=True)
        diff = np.array(p_def) - np.array(p_bm)
        lines.append(f"| {sigma} | {np.mean(p_in):.2f} | {np.mean(p_def):.2f} | {np.mean(p_bm):.2f} | "
                     f"{diff.mean():+.2f} | {diff.min():+.2f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    return lines


def run_clean(step: int) -> list[str]:
    """False positives per kind of the default analysis over the clean photos (every ``step``-th),
    and PSNR of the default plan's output against the input on the photos where anything was
    flagged (unflagged photos are returned unchanged by construction)."""
    from engine.experts.default import build_registry
    from engine.imageio import load_photo
    from engine.kinds import KINDS
    from engine.pipeline.job import Restorer
    from training.metrics import psnr

    files = sorted((SHARED / "data" / "clean").iterdir())[::step]
    restorer = Restorer(build_registry())
    flagged = {k: 0 for k in KINDS}
    changed: list[float] = []
    for path in files:
        photo = load_photo(path)
        report = restorer.session(photo.pixels).analyse()
        found = report.present()
        for k in found:
            flagged[k] += 1
        if found:
            restored, _ = restorer.restore_photo(photo)
            changed.append(psnr(q8(restored.pixels), photo.pixels))
    n = len(files)
    lines = ["| kind | false-positive rate |", "|---|---|"]
    lines += [f"| {k} | {flagged[k] / n:.1%} ({flagged[k]}/{n}) |" for k in KINDS]
    lines += ["", f"Photos with any kind flagged: {len(changed)}/{n}; PSNR of output vs input on them: "
              + (f"mean {np.mean(changed):.1f} dB, worst {np.min(changed):.1f} dB, "
                 f"{np.mean(np.array(changed) >= 45):.0%} ≥ 45 dB" if changed else "–")
              + "; the others are returned unchanged."]
    return lines


# --------------------------------------------------------------------------- choosing the chroma pass
def pd_split(image: np.ndarray) -> list[np.ndarray]:
    """Pixel-shuffle down-sampling with stride 2 (Zhou et al. 2020): the four phase sub-images
    of an even-sized HxWxC image."""
    return [np.ascontiguousarray(image[i::2, j::2]) for i in (0, 1) for j in (0, 1)]


def pd_join(subs: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`pd_split`."""
    out = np.empty(shape, np.float32)
    for k, (i, j) in enumerate((i, j) for i in (0, 1) for j in (0, 1)):
        out[i::2, j::2] = subs[k]
    return out


def fit_chroma(count: int, cache: Path, compute: bool = True) -> list[str]:
    """Choose the FFDNet expert's chroma-pass gains on TRAINING-split photos (centre 256 x 256):
    two thirds through the camera pipeline (``engine.degrade.camera.camera_noise``, strength
    U(0.3, 0.65): noise std 3–8 levels, as the real crops, JPEG on), one third white noise σ 5–25.
    Per photo, the plain run's best σ s* (the σ the analysis' contract asks for) is found on a grid;
    then, at s*, the chroma pass at each chroma gain c, pixel-shuffle down-sampling (PD, stride
    2) at 0.5/0.7/1 x s*, and PD at s* followed by the chroma pass at its camera gain (the expert
    with ``pixel_shuffle``, told the camera's JPEG tables as the session tells it a file's).
    Gains are over the plain run at s*. ``cache``: resumable JSON; ``compute=False``: only the
    report of what the cache holds (a run cut short)."""
    from engine.analysis.jpeg_tables import STD_CHROMA, STD_LUMA, JpegQuantisation, JpegSource, ijg_table
    from engine.degrade.camera import camera_noise
    from engine.experts.base import ExpertContext
    from training.data import load_split, load_uint8, to_float

    expert, plain = ffdnet_expert(pixel_shuffle=True), ffdnet_expert(plain=True)
    shipped = "shipped for a JPEG file (PD + chroma)"
    full_grid, gains, pd_gains = (2, 3, 4, 5, 7, 10, 13, 17, 25, 30), (0.5, 0.7, 1.0, 1.3, 1.6, 2.0), (0.5, 0.7, 1.0)
    train, _ = load_split(SHARED / "data" / "clean")
    rng = np.random.default_rng(23)
    picks = rng.choice(len(train), count, replace=False)
    done = json.loads(cache.read_text()) if cache.is_file() else {}
    import engine.experts.published as published

    def add_shipped(name: str, noisy: np.ndarray, gt: np.ndarray, params) -> None:
        """The shipped expert told the camera's JPEG tables (4:2:0), on a camera row without it."""
        if params is None or shipped in done[name]:
            return
        q = int(params.jpeg_quality or 95)
        quant = JpegQuantisation((ijg_table(STD_LUMA, q), ijg_table(STD_CHROMA, q), ijg_table(STD_CHROMA, q)),
                                 ((2, 2), (1, 1), (1, 1)))
        ctx = ExpertContext(noise_sigma=np.float32(done[name]["best_sigma"] / 255), jpeg=JpegSource(quant, noisy))
        done[name][shipped] = metrics(expert.run(noisy, ctx), gt)[0] - done[name]["plain"]
        cache.write_text(json.dumps(done))

    for i, p in enumerate(picks if compute else []):
        im = to_float(load_uint8(train[p]))
        y, x = (im.shape[0] - 256) // 2, (im.shape[1] - 256) // 2
        im = np.ascontiguousarray(im[y:y + 256, x:x + 256])
        if i % 3 == 2:
            s = float(rng.choice([5, 10, 15, 25]))
            noisy = np.clip(im + rng.normal(0, s / 255, im.shape), 0, 1).astype(np.float32)
            name, gt = f"awgn{s:g}_{p}", im
        else:
            noisy, gt, params = camera_noise(im, rng.uniform(0.3, 0.65), seed=int(p), jpeg=True)
            name = f"camera_{p}"
        if name in done:
            add_shipped(name, noisy, gt, params if name.startswith("camera") else None)
            continue
        psnr_of = {q: metrics(plain.run(noisy, ExpertContext(noise_sigma=np.float32(q / 255))), gt)[0]
                   for q in full_grid}
        best = max(psnr_of, key=psnr_of.get)
        row = {"std": float((noisy - gt).std() * 255), "input": metrics(noisy, gt)[0], "best_sigma": best,
               "plain": psnr_of[best]}
        saved = published.CAMERA_CHROMA_GAIN, published.WHITE_CHROMA_GAIN
        try:
            for c in gains:  # the expert told c through its gain (no JPEG source: the white one)
                published.WHITE_CHROMA_GAIN = c
                row[f"chroma {c:g}"] = metrics(expert.run(noisy, ExpertContext(noise_sigma=np.float32(best / 255))),
                                               gt)[0] - psnr_of[best]
        finally:
            published.CAMERA_CHROMA_GAIN, published.WHITE_CHROMA_GAIN = saved
        for a in pd_gains:
            subs = [plain.run(t, ExpertContext(noise_sigma=np.float32(a * best / 255))) for t in pd_split(noisy)]
            row[f"PD {a:g}"] = metrics(pd_join(subs, noisy.shape), gt)[0] - psnr_of[best]
        done[name] = row
        add_shipped(name, noisy, gt, params if name.startswith("camera") else None)
        cache.write_text(json.dumps(done))
        print(f"  fit {name}: std {row['std']:.1f}, s* {best}, " + ", ".join(
            f"{k} {v:+.2f}" for k, v in row.items() if k.startswith(("chroma", "PD"))), file=sys.stderr, flush=True)
    lines = [f"Training-split photos of shared/data/clean ({len(done)}), centre 256 x 256; "
             "gain in PSNR (dB) over the plain FFDNet run told its own best σ s* (grid "
             f"{', '.join(map(str, full_grid))}), mean / worst:", "",
             "| noise | photos | " + " | ".join(f"chroma pass c = {c:g}" for c in gains) + " | "
             + " | ".join(f"PD told {a:g}·s*" for a in pd_gains) + " | PD at s* + chroma pass at "
             f"{published.CAMERA_CHROMA_GAIN:g} | plain at s*: gain over input |",
             "|---|---|" + "---|" * (len(gains) + len(pd_gains) + 2)]
    for label, prefix in (("camera pipeline (JPEG on)", "camera"), ("white Gaussian", "awgn")):
        rows = [r for n, r in done.items() if n.startswith(prefix)]
        if not rows:
            continue
        cells = [f"{np.mean([r[k] for r in rows]):+.3f} / {np.min([r[k] for r in rows]):+.3f}"
                 for k in [f"chroma {c:g}" for c in gains] + [f"PD {a:g}" for a in pd_gains]]
        with_shipped = [r for r in rows if shipped in r]
        cells.append(f"{np.mean([r[shipped] for r in with_shipped]):+.3f} / "
                     f"{np.min([r[shipped] for r in with_shipped]):+.3f}" if with_shipped else "–")
        lines.append(f"| {label} | {len(rows)} | " + " | ".join(cells) + " | "
                     f"{np.mean([r['plain'] - r['input'] for r in rows]):+.2f} |")
    return lines


# --------------------------------------------------------------------------- report
def summarise(label: str, gains_p: np.ndarray, gains_s: np.ndarray, extra: str = "") -> str:
    return (f"| {label} | {gains_p.mean():+.2f} | {gains_p.min():+.2f} | {gains_s.mean():+.4f} | "
            f"{gains_s.min():+.4f} | {(gains_p < 0).sum()} | {extra} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=sorted(SETS), default="crops")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--names", default=None, help="comma-separated file names: only these pairs (after --limit)")
    ap.add_argument("--methods", default="default,previous,ffdnet_oracle,ffdnet_chroma_oracle,one_run,cbm3d")
    ap.add_argument("--cbm3d-every", type=int, default=1, help="run CBM3D on every N-th pair only")
    ap.add_argument("--previous", type=Path, default=Path("/tmp/restora-prev"))
    ap.add_argument("--sigmas", default="3,5,7,10,12,15,18,22,27")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--awgn", type=int, default=0, help="also: AWGN σ 15/25/50 on N validation photos")
    ap.add_argument("--awgn-sigmas", default="15,25,50")
    ap.add_argument("--awgn-crop", type=int, default=0, help="centre crop of the AWGN photos (pixels, 0: whole)")
    ap.add_argument("--awgn-cbm3d-recorded", action="store_true",
                    help="CBM3D's PSNR from benchmarks/results/awgn-cbm3d.json (a run without this flag writes it)")
    ap.add_argument("--clean", type=int, default=0, help="also: false positives on every N-th clean photo")
    ap.add_argument("--crop", type=int, default=0,
                    help="centre-crop every pair to N x N pixels (EXIF and JPEG tables kept), e.g. for --set fullsize")
    ap.add_argument("--fit-chroma", type=int, default=0,
                    help="only: choose the chroma-pass gains on N training photos (camera pipeline and white noise)")
    ap.add_argument("--fit-cache", type=Path, default=Path("noise-chroma-fit.json"))
    ap.add_argument("--fit-report-only", action="store_true", help="report what --fit-cache holds, compute nothing")
    ap.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--files", nargs="*", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    global CROP
    CROP = args.crop
    if args.fit_chroma:
        text = "\n".join(["# FFDNet chroma pass: choosing its gains on training photos", "",
                          f"Machine: {machine()}. Command: `python benchmarks/real_noise.py --fit-chroma "
                          f"{args.fit_chroma}`.", ""] + fit_chroma(args.fit_chroma, args.fit_cache,
                                                          compute=not args.fit_report_only)) + "\n"
        print(text)
        if args.out:
            args.out.write_text(text)
        return 0
    if args.worker:  # subprocess mode for --methods previous
        items = [(Path(f.split("::")[0]).name, Path(f.split("::")[0]), Path(f.split("::")[1])) for f in args.files]
        args.worker.write_text(json.dumps(run_default(items)))
        return 0
    try:
        import onnxruntime  # noqa: F401  (keep thread use honest on the shared machine)
    except ImportError:
        pass
    items = pairs(args.set, args.limit)
    if args.names:
        wanted = set(args.names.split(","))
        items = [it for it in items if it[0] in wanted]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    header = machine()
    inputs = {n: metrics(load(lq), load(gt)) for n, lq, gt in items}
    results: dict[str, object] = {"machine": header, "set": args.set, "inputs": inputs}
    lines = [f"# Real camera noise: {SETS[args.set]} ({len(items)} pairs)", "",
             f"Machine: {header}. Command: `python benchmarks/real_noise.py --set {args.set} --methods "
             f"{args.methods}{f' --limit {args.limit}' if args.limit else ''}"
             f"{f' --cbm3d-every {args.cbm3d_every}' if args.cbm3d_every > 1 else ''}"
             f"{f' --crop {CROP}' if CROP else ''}{f' --names {args.names}' if args.names else ''}`. "
             "Gains are over the noisy input "
             "(PSNR dB / SSIM), outputs rounded to 8 bits.", "",
             "| method | mean PSNR gain | worst PSNR gain | mean SSIM gain | worst SSIM gain | pairs worse | notes |",
             "|---|---|---|---|---|---|---|"]
    in_p = np.array([inputs[n][0] for n, _, _ in items])
    in_s = np.array([inputs[n][1] for n, _, _ in items])
    estimated: dict[str, float] = {}
    chroma_best = None
    one_run_lines: list[str] = []
    for method in methods:
        if args.out:  # what is measured so far, in case the run is cut short
            args.out.write_text("\n".join(lines + ["", f"(partial: running {method})"]) + "\n")
        print(f"{method} …", file=sys.stderr, flush=True)
        if method in ("default", "previous"):
            rows = run_default(items) if method == "default" else run_previous(items, args.previous)
            results[method] = rows
            gp = np.array([r["psnr"] for r in rows]) - in_p
            gs = np.array([r["ssim"] for r in rows]) - in_s
            detected = np.mean([r["report"]["noise"] >= 0.15 for r in rows])
            others = {k: float(np.mean([r["report"][k] >= 0.15 for r in rows]))
                      for k in ("blur", "jpeg", "haze", "lowlight", "rain")}
            spmp = sum(r["seconds"] for r in rows) / sum(r["megapixels"] for r in rows)
            if method == "default":
                estimated = {r["name"]: r["sigma_255"] for r in rows}
            lines.append(summarise(method, gp, gs, f"noise detected {detected:.0%}; other kinds flagged "
                                   + ", ".join(f"{k} {v:.0%}" for k, v in others.items() if v)
                                   + f"; {spmp:.2f} s/MP"))
        elif method == "analysis":
            rows = run_analysis(items)
            results["analysis"] = rows
            on_lq = np.mean([r["lq"]["noise"] >= 0.15 for r in rows])
            on_gt = np.mean([r["gt"]["noise"] >= 0.15 for r in rows])
            still = np.mean([r["lq"]["still_chroma_present"] >= 1 for r in rows])
            net = np.mean([r["lq"]["learned_probability"] >= 0.5 for r in rows])
            found = [r for r in rows if r["lq"]["noise"] >= 0.15]
            planned = np.mean(["noise" in r["lq"]["stages"] for r in found]) if found else float("nan")
            gt_noise_stage = np.mean(["noise" in r["gt"]["stages"] for r in rows])
            if not estimated:
                estimated = {r["name"]: r["lq"]["sigma_255"] for r in rows}
            lines.append(f"| analysis only | – | – | – | – | – | noise detected {on_lq:.0%} of noisy inputs, "
                         f"{on_gt:.0%} of ground truths; still-area colour noise {still:.0%}, network {net:.0%}; "
                         f"σ told median {np.median([r['lq']['sigma_255'] for r in rows]):.1f}; noise stage planned on "
                         f"{planned:.0%} of the inputs where noise was found and on {gt_noise_stage:.0%} "
                         f"of ground truths |")
        elif method in ("ffdnet_oracle", "ffdnet_chroma_oracle", "ffdnet_chroma_only_oracle"):
            plain = method == "ffdnet_oracle"
            shuffle = method == "ffdnet_chroma_oracle"
            label = ("FFDNet as published" if plain else
                     "FFDNet, PD + half-resolution chroma pass" if shuffle else
                     "FFDNet + half-resolution chroma pass (this branch's expert)")
            sig = [float(s) for s in args.sigmas.split(",")]
            grid = run_ffdnet_grid(items, sig, plain=plain, pixel_shuffle=shuffle)
            if not grid:
                lines.append(f"| {method} | – | – | – | – | – | no FFDNet expert in this checkout |")
                continue
            results[f"{method}_grid"] = {n: {str(k): v for k, v in g.items()} for n, g in grid.items()}
            mean_by_sigma = {s: np.mean([grid[n][s][0] for n, _, _ in items]) for s in sig}
            best = max(mean_by_sigma, key=mean_by_sigma.get)
            if not plain and not shuffle:
                chroma_best = best
            gp = np.array([grid[n][best][0] for n, _, _ in items]) - in_p
            gs = np.array([grid[n][best][1] for n, _, _ in items]) - in_s
            lines.append(summarise(f"{label}, best uniform σ = {best:g}", gp, gs,
                                   "oracle: σ chosen on the ground truth"))
            per = {n: max(grid[n], key=lambda s: grid[n][s][0]) for n, _, _ in items}
            gp2 = np.array([grid[n][per[n]][0] for n, _, _ in items]) - in_p
            gs2 = np.array([grid[n][per[n]][1] for n, _, _ in items]) - in_s
            lines.append(summarise(f"{label}, best σ per photo", gp2, gs2, "oracle per photo"))
            results[f"{method}_best_sigma"] = per
            if estimated and plain:
                diff = np.array([estimated[n] - per[n] for n, _, _ in items if np.isfinite(estimated[n])])
                if diff.size:
                    worst = diff[np.argmax(np.abs(diff))]
                    lines.append(f"| σ told by the analysis − best σ per photo (8-bit levels) "
                                 f"| mean {diff.mean():+.1f}, median abs {np.median(np.abs(diff)):.1f}, "
                                 f"worst {worst:+.1f} | | | | | |")
        elif method == "one_run":
            sigma_one = chroma_best if chroma_best is not None else 10.0
            one = run_one_run(items, sigma_one)
            results["one_run"] = one
            for key, g in one["gains"].items():
                g = np.array(g)
                one_run_lines.append(f"| {key} | {g.mean():+.2f} | {g.min():+.2f} | {(g < 0).sum()} | "
                                     f"{one['s_per_mp'][key]:.1f} |")
        elif method == "cbm3d":
            sig = estimated or {n: 5.0 for n, _, _ in items}
            rows = run_cbm3d(items[::args.cbm3d_every], sig)
            results["cbm3d"] = rows
            gp = np.array([r["psnr"] - inputs[r["name"]][0] for r in rows])
            gs = np.array([r["ssim"] - inputs[r["name"]][1] for r in rows])
            lines.append(summarise("CBM3D told the estimated σ", gp, gs,
                                   ("σ from the default plan's analysis" if estimated else "σ = 5 (no estimate)")
                                   + (f"; every {args.cbm3d_every}-th pair only ({len(rows)})"
                                      if args.cbm3d_every > 1 else "")))
    lines += ["", f"Input: mean PSNR {in_p.mean():.2f} dB, SSIM {in_s.mean():.4f}."]
    if one_run_lines:
        lines += ["", f"## One FFDNet run for a photo with both a JPEG and a noise stage (σ = {sigma_one:g})", "",
                  "| what runs | mean PSNR gain | worst | pairs worse | CPU s/MP |", "|---|---|---|---|---|"]
        lines += one_run_lines
    if args.awgn:
        lines += ["", f"## White Gaussian noise ({args.awgn} validation photos of shared/data/clean"
                  f"{f', centre {args.awgn_crop} px' if args.awgn_crop else ''})", ""]
        lines += run_awgn(args.awgn, tuple(int(v) for v in args.awgn_sigmas.split(",")), args.awgn_crop,
                          not args.awgn_cbm3d_recorded)
    if args.clean:
        lines += ["", f"## Clean photos (every {args.clean}-th of shared/data/clean)", ""] + run_clean(args.clean)
    if "default" in results:
        lines += ["", "Per photo (default plan): input PSNR → output PSNR, stages, σ told (8-bit levels)", "",
                  "| photo | input | default | stages | σ |", "|---|---|---|---|---|"]
        for r in results["default"]:
            lines.append(f"| {r['name']} | {inputs[r['name']][0]:.2f} | {r['psnr']:.2f} | {' '.join(r['stages'])} | "
                         f"{r['sigma_255']:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
