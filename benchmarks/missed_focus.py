"""Missed focus or the scene's own softness: how uniform an isotropic blur is over the frame, and
how large, on TRAINING photos (``benchmarks/results/missed-focus.md``).

Training photos: every 14th of the training split of ``shared/data/clean`` (from the 6th), each
blurred in linear light by a defocus disc (radius U(1.5, 6) px) and a lens Gaussian (σ U(1, 3) px),
through camera noise (strength U(0, 0.2)) and a camera JPEG (quality 85–96, 4:2:0), loaded as the app
loads a file, analysed as the app does (``blur_kernel_shape.as_photo`` / ``analysed_noise``). For each,
the deblurrer's kernel estimate (:meth:`PnPDeblur.estimate`, told the analysed noise), its anisotropy,
RMS radius, and :func:`engine.analysis.blur_kernel.tile_blur_scales` (the share of detailed 64 px tiles
that fit a kernel half the size or less). One JSON line per photo in ``--cache``.

Run: ``python benchmarks/missed_focus.py [--cache FILE] [--step 14] [--report]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from blur_kernel_shape import SHARED, analysed_noise, as_photo  # noqa: E402


def rows(cache: Path, step: int):
    from _host import load_rgb

    from engine.analysis.blur_kernel import tile_blur_scales
    from engine.degrade.blur import convolve_linear, disk_kernel, gaussian_kernel
    from engine.experts.default import build_registry
    from engine.experts.pnp_deblur import estimation_gray, kernel_anisotropy
    from engine.pipeline.job import Restorer
    from training.data import load_split

    registry = build_registry()
    restorer = Restorer(registry)
    deblur = next(e for e in registry.all() if e.info.id.startswith("deblur.pnp"))
    done = {json.loads(x)["name"] for x in cache.read_text().splitlines()} if cache.exists() else set()
    train, _ = load_split(SHARED / "data" / "clean")
    for i, f in enumerate(sorted(train)[5::step]):
        rng = np.random.default_rng([i, 4242])
        img = load_rgb(f)
        q, st, seed = int(rng.integers(85, 97)), float(rng.uniform(0.0, 0.2)), int(rng.integers(1 << 30))
        for g, x in (("defocus", convolve_linear(img, disk_kernel(float(rng.uniform(1.5, 6))))),
                     ("gauss", convolve_linear(img, gaussian_kernel(float(rng.uniform(1.0, 3)))))):
            name = f"{g}/{f.name}"
            if name in done:
                continue
            photo = as_photo(x, st, seed, q)
            noise = analysed_noise(restorer, photo)
            pixels = np.clip(photo.pixels, 0, 1).astype(np.float32)
            est, factor = deblur.estimate(pixels, noise=noise)
            row = {"name": name, "noise255": noise * 255, "conf": est.confidence, "point": est.kernel.shape[0] == 1,
                   "radius": est.radius_px * factor, "checks": {k: float(v) for k, v in est.checks.items()}}
            if est.kernel.shape[0] > 1:
                row["aniso"] = kernel_anisotropy(est.kernel)
                row["s64"] = tile_blur_scales(estimation_gray(pixels, factor), est.kernel, noise / factor).tolist()
            with cache.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps({k: v for k, v in row.items() if k != "s64"}), flush=True)


def report(cache: Path) -> str:
    from engine.experts.pnp_deblur import (ISOTROPIC_MAX_ANISOTROPY, MISSED_FOCUS_MAX_SHARPER_SHARE,
                                           MISSED_FOCUS_MIN_RADIUS_PX)

    data = [json.loads(x) for x in cache.read_text().splitlines()]
    iso = [r for r in data if not r["point"] and r["conf"] >= 0.25 and r["aniso"] <= ISOTROPIC_MAX_ANISOTROPY]
    lines = [f"{len(data)} training photos, {len(iso)} with a confident isotropic kernel "
             f"(anisotropy ≤ {ISOTROPIC_MAX_ANISOTROPY}):", "",
             "| photo | RMS radius px | anisotropy | tiles | share of tiles ≤ half the kernel |",
             "|---|---|---|---|---|"]
    for r in sorted(iso, key=lambda r: r["radius"]):
        s = np.asarray(r["s64"])
        lines.append(f"| {r['name']} | {r['radius']:.2f} | {r['aniso']:.2f} | {s.size} | {np.mean(s <= 0.5):.2f} |")
    shares = [float(np.mean(np.asarray(r["s64"]) <= 0.5)) for r in iso]
    lines += ["", f"Largest share on these uniform blurs: {max(shares):.2f} (shipped "
              f"`MISSED_FOCUS_MAX_SHARPER_SHARE` {MISSED_FOCUS_MAX_SHARPER_SHARE}); radii under "
              f"`MISSED_FOCUS_MIN_RADIUS_PX` {MISSED_FOCUS_MIN_RADIUS_PX}: "
              f"{sum(r['radius'] < MISSED_FOCUS_MIN_RADIUS_PX for r in iso)} of {len(iso)}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path("missed_focus.jsonl"))
    ap.add_argument("--step", type=int, default=14)
    ap.add_argument("--report", action="store_true", help="only print the table of the cached rows")
    args = ap.parse_args(argv)
    if not args.report:
        rows(args.cache, args.step)
    print(report(args.cache))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
