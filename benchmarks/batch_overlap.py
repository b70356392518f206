"""A batch's wall time with and without overlapping files (decode ahead, encode behind).

One process restores the same inputs into two folders per round: ``sequential`` (``Batch.run_item``
file after file: decode, restore, encode) and ``overlapped`` (``Batch.run_overlapped``: the next
file decodes and the last one encodes in the background while one is restored), alternating
which goes first, after a warm-up. Also recorded: the seconds decoding and encoding took
(``load_photo`` / ``save_photo`` timed in the sequential run), i.e. the most overlap can hide.
Outputs of both modes are compared byte for byte.

Inputs: ``--count`` clean photos of ``../shared/data/clean`` (training data, only read) resized to
``--megapixels`` and written as JPEG to a scratch folder; options: ``--plan`` ``default`` (the
analysis' plan) or ``noise`` (only the FFDNet denoiser, a light plan where I/O weighs more); the
outputs are PNG.

Usage: ``python benchmarks/batch_overlap.py [--count 4] [--megapixels 3] [--plan noise] [--rounds 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _host import cpu_model, report  # benchmarks/_host.py, beside this script

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("RESTORA_SHARED") or REPO.parent / "shared")
CLEAN = SHARED / "data" / "clean"
SCRATCH = Path(os.environ.get("RESTORA_SCRATCH", "/tmp")) / "restora-batch-overlap"


def make_inputs(count: int, megapixels: float) -> list[Path]:
    folder = SCRATCH / "in"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    files = sorted(CLEAN.glob("*.jpg"))[:count]
    out = []
    for i, f in enumerate(files):
        im = Image.open(f).convert("RGB")
        k = (megapixels * 1e6 / (im.width * im.height)) ** 0.5
        im = im.resize((int(im.width * k) // 2 * 2, int(im.height * k) // 2 * 2), Image.LANCZOS)
        rng = np.random.default_rng(i)
        noisy = np.clip(np.asarray(im, np.float32) + rng.normal(0, 8, (im.height, im.width, 3)), 0, 255)
        path = folder / f"{i:02d}_{f.stem}.jpg"
        Image.fromarray(noisy.astype(np.uint8)).save(path, quality=92)
        out.append(path)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--megapixels", type=float, default=3.0)
    parser.add_argument("--plan", choices=("default", "noise"), default="noise")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "batch-overlap.md")
    args = parser.parse_args()
    if not CLEAN.is_dir():
        print(f"no inputs: {CLEAN} is missing", file=sys.stderr)
        return 2
    import engine.imageio as imageio
    from engine.experts.default import build_registry
    from engine.imageio import is_supported
    from engine.pipeline import Restorer
    from engine.pipeline.batch import Batch
    from engine.pipeline.job import RestoreOptions
    from engine.progress import Progress

    load_start = [round(x, 1) for x in os.getloadavg()]
    inputs = make_inputs(args.count, args.megapixels)
    options = RestoreOptions(fmt="png", overwrite=True) if args.plan == "default" else RestoreOptions(
        auto=False, strengths={"noise": 1.0}, experts={"noise": "neural.ffdnet-color"}, fmt="png", overwrite=True)
    restorer = Restorer(build_registry())
    warm = Batch.collect(inputs[:1], SCRATCH / "warm", options, is_supported)
    warm.run_item(restorer, warm.items[0])

    io = {"load_s": 0.0, "save_s": 0.0}
    real_load, real_save = imageio.load_photo, imageio.save_photo

    def timed(fn, key):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                io[key] += time.perf_counter() - t0
        return wrapper

    def sequential(out: Path) -> list:
        batch = Batch.collect(inputs, out, options, is_supported)
        imageio.load_photo, imageio.save_photo = timed(real_load, "load_s"), timed(real_save, "save_s")
        try:
            return [batch.run_item(restorer, item) for item in batch.items]
        finally:
            imageio.load_photo, imageio.save_photo = real_load, real_save

    def overlapped(out: Path) -> list:
        batch = Batch.collect(inputs, out, options, is_supported)
        seen = []
        batch.run_overlapped(restorer, lambda i: Progress(), lambda i, r: seen.append(r))
        return seen

    modes = {"sequential": sequential, "overlapped": overlapped}
    times: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    identical = True
    for r in range(args.rounds):
        order = list(modes) if r % 2 == 0 else list(modes)[::-1]
        outputs = {}
        for m in order:
            out = SCRATCH / f"out-{m}"
            shutil.rmtree(out, ignore_errors=True)
            c0, t0 = time.process_time(), time.perf_counter()
            results = modes[m](out)
            times[m].append(time.perf_counter() - t0)
            cpu[m].append(time.process_time() - c0)
            assert all(x.error is None for x in results), [x.error for x in results]
            outputs[m] = [x.output.read_bytes() for x in results]
            print(f"round {r + 1} {m}: {times[m][-1]:.1f} s", file=sys.stderr, flush=True)
        identical &= outputs["sequential"] == outputs["overlapped"]
    mp = sum(Image.open(p).width * Image.open(p).height for p in inputs) / 1e6
    load_end = [round(x, 1) for x in os.getloadavg()]
    raw = {"times_s": times, "cpu_s": cpu, "io_s_sequential_total": io, "rounds": args.rounds,
           "megapixels_total": mp, "identical": identical, "plan": args.plan}
    seq, ovl = np.median(times["sequential"]), np.median(times["overlapped"])
    io_per_round = (io["load_s"] + io["save_s"]) / args.rounds
    lines = ["# A batch with and without overlapping files (decode ahead, encode behind)", "",
             "Produced by `benchmarks/batch_overlap.py`: the same inputs restored file after file "
             "(`Batch.run_item`, what the CLI did) and overlapped (`Batch.run_overlapped`, what it does now), "
             f"in one process, {args.rounds} rounds alternating which goes first, after a warm-up.", "",
             f"- machine: {cpu_model()}, {os.cpu_count()} cores, **shared and loaded** (load average "
             f"{load_start} at start, {load_end} at end)",
             f"- inputs: {len(inputs)} JPEGs of {args.megapixels:g} MP (clean photos resized, noise added), "
             f"{mp:.1f} MP in all; plan: {args.plan}; outputs PNG",
             f"- outputs byte-identical between the modes: **{identical}**", "",
             "| mode | wall s (median) | wall s per round | CPU s per round | s/MP |", "|---|---|---|---|---|"]
    for m in modes:
        lines.append(f"| {m} | {np.median(times[m]):.1f} | {', '.join(f'{t:.1f}' for t in times[m])} | "
                     f"{', '.join(f'{t:.1f}' for t in cpu[m])} | {np.median(times[m]) / mp:.2f} |")
    lines += ["", f"Overlapped / sequential wall time: **{ovl / seq:.3f}** ({seq - ovl:+.1f} s per batch). "
              f"Decoding + encoding took {io_per_round:.1f} s per sequential batch "
              f"({io_per_round / seq:.1%} of it): the most the overlap can hide.", "",
              "Raw:", "", "```json", json.dumps(raw, indent=1), "```", ""]
    report("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
