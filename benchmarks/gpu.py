"""GPU inference settings for Restora's networks, against a plain reference tiled inference.

One command (``python benchmarks/gpu.py``) measures, for the bundled networks (FFDNet colour,
DnCNN colour, the conditioned generalist) and Real-ESRGAN x4plus (when its weights are in the
cache), on a synthetic photo (default 24 MP on a GPU, 0.05 MP on the CPU):

* ``reference``: the plain way: fp32, NCHW, one tile per call, pageable memory, every step in
  turn (copy in, run, copy out, paste); written here independently of the engine's tiler;
* ``engine``: what Restora runs (:func:`engine.runtime.tiling.run_tiled` with feathered
  blending, float32 numpy tiles through the network);
* variants of the reference changing one thing at a time: ``fp16`` / ``bf16`` weights and
  activations, ``channels_last`` memory format, tile edge, ``batch`` tiles per call, ``pinned``
  host buffers with asynchronous copies, and ``overlap``: the next batch's host-side work
  (cutting tiles out of the photo, copying them in) and the previous batch's (copying out,
  pasting into the output) done by worker threads while the device computes.

Every row records seconds, megapixels per second, peak device memory, and the largest absolute
difference and PSNR of its output against the reference's (a faster setting is only useful when
its output agrees). Variants that the device cannot run (fp16 on the CPU, pinned memory without
CUDA) are listed as skipped. Results: ``benchmarks/results/gpu.md`` (and ``.json``).

Usage: ``python benchmarks/gpu.py [--device auto|cuda|cpu] [--megapixels 24] [--networks
ffdnet,dncnn,generalist,realesrgan] [--tiles 256,512,1024] [--batches 1,4] [--out PATH]``
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: Context pixels each tile gets on every side (the networks' receptive radius, rounded up to 8).
OVERLAP = {"ffdnet": 24, "dncnn": 24, "generalist": 48, "realesrgan": 16}


@dataclass
class Network:
    name: str
    module: object  # torch.nn.Module: (N, 3, h, w) -> (N, 3, h*scale, w*scale)
    scale: int = 1
    multiple: int = 8
    note: str = ""


def load_networks(names: list[str], device: str) -> tuple[list[Network], list[str]]:
    """The networks asked for, as torch modules on ``device`` in fp32; and why others are missing."""
    import torch

    from engine.convert.published import load_converted

    models = REPO / "models"
    found, missing = [], []
    for name in names:
        try:
            if name == "ffdnet":
                net = load_converted("FFDNet", models / "ffdnet-color.safetensors")

                class WithSigma(torch.nn.Module):  # a uniform σ 15/255 map, as the app tells it
                    def __init__(self, inner):
                        super().__init__()
                        self.inner = inner

                    def forward(self, x):
                        return self.inner(x, torch.full_like(x[:, :1], 15.0 / 255.0))

                found.append(Network(name, WithSigma(net), note="σ 15/255"))
            elif name == "dncnn":
                found.append(Network(name, load_converted("DnCNN", models / "dncnn-color-blind.safetensors")))
            elif name == "generalist":
                from engine.nets.generalist import load_generalist

                gen = load_generalist(models / "restora-generalist-v2.safetensors")

                class Told(torch.nn.Module):  # told noise 0.6 and blur 0.4, the rest 0
                    def __init__(self, inner):
                        super().__init__()
                        self.inner = inner

                    def forward(self, x):
                        cond = torch.zeros(x.shape[0], 6, device=x.device, dtype=x.dtype)
                        cond[:, 0], cond[:, 1] = 0.6, 0.4
                        return self.inner(x, cond)

                found.append(Network(name, Told(gen), note="told noise 0.6, blur 0.4"))
            elif name == "realesrgan":
                from engine.runtime.torch_backend import load_image_model
                from engine.weights.manager import WeightsManager

                path = WeightsManager().path_for("realesrgan-x4plus")
                if path is None:
                    missing.append("realesrgan (realesrgan-x4plus is not in the weights cache)")
                    continue
                descriptor = load_image_model(path)
                found.append(Network(name, descriptor.model, scale=int(descriptor.scale)))
            else:
                missing.append(f"{name} (unknown network)")
                continue
        except Exception as err:  # noqa: BLE001 - a network that cannot load is reported, the rest run
            missing.append(f"{name} ({type(err).__name__}: {err})")
    for net in found:
        net.module.to(device).eval()
    return found, missing


def synthetic_photo(megapixels: float, multiple: int = 8, seed: int = 0) -> np.ndarray:
    """A deterministic 3:2 float32 photo of about ``megapixels`` MP: gradients, texture, edges,
    and Gaussian noise σ 10/255 (so that denoisers have work)."""
    w = max(multiple, int(round(math.sqrt(megapixels * 1e6 * 1.5) / multiple)) * multiple)
    h = max(multiple, int(round(w / 1.5 / multiple)) * multiple)
    rng = np.random.default_rng(seed)
    out = np.empty((h, w, 3), np.float32)
    x = np.arange(w, dtype=np.float32)[None, :]
    for top in range(0, h, 512):
        y = np.arange(top, min(top + 512, h), dtype=np.float32)[:, None]
        block = np.stack([x / w + 0 * y, y / h + 0 * x, 0.5 + 0.25 * np.sin(x / 9.0) * np.cos(y / 13.0)], 2)
        block += ((np.floor(x / 64) + np.floor(y / 64)) % 2)[..., None] * 0.15
        block += rng.normal(0.0, 10.0 / 255.0, block.shape).astype(np.float32)
        out[top:top + len(y)] = np.clip(block * 0.8, 0.0, 1.0)
    return out


# ------------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class Setting:
    name: str
    dtype: str = "fp32"
    channels_last: bool = False
    tile: int = 512
    batch: int = 1
    pinned: bool = False
    overlap: bool = False
    engine: bool = False


@dataclass
class Row:
    network: str
    setting: str
    seconds: float = float("nan")
    mp_per_s: float = float("nan")
    peak_mb: float = float("nan")
    max_abs_diff: float = float("nan")
    psnr_vs_reference: float = float("nan")
    skipped: str = ""
    details: dict = field(default_factory=dict)


def tile_grid(h: int, w: int, tile: int) -> list[tuple[int, int, int, int]]:
    """Cores ``(y0, y1, x0, x1)`` partitioning the photo into tiles of at most ``tile``."""
    return [(y, min(y + tile, h), x, min(x + tile, w)) for y in range(0, h, tile) for x in range(0, w, tile)]


def _torch_dtype(name: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def tiled(net: Network, photo: np.ndarray, s: Setting, device: str) -> np.ndarray:
    """The photo through ``net`` tile by tile: each core grown by the network's overlap (edge
    replicated), run, the core's output pasted. With ``s.batch`` windows per call (all windows
    of a batch padded to the tile's window size), ``pinned`` page-locked staging buffers and
    non-blocking copies, ``overlap`` worker threads preparing the next batch and pasting the
    previous one while the device runs the current one."""
    import torch

    h, w, _ = photo.shape
    pad = OVERLAP.get(net.name, 16)
    m = net.multiple
    win = s.tile + 2 * pad
    win = -(-win // m) * m
    dtype = _torch_dtype(s.dtype)
    padded = np.pad(photo, ((pad, win), (pad, win), (0, 0)), mode="edge")
    out = np.zeros((h * net.scale, w * net.scale, 3), np.float32)
    cores = tile_grid(h, w, s.tile)
    batches = [cores[i:i + s.batch] for i in range(0, len(cores), s.batch)]
    module = net.module
    memory_format = torch.channels_last if s.channels_last else torch.contiguous_format

    def prepare(batch):
        host = np.stack([padded[y0:y0 + win, x0:x0 + win].transpose(2, 0, 1) for y0, _, x0, _ in batch])
        t = torch.from_numpy(host)
        if s.pinned:
            t = t.pin_memory()
        return batch, t

    def paste(batch, y_host):
        for i, (y0, y1, x0, x1) in enumerate(batch):
            sc = net.scale
            core = y_host[i, :, pad * sc:(pad + y1 - y0) * sc, pad * sc:(pad + x1 - x0) * sc]
            out[y0 * sc:y1 * sc, x0 * sc:x1 * sc] = core.transpose(1, 2, 0)

    def compute(t):
        with torch.inference_mode():
            x = t.to(device, non_blocking=s.pinned).to(dtype).contiguous(memory_format=memory_format)
            y = module(x).float()
            return y.to("cpu", non_blocking=False).numpy()

    if not s.overlap:
        for batch in batches:
            b, t = prepare(batch)
            paste(b, compute(t))
        return out
    ready: "queue.Queue" = queue.Queue(maxsize=2)
    done: "queue.Queue" = queue.Queue(maxsize=2)

    def producer():
        for batch in batches:
            ready.put(prepare(batch))
        ready.put(None)

    def consumer():
        while (item := done.get()) is not None:
            paste(*item)

    threads = [threading.Thread(target=producer, daemon=True), threading.Thread(target=consumer, daemon=True)]
    for th in threads:
        th.start()
    while (item := ready.get()) is not None:
        b, t = item
        done.put((b, compute(t)))
    done.put(None)
    for th in threads:
        th.join()
    return out


def engine_tiled(net: Network, photo: np.ndarray, s: Setting, device: str) -> np.ndarray:
    """The app's tiler (feathered blending) around the same module, float32."""
    import torch

    from engine.runtime.tiling import FixedTiles, run_tiled

    def fn(tile: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net.module(torch.from_numpy(tile).to(device)).float().cpu().numpy()

    return run_tiled(photo, fn, scale=net.scale, size_multiple=net.multiple, overlap=OVERLAP.get(net.name, 16),
                     strategy=FixedTiles(s.tile))


def supported(s: Setting, device: str) -> str:
    """Why ``s`` cannot run on ``device`` ('' when it can)."""
    import torch

    if s.pinned and device != "cuda":
        return "pinned memory needs CUDA"
    if s.dtype == "fp16" and device == "cpu":
        return "fp16 convolutions are not worth it (or not implemented) on the CPU"
    if s.dtype == "bf16" and device == "cuda" and not torch.cuda.is_bf16_supported():
        return "this GPU has no bf16"
    return ""


def settings_for(tiles: list[int], batches: list[int], base_tile: int) -> list[Setting]:
    out = [Setting("reference", tile=base_tile), Setting("engine", tile=base_tile, engine=True),
           Setting("fp16", dtype="fp16", tile=base_tile), Setting("bf16", dtype="bf16", tile=base_tile),
           Setting("channels_last", channels_last=True, tile=base_tile)]
    out += [Setting(f"tile {t}", tile=t) for t in tiles if t != base_tile]
    out += [Setting(f"batch {b}", batch=b, tile=base_tile) for b in batches if b != 1]
    out += [Setting("pinned", pinned=True, tile=base_tile), Setting("overlap", overlap=True, tile=base_tile),
            Setting("best guess: fp16 + channels_last + batch 4 + pinned + overlap", dtype="fp16",
                    channels_last=True, batch=4, pinned=True, overlap=True, tile=base_tile)]
    return out


def measure(net: Network, photo: np.ndarray, s: Setting, device: str,
            reference: Optional[np.ndarray]) -> tuple[Row, np.ndarray]:
    import torch

    row = Row(net.name, s.name)
    why = supported(s, device)
    if why:
        row.skipped = why
        return row, reference
    dtype = _torch_dtype(s.dtype)
    if s.dtype != "fp32":  # a converted copy: rounding the weights in place would change every later row
        net = Network(net.name, copy.deepcopy(net.module).to(dtype), net.scale, net.multiple, net.note)
    try:
        run: Callable = engine_tiled if s.engine else tiled
        small = photo[:64, :64]
        run(net, small, s, device)  # warm-up: kernels, allocator, cuDNN autotuning
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        out = run(net, photo, s, device)
        if device == "cuda":
            torch.cuda.synchronize()
            row.peak_mb = torch.cuda.max_memory_allocated() / 2**20
        row.seconds = time.perf_counter() - t0
    except Exception as err:  # noqa: BLE001 - one setting failing (out of memory, no kernel) is a result too
        row.skipped = f"failed: {type(err).__name__}: {' '.join(str(err).split())[:160]}"
        return row, reference
    row.mp_per_s = photo.shape[0] * photo.shape[1] / 1e6 / row.seconds
    if reference is None:
        reference = out
    # the photo's border band is left out: the reference replicates edges where the engine reflects
    b = OVERLAP.get(net.name, 16) * net.scale
    inner = (slice(b, -b or None), slice(b, -b or None))
    diff = np.abs(np.clip(out[inner], 0, 1) - np.clip(reference[inner], 0, 1))
    row.max_abs_diff = float(diff.max())
    mse = float(np.mean(diff.astype(np.float64) ** 2))
    row.psnr_vs_reference = float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)
    return row, reference


def machine(device: str) -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "device": device,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_avg": [round(x, 1) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None}
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        info["gpu"] = f"{p.name}, {p.total_memory / 2**30:.0f} GiB"
    return info


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu", "mps"))
    parser.add_argument("--megapixels", type=float, default=None, help="default 24 on a GPU, 0.05 on the CPU")
    parser.add_argument("--networks", default="ffdnet,dncnn,generalist,realesrgan")
    parser.add_argument("--tiles", default=None, help="tile edges to try (default 256,512,1024; CPU 64,128)")
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--settings", default=None,
                        help="comma-separated setting names to run (default all; the reference always runs)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "gpu.md")
    args = parser.parse_args(argv)
    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    mp = args.megapixels if args.megapixels is not None else (24.0 if device == "cuda" else 0.05)
    tiles = [int(t) for t in (args.tiles or ("256,512,1024" if device == "cuda" else "64,128")).split(",")]
    base_tile = 512 if 512 in tiles else tiles[-1]
    batches = [int(b) for b in args.batches.split(",")]
    if device == "cpu":
        torch.set_num_threads(max(1, min(os.cpu_count() or 1, 2)))
    start = machine(device)
    networks, missing = load_networks([n.strip() for n in args.networks.split(",") if n.strip()], device)
    rows: list[Row] = []
    for net in networks:
        photo = synthetic_photo(mp if net.scale == 1 else mp / 4, net.multiple)
        reference = None
        chosen = None if args.settings is None else {x.strip() for x in args.settings.split(",")} | {"reference"}
        for s in settings_for(tiles, batches, base_tile):
            if chosen is not None and s.name not in chosen:
                continue
            row, reference = measure(net, photo, s, device, reference)
            row.details = {"photo": f"{photo.shape[1]}x{photo.shape[0]}", "tile": s.tile, "batch": s.batch}
            rows.append(row)
            print(f"{net.name:10s} {s.name:28s} "
                  + (row.skipped or f"{row.seconds:8.2f} s {row.mp_per_s:8.3f} MP/s diff {row.max_abs_diff:.2e}"),
                  file=sys.stderr, flush=True)
    write(args.out, rows, start, machine(device), mp, missing, networks)
    return 0


def write(out: Path, rows: list[Row], start: dict, end: dict, mp: float, missing: list[str], networks) -> None:
    gpu = start.get("gpu", "none")
    lines = ["# GPU inference settings vs a plain tiled reference", "",
             "Produced by `benchmarks/gpu.py`. Each network's reference (fp32, NCHW, one tile a call, pageable "
             "memory, sequential) and each variant run on the same synthetic photo in the same process; "
             "`max abs diff` and `PSNR` compare a variant's output with the reference's away from the photo's "
             "border (the reference replicates edges, the engine reflects them).", "",
             f"- device: **{start['device']}** ({gpu}); torch {start['torch']}, Python {start['python']}, "
             f"{start['cores']} CPU cores, load average {start['load_avg']} at start, {end['load_avg']} at end",
             f"- photo: synthetic, about {mp:g} MP (Real-ESRGAN: a quarter of that, its output is 16x larger)",
             f"- networks: {', '.join(f'{n.name} ({n.note})' if n.note else n.name for n in networks)}"
             + (f"; not run: {'; '.join(missing)}" if missing else ""), ""]
    if start["device"] != "cuda":
        lines += ["**No GPU was used for this file**: it is the CPU run at a small size that checks the script; "
                  "fp16 and pinned memory are skipped there. Run `python benchmarks/gpu.py` on a CUDA machine "
                  "for the real numbers.", ""]
    lines += ["| network | setting | photo | s | MP/s | peak device MB | max abs diff | PSNR vs reference dB | note |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.network} | {r.setting} | {r.details.get('photo', '')} | {r.seconds:.2f} | "
                     f"{r.mp_per_s:.3f} | {r.peak_mb:.0f} | {r.max_abs_diff:.2e} | {r.psnr_vs_reference:.1f} | "
                     f"{r.skipped} |")
    lines += ["", "Raw:", "", "```json",
              json.dumps({"start": start, "end": end, "rows": [r.__dict__ for r in rows]}, indent=1, default=str),
              "```", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
