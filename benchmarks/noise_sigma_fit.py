"""The σ to tell FFDNet for real camera noise: per-case best σ on a grid, and the analysis'
noise measurements, on training photos through the camera pipeline (the fit) and on the real
PolyU crops (validation only, never fitted on).

For every case the registry's FFDNet expert (its half-resolution chroma pass, told the JPEG
tables as the session tells it a file's) is run told each uniform σ of a grid; the best σ is
refined by a parabola through the best grid point and its neighbours (in log σ). Alongside, the
analysis' noise measurements (``engine.analysis.analyser.measure``, told the file's JPEG quality)
are stored, so that a mapping from them to the σ can be fitted and checked offline.

- ``--set train``: training-split photos of ../shared/data/clean (centre ``--side`` px), through
  :func:`engine.degrade.camera.camera_noise` (Poisson–Gaussian on a Bayer mosaic, demosaic,
  in-camera noise reduction, tone curve, sharpening, JPEG 4:2:0 as sampled), shot level log-uniform
  over strength ``--strengths``; a quarter with white Gaussian noise instead (σ 5–50).
- ``--set polyu``: the 60 real crops of ``pairs/noise_real_polyu_crops`` (validation).
- ``--set told``: on the same crops, FFDNet told the session's noise map at this code's σ and at
  the previous rule's (:func:`run_told`).

Resumable JSON cache per set (``--cache``). Run:
``nice -n 10 OMP_NUM_THREADS=1 .venv/bin/python benchmarks/noise_sigma_fit.py --set train --count 60``
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from real_noise import PAIRS, SHARED, ffdnet_expert, grid_crop, load, load_cropped_photo, metrics  # noqa: E402

#: σ grid (8-bit levels).
GRID = (2.0, 3.0, 4.5, 6.0, 8.0, 10.0, 12.5, 15.5, 19.0, 24.0, 30.0, 38.0, 48.0, 60.0)
#: Measurement keys stored per case.
KEYS = ("sigma_255", "chroma_excess_255", "noise_index_255", "nlf_fine_255", "nlf_coarse_255", "sigma_measured_255",
        "still_chroma_255", "still_blocks", "still_chroma_present", "nlf_half_255")


def features(image: np.ndarray, quality: int | None) -> dict[str, float]:
    from engine.analysis.analyser import measure
    m = measure(image, jpeg_quality=quality)["noise"]
    out = {k: float(m[k]) for k in KEYS if k in m}
    import cv2

    from engine.analysis.noise_level import estimate_nlf
    h, w = image.shape[:2]
    half = cv2.resize(np.asarray(image, np.float32), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    out["nlf_half_255"] = float(estimate_nlf(half).per_channel().mean() * 255.0)
    out["nlf_half_fine_255"] = float(estimate_nlf(half, highpass_px=0.7).per_channel().mean() * 255.0)
    out["quality"] = float(quality) if quality is not None else float("nan")
    return out


def search(expert, noisy: np.ndarray, gt: np.ndarray, jpeg, grid=GRID) -> dict:
    """PSNR per σ of ``grid`` (stopping two points past the peak) and the parabola-refined best σ."""
    from engine.experts.base import ExpertContext
    scores: dict[float, float] = {}
    for s in grid:
        scores[s] = metrics(expert.run(noisy, ExpertContext(noise_sigma=np.float32(s / 255.0), jpeg=jpeg)), gt)[0]
        best = max(scores, key=scores.get)
        if s >= best and list(scores).index(s) - list(scores).index(best) >= 2:
            break
    keys = list(scores)
    i = keys.index(max(scores, key=scores.get))
    best = keys[i]
    if 0 < i < len(keys) - 1:
        x = np.log([keys[i - 1], keys[i], keys[i + 1]])
        y = np.array([scores[keys[i - 1]], scores[keys[i]], scores[keys[i + 1]]])
        a, b, _ = np.polyfit(x, y, 2)
        if a < 0:
            best = float(np.exp(np.clip(-b / (2 * a), x[0], x[2])))
    return {"scores": {str(k): v for k, v in scores.items()}, "best_sigma": float(best),
            "best_psnr": float(max(scores.values()))}


def synthetic_jpeg(image: np.ndarray, quality: int):
    """A JpegSource for a libjpeg-saved image at ``quality`` (4:2:0), as a file would give."""
    from engine.analysis.jpeg_tables import STD_CHROMA, STD_LUMA, JpegQuantisation, JpegSource, ijg_table
    quant = JpegQuantisation((ijg_table(STD_LUMA, quality), ijg_table(STD_CHROMA, quality),
                              ijg_table(STD_CHROMA, quality)), ((2, 2), (1, 1), (1, 1)))
    return JpegSource(quant, image)


def run_train(count: int, side: int, strengths: tuple[float, float], done: dict, save, reverse: bool = False,
              others: tuple = (), seed: int = 1000, resave: bool = False, resave_all: bool = False) -> None:
    from engine.degrade import gaussian_noise
    from engine.degrade.camera import camera_noise, jpeg_round_trip
    from training.data import load_split, load_uint8, to_float
    expert = ffdnet_expert()
    train, _ = load_split(SHARED / "data" / "clean")
    rng = np.random.default_rng(11 + seed)
    picks = rng.choice(len(train), count, replace=False)
    order = list(enumerate(picks))
    for i, p in (order[::-1] if reverse else order):
        name = f"{i}_{train[p].name}"
        if name in done or any(o.is_file() and name in json.loads(o.read_text() or "{}") for o in others):
            continue
        im = to_float(load_uint8(train[p]))
        im = grid_crop(im, side)
        case_rng = np.random.default_rng([11, i, seed])
        if i % 4 == 3:
            s = float(np.exp(case_rng.uniform(np.log(5), np.log(50))))
            noisy, gt, what, q = gaussian_noise(im, s / 255, case_rng), im, {"white": s}, None
        else:
            strength = float(case_rng.uniform(*strengths))
            noisy, gt, params = camera_noise(im, strength, seed=int(seed + i), jpeg=None)
            q = params.jpeg_quality
            what = {"strength": strength, "quality": q, "luma_nr": params.luma_nr, "chroma_nr": params.chroma_nr,
                    "sharpen": params.sharpen, "demosaic": params.demosaic}
            if resave and q is not None and (i % 3 == 1 or resave_all):  # re-saved (shared, edited) camera JPEG
                q = int(case_rng.integers(60, 91))
                noisy = jpeg_round_trip(noisy, q)
                what["resave"] = q
        t0 = time.process_time()
        row = {"what": what, "input": metrics(noisy, gt)[0], "std_255": float((noisy - gt).std() * 255),
               **features(noisy, q), **search(expert, noisy, gt, synthetic_jpeg(noisy, q) if q else None)}
        row["cpu_s"] = time.process_time() - t0
        done[name] = row
        save()
        print(f"  {name}: {what} input {row['input']:.2f} best σ {row['best_sigma']:.1f} "
              f"(+{row['best_psnr'] - row['input']:.2f}) fine {row['nlf_fine_255']:.2f} "
              f"coarse {row['nlf_coarse_255']:.2f} half {row['nlf_half_255']:.2f}", file=sys.stderr, flush=True)


def run_polyu(done: dict, save, part: str, start: float, reverse: bool = False, others: tuple = ()) -> None:
    from engine.analysis.jpeg_tables import JpegSource
    expert = ffdnet_expert()
    folder = PAIRS / "noise_real_polyu_crops"
    names = sorted(p.name for p in (folder / "lq").iterdir())
    k, n = (int(v) for v in part.split("/"))
    for name in (names[k::n][::-1] if reverse else names[k::n]):
        if name in done or any(o.is_file() and name in json.loads(o.read_text() or "{}") for o in others):
            continue
        photo = load_cropped_photo(folder / "lq" / name)
        gt = load(folder / "gt" / name)
        source = None if photo.jpeg is None else JpegSource(photo.jpeg, photo.pixels)
        q = None if source is None else source.quality
        t0 = time.process_time()
        row = {"input": metrics(photo.pixels, gt)[0], **features(photo.pixels, q),
               **search(expert, photo.pixels, gt, source, [s for s in GRID if s >= start])}
        row["cpu_s"] = time.process_time() - t0
        done[name] = row
        save()
        print(f"  {name}: input {row['input']:.2f} best σ {row['best_sigma']:.1f} "
              f"(+{row['best_psnr'] - row['input']:.2f}) fine {row['nlf_fine_255']:.2f} "
              f"coarse {row['nlf_coarse_255']:.2f} half {row['nlf_half_255']:.2f} q {q}", file=sys.stderr, flush=True)


def run_told(done: dict, save, part: str) -> None:
    """On every PolyU crop: FFDNet told the noise map the session tells it (the analysis'
    noise-level function scaled to ``sigma_told_255``), once with this code's σ and once with the
    previous two-scale rule's (``sigma_measured_255``: fine + 2.5·(coarse − fine)); PSNR of each."""
    from engine.analysis.analyser import measure
    from engine.analysis.jpeg_tables import JpegSource
    from engine.analysis.noise_level import noise_sigma_for
    from engine.experts.base import ExpertContext
    expert = ffdnet_expert()
    folder = PAIRS / "noise_real_polyu_crops"
    names = sorted(p.name for p in (folder / "lq").iterdir())
    k, n = (int(v) for v in part.split("/"))
    for name in names[k::n]:
        if name in done:
            continue
        photo = load_cropped_photo(folder / "lq" / name)
        gt = load(folder / "gt" / name)
        source = None if photo.jpeg is None else JpegSource(photo.jpeg, photo.pixels)
        q = None if source is None else source.quality
        m = measure(photo.pixels, jpeg_quality=q)["noise"]
        row = {"input": metrics(photo.pixels, gt)[0]}
        for label, told in (("new", m["sigma_told_255"]), ("old", max(m["sigma_measured_255"], m["iso_prior_255"]))):
            sigma = noise_sigma_for(photo.pixels, dict(m, sigma_told_255=told))
            out = expert.run(photo.pixels, ExpertContext(noise_sigma=sigma, jpeg=source))
            row[label] = {"told": float(told), "psnr": metrics(out, gt)[0]}
        done[name] = row
        save()
        print(f"  {name}: input {row['input']:.2f} new σ {row['new']['told']:.1f} {row['new']['psnr']:.2f} "
              f"old σ {row['old']['told']:.1f} {row['old']['psnr']:.2f}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=("train", "polyu", "told"), required=True)
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--strengths", default="0.2,0.75")
    ap.add_argument("--part", default="0/1", help="k/n: every n-th crop from the k-th (polyu; parallel runs)")
    ap.add_argument("--start", type=float, default=2.0, help="least σ of the grid searched (polyu)")
    ap.add_argument("--reverse", action="store_true", help="walk the crops from the last (a second process)")
    ap.add_argument("--others", type=Path, nargs="*", default=[], help="caches of other processes: skip their crops")
    ap.add_argument("--seed", type=int, default=1000, help="train: the draw of photos and cameras")
    ap.add_argument("--resave", action="store_true", help="train: a third of camera JPEGs re-saved at q 60-90")
    ap.add_argument("--resave-all", action="store_true", help="train: every camera JPEG re-saved at q 60-90")
    ap.add_argument("--cache", type=Path, required=True)
    args = ap.parse_args(argv)
    done = json.loads(args.cache.read_text()) if args.cache.is_file() else {}

    def save() -> None:
        tmp = args.cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(done, indent=0, default=lambda v: None if isinstance(v, float) and math.isnan(v)
                                  else v))
        tmp.replace(args.cache)

    if args.set == "train":
        lo, hi = (float(v) for v in args.strengths.split(","))
        run_train(args.count, args.side, (lo, hi), done, save, args.reverse, tuple(args.others), args.seed,
                  args.resave or args.resave_all, args.resave_all)
    elif args.set == "told":
        run_told(done, save, args.part)
    else:
        run_polyu(done, save, args.part, args.start, args.reverse, tuple(args.others))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
