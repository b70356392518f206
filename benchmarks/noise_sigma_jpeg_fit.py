"""The σ told to FFDNet on noisy camera JPEGs (IJG quality 60–89, where the JPEG floor applies):
per training case, FFDNet's PSNR over a grid of told σ, run as the plan runs it, with the analysis'
measurements, to refit :func:`engine.analysis.noise_sigma.told_sigma_255` for such files only
(issue 11; ``benchmarks/results/real-noise-sigma-jpeg.md``).

Cases: the camera-realistic cases of ``jpeg_grain_coherence.py`` (its resumable cache, ``--coh``; training
split of ``../shared/data/clean``, up to 512 px): ``noisy`` (native centre crop), ``noisy_big`` (the
photo's smoothest window enlarged 2–10×, as a DSLR crop's smooth content), ``raw_big`` (enlarged, no
in-camera luma noise reduction); camera noise strength U(0.15, 0.7) (0.2–0.6 for ``raw_big``), the
in-camera JPEG at q 88–97, then a re-save 4:2:0 at the case's quality. Only re-saves at q ``--qmin``–``--qmax``
(default 70–80, as the real PolyU crops are saved) are used.

Per case, as the CLI would see the file: the shipped analysis (``analyse_default`` told the quality), the
file's tables (``with_file_evidence``) and the coefficient grain (``with_grain_evidence``). Where that
report makes the noise stage run in place of the JPEG stage (noise present, and
``engine.pipeline.plan.noise_serves_jpeg``), FFDNet (the registry's expert: chroma pass, told the file's
tables) is told the session's noise map (``noise_level.noise_sigma_for``) with ``sigma_told_255`` set to each
σ of :data:`GRID` in turn (stopping two points past the peak); the PSNR of each (8-bit) against the
clean reference is stored. Cases where the noise stage does not run are stored without a grid: the σ
told there is never used.

Resumable JSON cache (``--cache``); ``--minutes`` bounds a run. No real photo is read.

Run: ``OMP_NUM_THREADS=1 nice -n 10 python benchmarks/noise_sigma_jpeg_fit.py --cache C.json --minutes 40``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _host import SCRATCH  # noqa: E402

#: σ told (8-bit levels), the grid searched per case.
GRID = (3.0, 4.5, 6.0, 7.5, 9.0, 11.0, 13.5, 16.5, 20.0, 25.0, 31.0, 38.0, 48.0)
#: The kinds of the ``jpeg_grain_coherence.py`` cache that hold camera noise.
NOISY_KINDS = ("noisy", "noisy_big", "raw_big")
#: Every kind of that cache, in the order of its ``quality`` array.
CACHE_KINDS = ("clean", "clean_big", "cleancam", "cleancam_big") + NOISY_KINDS
#: Measurement keys kept per case (the rest of the analysis' noise measurements are not needed).
KEYS = ("nlf_fine_255", "nlf_coarse_255", "nlf_half_255", "sigma_told_255", "sigma_measured_255", "iso_prior_255",
        "jpeg_grain_found", "jpeg_grain_score")


def plan_view(noisy: np.ndarray, quality: int):
    """What the session sees of this decoded JPEG: its report (file tables and grain evidence added), the
    JpegSource, whether the noise stage runs in place of the JPEG stage, and the noise measurements."""
    from engine.analysis.jpeg_grain import with_grain_evidence
    from engine.analysis.jpeg_tables import STD_CHROMA, STD_LUMA, JpegQuantisation, JpegSource, ijg_table, \
        with_file_evidence
    from engine.analysis.learned import analyse_default
    from engine.analysis.report import DEFAULT_PRESENCE_THRESHOLD
    from engine.kinds import NOISE
    from engine.pipeline.plan import noise_serves_jpeg

    quant = JpegQuantisation((ijg_table(STD_LUMA, quality), ijg_table(STD_CHROMA, quality),
                              ijg_table(STD_CHROMA, quality)), ((2, 2), (1, 1), (1, 1)))
    source = JpegSource(quant, noisy)
    report = with_grain_evidence(with_file_evidence(analyse_default(noisy, jpeg_quality=quality), quant), source)
    noise = report.kinds[NOISE]
    present = noise.severity >= DEFAULT_PRESENCE_THRESHOLD
    serves = present and noise_serves_jpeg(report) is not None
    return report, source, bool(present), bool(serves), dict(noise.measurements)


def told_grid(expert, noisy: np.ndarray, ref: np.ndarray, source, measurements: dict) -> dict:
    """PSNR (dB, 8-bit output) of FFDNet told the session's noise map at each ``sigma_told_255`` of
    :data:`GRID`, stopping two grid points past the best."""
    from engine.analysis.noise_level import noise_sigma_for
    from engine.experts.base import ExpertContext
    from real_noise import metrics

    scores: dict[float, float] = {}
    for s in GRID:
        sigma = noise_sigma_for(noisy, dict(measurements, sigma_told_255=s))
        scores[s] = metrics(expert.run(noisy, ExpertContext(noise_sigma=sigma, jpeg=source)), ref)[0]
        best = max(scores, key=scores.get)
        if list(scores).index(s) - list(scores).index(best) >= 2:
            break
    return {"scores": {str(k): v for k, v in scores.items()}, "best_sigma": float(max(scores, key=scores.get)),
            "best_psnr": float(max(scores.values()))}


def run(coh: Path, cache: Path, qmin: int, qmax: int, minutes: float, part: str) -> None:
    from real_noise import ffdnet_expert, metrics

    done = json.loads(cache.read_text()) if cache.is_file() else {}
    expert = ffdnet_expert()
    k, n = (int(v) for v in part.split("/"))
    t_end = time.time() + minutes * 60
    files = sorted(coh.glob("[0-9][0-9][0-9][0-9].npz"))
    for path in files[k::n]:
        if time.time() > t_end:
            break
        with np.load(path) as z:
            qualities = dict(zip(CACHE_KINDS, z["quality"], strict=True))
            todo = [kind for kind in NOISY_KINDS if f"{path.stem}/{kind}" not in done
                    and qmin <= int(qualities[kind]) <= qmax]
            arrays = {kind: (z[kind].astype(np.float32) / 255.0, z[f"ref_{kind}"].astype(np.float32) / 255.0)
                      for kind in todo}
        for kind in todo:
            key, q = f"{path.stem}/{kind}", int(qualities[kind])
            noisy, ref = arrays[kind]
            t0 = time.process_time()
            _, source, present, serves, m = plan_view(noisy, q)
            row = {"photo": int(path.stem), "kind": kind, "quality": q, "input": metrics(noisy, ref)[0],
                   "present": present, "serves": serves, **{key_: float(m[key_]) for key_ in KEYS if key_ in m}}
            if serves:
                row.update(told_grid(expert, noisy, ref, source, m))
            row["cpu_s"] = time.process_time() - t0
            done[key] = row
            tmp = cache.with_suffix(".tmp")
            tmp.write_text(json.dumps(done))
            tmp.replace(cache)
            extra = f" best σ {row['best_sigma']:.1f} (+{row['best_psnr'] - row['input']:.2f})" if serves else ""
            print(f"  {key} q{q} present {present} serves {serves} coarse {row['nlf_coarse_255']:.2f} "
                  f"told {row['sigma_told_255']:.1f}{extra} {row['cpu_s']:.0f}s", file=sys.stderr, flush=True)


def matched_case(index: int, path: Path, side: int, strengths: tuple[float, float], qualities: tuple[int, int]):
    """One case of ``--set matched``: ``(noisy, reference, quality, kind)``. The photo's centre ``side`` px
    (``native``) or, for every third photo, its smoothest window enlarged log-U(2, 6)× to ``side`` px
    (``big``), through :func:`engine.degrade.camera.camera_noise` at strength U(``strengths``) with the
    camera as the pipeline draws it (in-camera noise reduction on 85 % of cameras, its JPEG at q 70–96),
    then re-saved 4:2:0 at IJG quality U{``qualities``}."""
    import cv2

    from engine.degrade.camera import camera_noise, jpeg_round_trip
    from real_noise import grid_crop
    from real_noise_learned import smoothest_window
    from training.data import load_uint8, to_float

    rng = np.random.default_rng([7100, index])
    photo = to_float(load_uint8(path))
    if index % 3 == 2:
        kind = "big"
        f = float(np.exp(rng.uniform(np.log(2.0), np.log(6.0))))
        s = max(8, min(int(round(side / f)), *photo.shape[:2]))
        y0, x0 = smoothest_window(photo, s)
        im = np.clip(cv2.resize(photo[y0:y0 + s, x0:x0 + s], (side, side), interpolation=cv2.INTER_CUBIC), 0, 1)
    else:
        kind, im = "native", grid_crop(photo, side)
    strength = float(rng.uniform(*strengths))
    noisy, ref, _ = camera_noise(np.ascontiguousarray(im, np.float32), strength, seed=7100 + index, jpeg=True)
    q = int(rng.integers(qualities[0], qualities[1] + 1))
    return jpeg_round_trip(noisy, q), ref, q, kind, strength


def run_matched(cache: Path, count: int, side: int, strengths: tuple[float, float], qualities: tuple[int, int],
                minutes: float) -> None:
    """``--set matched``: :func:`matched_case` on ``count`` training photos (seeded order), each row as
    :func:`run` stores it, plus the strength."""
    from _host import shuffled_training_photos
    from real_noise import ffdnet_expert, metrics

    done = json.loads(cache.read_text()) if cache.is_file() else {}
    expert = ffdnet_expert()
    t_end = time.time() + minutes * 60
    for i, path in enumerate(shuffled_training_photos(count, 7100)):
        key = f"{i:04d}"
        if key in done:
            continue
        if time.time() > t_end:
            break
        t0 = time.process_time()
        noisy, ref, q, kind, strength = matched_case(i, path, side, strengths, qualities)
        _, source, present, serves, m = plan_view(noisy, q)
        row = {"photo": i, "name": path.name, "kind": kind, "strength": strength, "quality": q,
               "input": metrics(noisy, ref)[0], "present": present, "serves": serves,
               **{k: float(m[k]) for k in KEYS if k in m}}
        if serves:
            row.update(told_grid(expert, noisy, ref, source, m))
        row["cpu_s"] = time.process_time() - t0
        done[key] = row
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(done))
        tmp.replace(cache)
        extra = f" best σ {row['best_sigma']:.1f} (+{row['best_psnr'] - row['input']:.2f})" if serves else ""
        print(f"  {key} {kind} s{strength:.2f} q{q} present {present} serves {serves} coarse "
              f"{row['nlf_coarse_255']:.2f} told {row['sigma_told_255']:.1f}{extra} {row['cpu_s']:.0f}s",
              file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coh", type=Path, default=SCRATCH / "polygrain" / "coh",
                    help="the jpeg_grain_coherence.py case cache")
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--qmin", type=int, default=70)
    ap.add_argument("--qmax", type=int, default=80)
    ap.add_argument("--minutes", type=float, default=40.0)
    ap.add_argument("--part", default="0/1", help="k/n: every n-th photo from the k-th")
    ap.add_argument("--set", choices=("coh", "matched"), default="coh",
                    help="coh: the jpeg_grain_coherence.py cases; matched: matched_case (strength --strengths)")
    ap.add_argument("--count", type=int, default=300, help="matched: training photos")
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--strengths", default="0.25,0.55", help="matched: camera noise strength range "
                    "(camera-vs-real.md: the range matched to the real crops' noise)")
    args = ap.parse_args(argv)
    if args.set == "matched":
        lo, hi = (float(v) for v in args.strengths.split(","))
        run_matched(args.cache, args.count, args.side, (lo, hi), (args.qmin, args.qmax), args.minutes)
    else:
        run(args.coh, args.cache, args.qmin, args.qmax, args.minutes, args.part)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
