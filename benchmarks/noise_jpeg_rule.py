"""One FFDNet run or two on a noisy JPEG: the noise stage alone against the JPEG stage then the
noise stage, on training photos through the camera pipeline (the plan rule
engine.pipeline.plan.noise_serves_jpeg).

Cases: training-split photos of ../shared/data/clean (centre ``--side`` px) through
:func:`engine.degrade.camera.camera_noise` with its JPEG on (the camera's save, IJG quality 70–96
as sampled); with ``--resave Q`` the camera's JPEG is then re-saved at quality Q (a heavy JPEG that
is also noisy). Each expert gets what the session gives it: the file's tables (IJG tables at the
last quality) and, for the noise expert, the noise map the analysis measures on its own input
(:func:`engine.analysis.noise_level.noise_sigma_for` of ``analyser.measure`` told that quality).
Reported: PSNR gain over the noisy input (mean, worst), and CPU seconds per megapixel.

Run: ``nice -n 10 OMP_NUM_THREADS=1 python benchmarks/noise_jpeg_rule.py --count 12 [--resave 30]``
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

from real_noise import SHARED, ffdnet_expert, metrics  # noqa: E402

METHODS = ("jpeg stage then noise stage", "noise stage alone", "jpeg stage alone")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=12)
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--resave", type=int, default=0, help="re-save the camera's JPEG at this quality (0: no)")
    ap.add_argument("--cache", type=Path, required=True)
    args = ap.parse_args(argv)
    from engine.analysis.analyser import measure
    from engine.analysis.jpeg_tables import STD_CHROMA, STD_LUMA, JpegQuantisation, JpegSource, ijg_table
    from engine.analysis.noise_level import noise_sigma_for
    from engine.degrade.camera import camera_noise, jpeg_round_trip
    from engine.experts.base import ExpertContext
    from engine.experts.default import build_registry
    from engine.experts.jpeg_restore import JpegQcpRestorer
    from training.data import load_split, load_uint8, to_float

    jpeg = next(e for e in build_registry().for_task("jpeg") if isinstance(e, JpegQcpRestorer))
    noise = ffdnet_expert()
    train, _ = load_split(SHARED / "data" / "clean")
    rng = np.random.default_rng(29 + args.resave)
    picks = rng.choice(len(train), args.count, replace=False)
    done = json.loads(args.cache.read_text()) if args.cache.is_file() else {}

    def noise_run(image: np.ndarray, q: int, source) -> np.ndarray:
        m = measure(image, jpeg_quality=q)["noise"]
        return noise.run(image, ExpertContext(noise_sigma=noise_sigma_for(image, m), jpeg=source))

    for i, p in enumerate(picks):
        name = f"{i}_{train[p].name}"
        if name in done:
            continue
        im = to_float(load_uint8(train[p]))
        y, x = max(0, (im.shape[0] - args.side) // 2 // 8 * 8), max(0, (im.shape[1] - args.side) // 2 // 8 * 8)
        im = np.ascontiguousarray(im[y:y + args.side, x:x + args.side])
        strength = float(np.random.default_rng([29, i]).uniform(0.25, 0.6))
        noisy, ref, params = camera_noise(im, strength, seed=2000 + i, jpeg=True)
        q = int(params.jpeg_quality)
        if args.resave:
            noisy, q = jpeg_round_trip(noisy, args.resave), args.resave
        quant = JpegQuantisation((ijg_table(STD_LUMA, q), ijg_table(STD_CHROMA, q), ijg_table(STD_CHROMA, q)),
                                 ((2, 2), (1, 1), (1, 1)))
        source = JpegSource(quant, noisy)
        mp = noisy.shape[0] * noisy.shape[1] / 1e6
        base = metrics(noisy, ref)[0]
        row = {"quality": q, "strength": strength, "input": base}
        t0 = time.process_time()
        deblocked = jpeg.run(noisy, ExpertContext(jpeg=source))
        t1 = time.process_time()
        both = noise_run(deblocked, q, source)
        t2 = time.process_time()
        alone = noise_run(noisy, q, source)
        t3 = time.process_time()
        for key, out, secs in ((METHODS[0], both, t2 - t0), (METHODS[1], alone, t3 - t2),
                               (METHODS[2], deblocked, t1 - t0)):
            row[key] = {"gain": metrics(out, ref)[0] - base, "cpu_s_per_mp": secs / mp}
        done[name] = row
        args.cache.write_text(json.dumps(done))
        print(f"  {name} q{q}: " + ", ".join(f"{k} {row[k]['gain']:+.2f} ({row[k]['cpu_s_per_mp']:.1f} s/MP)"
                                             for k in METHODS), file=sys.stderr, flush=True)
    for key in METHODS:
        gains = np.array([r[key]["gain"] for r in done.values()])
        secs = np.array([r[key]["cpu_s_per_mp"] for r in done.values()])
        print(f"| {key} | {len(gains)} | {gains.mean():+.2f} | {gains.min():+.2f} | {(gains < 0).sum()} | "
              f"{secs.mean():.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
