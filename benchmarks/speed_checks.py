"""The measurements behind this branch's speed changes, each before vs after in one process.

Checks (``--check``, several allowed; default all):

* ``windows``: FFDNet's CPU seconds per call on square windows of several sizes (one intra-op
  thread, interleaved, median of ``--repeats``): is its cost proportional to the window's pixels (so
  that fewer margin pixels per tile save in proportion)?
* ``feather``: FFDNet as the noise stage runs it (told the analysed σ map, with its half-resolution
  chroma pass) on a real noisy photo, with the tiles' old 12-px blend band and with none: CPU
  seconds of each (interleaved), the largest float difference, how many 8-bit values differ, and
  PSNR against the photo's ground truth (``--photo``/``--truth``: validation data, only read).
* ``channels``: the analysis' per-pixel channel min/max/mean, NumPy's ``axis=2`` reduce against the
  plane-by-plane helpers of ``engine.color``, on a photo: CPU seconds and equality.

Usage: ``python benchmarks/speed_checks.py [--check windows feather channels] [--repeats 4]``;
prints Markdown (paste into ``benchmarks/results/speed.md`` with the machine's load).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("RESTORA_SHARED") or REPO.parent / "shared")
FULLSIZE = SHARED / "data" / "pairs" / "noise_real_polyu_fullsize"


def windows(repeats: int, sizes=(464, 512, 536, 584)) -> list[str]:
    from engine.experts.published import _OnnxMapRunner

    runner = _OnnxMapRunner(REPO / "models" / "ffdnet-color.onnx", "cpu", 1)
    rng = np.random.default_rng(0)
    data = {n: (rng.random((1, 3, n, n), dtype=np.float32), np.full((1, 1, n, n), 0.03, np.float32)) for n in sizes}
    for n in sizes:
        runner(*data[n])
    cpu: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(repeats):
        for n in sizes:
            c = time.process_time()
            runner(*data[n])
            cpu[n].append(time.process_time() - c)
    lines = ["| window px | median CPU s per call | CPU s per window MP |", "|---|---|---|"]
    for n in sizes:
        m = float(np.median(cpu[n]))
        lines.append(f"| {n} x {n} | {m:.3f} | {m / (n * n / 1e6):.2f} |")
    return lines


def feather(repeats: int, photo: Path, truth: Path) -> list[str]:
    import engine.experts.published as published
    from engine.experts.base import ExpertContext
    from engine.experts.default import build_registry
    from engine.imageio.loading import load_photo
    from engine.imageio.quantize import quantize
    from engine.pipeline.job import Restorer
    from engine.pipeline.session import RestorationSession

    lq = load_photo(photo)
    gt = load_photo(truth).pixels
    registry = build_registry()
    session = Restorer(registry).session(lq.pixels, jpeg=lq.jpeg, metadata=lq.metadata)
    sigma = RestorationSession.noise_sigma(lq.pixels, session.analyse(), "noise")
    expert = registry.get("neural.ffdnet-color")
    mp = lq.pixels.shape[0] * lq.pixels.shape[1] / 1e6
    shipped = published.EXACT_TILE_FEATHER
    runs: dict[str, list[tuple[float, np.ndarray]]] = {"blend band 12 px (before)": [], "no blend band (after)": []}
    try:
        for _ in range(repeats):
            for name, band in (("blend band 12 px (before)", None), ("no blend band (after)", 0)):
                published.EXACT_TILE_FEATHER = band  # None: the tiler's default, overlap // 2
                c = time.process_time()
                out = expert.run(lq.pixels, ExpertContext(noise_sigma=sigma, jpeg=session.jpeg, strength=1.0))
                runs[name].append((time.process_time() - c, out))
    finally:
        published.EXACT_TILE_FEATHER = shipped
    (old_name, old), (new_name, new) = ((k, v[0][1]) for k, v in runs.items())
    q_old, q_new = quantize(old, 8).astype(np.int16), quantize(new, 8).astype(np.int16)

    def psnr(x: np.ndarray) -> float:
        return float(10 * np.log10(1.0 / np.mean((x.astype(np.float64) - gt) ** 2)))

    lines = [f"Photo: `{photo.name}` ({lq.pixels.shape[1]} x {lq.pixels.shape[0]}, {mp:.2f} MP), {repeats} run(s) "
             "each, interleaved.", "", "| tiles | CPU s per run | CPU s/MP (median) | PSNR vs truth, 8-bit dB |",
             "|---|---|---|---|"]
    for name, q in ((old_name, q_old), (new_name, q_new)):
        secs = [c for c, _ in runs[name]]
        lines.append(f"| {name} | {', '.join(f'{c:.1f}' for c in secs)} | {float(np.median(secs)) / mp:.2f} | "
                     f"{psnr(q / 255.0):.4f} |")
    lines += ["", f"- input PSNR vs truth: {psnr(lq.pixels):.4f} dB",
              f"- largest float difference between the two outputs: {float(np.abs(old - new).max()):.3g}",
              f"- 8-bit values that differ: {int((q_old != q_new).sum())} of {q_old.size} "
              f"(largest difference {int(np.abs(q_old - q_new).max())} level)",
              f"- each setting gives the same output every run: "
              f"{all(np.array_equal(v[0][1], o) for v in runs.values() for _, o in v)}"]
    return lines


def channels(repeats: int, photo: Path) -> list[str]:
    from engine.color import channel_max, channel_mean, channel_min
    from engine.imageio.loading import load_photo

    img = load_photo(photo).pixels if photo.is_file() else \
        np.random.default_rng(0).random((1856, 2784, 3), dtype=np.float32)
    pairs = {"min": (lambda a: a.min(axis=2), channel_min), "max": (lambda a: a.max(axis=2), channel_max),
             "mean": (lambda a: a.mean(axis=2), channel_mean)}
    lines = [f"Photo: `{photo.name if photo.is_file() else 'random'}` ({img.shape[1]} x {img.shape[0]}).", "",
             "| reduction | NumPy axis=2 CPU ms | plane by plane CPU ms | equal |", "|---|---|---|---|"]
    for name, (numpy_way, helper) in pairs.items():
        times = []
        for fn in (numpy_way, helper):
            c = time.process_time()
            for _ in range(repeats):
                out = fn(img)
            times.append((time.process_time() - c) / repeats * 1e3)
        lines.append(f"| {name} | {times[0]:.1f} | {times[1]:.1f} | {bool(np.array_equal(numpy_way(img), out))} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", nargs="*", default=["windows", "feather", "channels"])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--photo", type=Path, default=FULLSIZE / "lq" / "Canon5D2_chair.JPG")
    parser.add_argument("--truth", type=Path, default=FULLSIZE / "gt" / "Canon5D2_chair.JPG")
    args = parser.parse_args()
    print(f"load average at start: {[round(x, 1) for x in os.getloadavg()]}")
    for check in args.check:
        print(f"\n### {check}\n")
        if check == "windows":
            lines = windows(args.repeats)
        elif check == "feather":
            if not args.photo.is_file():
                print(f"skipped: {args.photo} is missing")
                continue
            lines = feather(max(1, args.repeats // 2), args.photo, args.truth)
        elif check == "channels":
            lines = channels(args.repeats, args.photo)
        else:
            print(f"unknown check {check!r}")
            return 2
        print("\n".join(lines), flush=True)
    print(f"\nload average at end: {[round(x, 1) for x in os.getloadavg()]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
