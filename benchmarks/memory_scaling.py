"""Peak memory of ``restora restore`` against the photo's size, for one or more code trees.

For each size (megapixels) a synthetic 3:2 photo is written once as an 8-bit PNG: smooth
gradients, edges and Gaussian noise σ 12/255, so that the analysis plans a denoising stage (the
default plan of a noisy photo: the bundled FFDNet at two strengths). Each code tree then restores
it with ``restora restore IN -o OUT --device cpu`` in a fresh process, started from a small
wrapper process that reports the child's peak resident set (``ru_maxrss`` of its children): the
whole CLI, Python and libraries included. ``RESTORA_MEMORY_BUDGET`` is set high so that the
refusal check does not stop the big sizes.

Usage: ``python benchmarks/memory_scaling.py [--sizes 6 12 24] [--tree before=DIR --tree after=DIR]
[--scene noisy|blurred] [--plan noise] [--cli-args "--only blur --no-generalist"] [--timeout 3000]
[--out benchmarks/results/memory-scaling.md]``. One restoration runs at a time, each after
``--min-free`` bytes per pixel are available; the results file is rewritten after every row.
``--plan noise`` is the plan a noisy photo gets, made sure of: the noise stage requested
(``--set noise=1 --no-generalist``: the bundled FFDNet with its chroma pass, not judged, so the
synthetic scene cannot have it dropped), whatever ``--cli-args`` adds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

_WRAPPER = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print("RESULT " + json.dumps({"rc": proc.returncode, "peak_bytes": peak, "seconds": time.perf_counter() - t0,
                              "stdout": proc.stdout[-4000:], "stderr": proc.stderr[-1500:]}))
"""


def write_photo(path: Path, megapixels: float, seed: int = 0, scene: str = "noisy") -> tuple[int, int]:
    """A synthetic 3:2 photo of about ``megapixels`` MP as an 8-bit PNG, built in row blocks
    (this process's memory does not matter, but the disk write should not need the float copy).
    ``scene`` ``"noisy"``: Gaussian noise σ 12/255; ``"blurred"``: the same scene under a 5×5
    box blur with noise σ 2/255; ``"sharp"``: noise σ 1/255 only (the classical deblurrer finds no
    blur in it: the cheapest stage that still makes a full-size output)."""
    import cv2
    from PIL import Image

    w = int(round(math.sqrt(megapixels * 1e6 * 1.5) / 8)) * 8
    h = int(round(w / 1.5 / 8)) * 8
    rng = np.random.default_rng(seed)
    out = np.empty((h, w, 3), np.uint8)
    x = np.arange(w, dtype=np.float32)[None, :]
    for top in range(0, h, 256):
        y = np.arange(top, min(top + 256, h), dtype=np.float32)[:, None]
        block = np.stack([0.2 + 0.6 * x / w + 0 * y, 0.2 + 0.6 * y / h + 0 * x,
                          0.5 + 0.2 * np.sin(x / 23.0) * np.cos(y / 17.0)], 2)
        block += ((np.floor(x / 96) + np.floor(y / 96)) % 2)[..., None] * 0.1
        if scene == "blurred":
            block = cv2.blur(block.astype(np.float32), (5, 5))
        sigma = {"blurred": 2.0, "sharp": 1.0}.get(scene, 12.0) / 255.0
        block += rng.normal(0.0, sigma, block.shape).astype(np.float32)
        out[top:top + len(y)] = np.clip(np.round(block * 255.0), 0, 255).astype(np.uint8)
    Image.fromarray(out).save(path, compress_level=1)
    return w, h


def measure(tree: Path, photo: Path, folder: Path, timeout: float, extra: list[str]) -> dict:
    out = folder / f"out-{tree.name}-{time.time_ns()}"
    cli = [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))",
           "restore", str(photo), "-o", str(out), "--device", "cpu", "--json", *extra]
    env = dict(os.environ, PYTHONPATH=str(tree), RESTORA_MEMORY_BUDGET="64G", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *cli], capture_output=True, text=True, env=env,
                          cwd=tree, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
            stages = []
            for js in result.pop("stdout").splitlines():
                if js.startswith("{"):
                    line = json.loads(js)["stages"]
                    stages = [s["stage"] + ("(dropped)" if s.get("dropped") else "") for s in line]
                    result["experts"] = [s["expert"] for s in line if s.get("expert")]
            result["stages"] = stages
            if result["rc"] != 0:
                result["error"] = result["stderr"][-500:]
            result.pop("stderr")
            return result
    raise RuntimeError(f"no result: {proc.stderr[-2000:]}")


def available_memory() -> int:
    """MemAvailable of /proc/meminfo in bytes (0 where it cannot be read)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def wait_for_memory(need: float, timeout: float) -> int:
    """Wait (up to ``timeout`` s) until ``need`` bytes are available, so that a big run neither
    starves the other users of a shared machine nor is measured while it swaps; returns the
    available bytes at the start."""
    t0 = time.monotonic()
    while (free := available_memory()) and free < need and time.monotonic() - t0 < timeout:
        print(f"waiting for {need / 2**30:.1f} GB available (now {free / 2**30:.1f} GB)", file=sys.stderr, flush=True)
        time.sleep(30)
    if free and free < need:
        raise RuntimeError(f"only {free / 2**30:.1f} GB available, {need / 2**30:.1f} GB needed")
    return free


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[6, 12, 24])
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--cli-args", default="", help="extra restore arguments, e.g. '--only noise'")
    parser.add_argument("--scene", choices=("noisy", "blurred", "sharp"), default="noisy")
    parser.add_argument("--plan", choices=("auto", "noise"), default="auto",
                        help="noise: request the noise stage alone (--set noise=1 --no-generalist)")
    parser.add_argument("--min-free", type=float, default=80.0,
                        help="bytes per pixel of available memory (MemAvailable) a run waits for before it starts")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "memory-scaling.md")
    parser.add_argument("--rows", type=Path, help="write --out from these measured rows (JSON, one a line) "
                        "with this checkout's predictions, measuring nothing")
    args = parser.parse_args()
    if args.plan == "noise":
        args.cli_args = " ".join(["--set noise=1 --no-generalist", args.cli_args]).strip()
    if args.rows:
        rows = [json.loads(line) for line in args.rows.read_text().splitlines() if line.startswith("{")]
        write(args.out, rows, os.getloadavg(), os.getloadavg(), [], args.cli_args, args.scene)
        print(args.out.read_text())
        return 0
    trees = [(t.split("=", 1)[0], Path(t.split("=", 1)[1]).resolve()) for t in args.tree] or [("current", REPO)]
    load0 = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("RESTORA_SCRATCH")) as tmp:
        folder = Path(tmp)
        for mp in args.sizes:
            photo = folder / f"synthetic-{mp:g}mp.png"
            w, h = write_photo(photo, mp, scene=args.scene)
            for name, tree in trees:
                free = wait_for_memory(args.min_free * w * h, args.timeout)
                r = measure(tree, photo, folder, args.timeout, args.cli_args.split())
                r.update({"tree": name, "megapixels": w * h / 1e6, "size": f"{w}x{h}", "available_before": free,
                          "load_before": os.getloadavg()[0]})
                if os.environ.get("RESTORA_CHANGE_BUDGET"):  # e.g. 1: every stage that can runs in place
                    r["change_budget"] = os.environ["RESTORA_CHANGE_BUDGET"]
                rows.append(r)
                write(args.out, rows, load0, os.getloadavg(), trees, args.cli_args, args.scene)  # so far
                print(f"{name} {w}x{h}: peak {r['peak_bytes'] / 2**30:.2f} GB, {r['seconds']:.0f} s, "
                      f"stages {r['stages']} {r.get('error', '')}", file=sys.stderr, flush=True)
            photo.unlink()
            for p in folder.glob("out-*"):
                for f in p.iterdir():
                    f.unlink()
                p.rmdir()
    write(args.out, rows, load0, os.getloadavg(), trees, args.cli_args, args.scene)
    print(args.out.read_text())
    return 0


def predict(row: dict) -> None:
    """Add what ``engine.pipeline.memory.estimate_bytes`` of this checkout predicts for the row's
    run (``predicted_bytes``, and ``estimate_args``: its arguments besides the size): the kept
    stages' experts, one cached change each, the default change budget (the run's
    ``RESTORA_CHANGE_BUDGET`` where it set one: ``change_budget``), in place where the expert
    can (not for a row with ``ran_in_place: false``: a tree that could not)."""
    sys.path.insert(0, str(REPO))
    from engine.experts.default import build_registry
    from engine.pipeline.memory import estimate_bytes
    from engine.pipeline.memory import parse_size
    from engine.pipeline.spill import DEFAULT_CHANGE_BUDGET

    experts = row.get("experts", [])
    budget = parse_size(str(row["change_budget"])) if row.get("change_budget") else DEFAULT_CHANGE_BUDGET
    registry = build_registry(include_neural=True)
    in_place = [] if row.get("ran_in_place") is False else sorted(
        e for e in experts if e in {x.info.id for x in registry.all()}
        and getattr(registry.get(e), "run_in_place", None) is not None)
    args = {"experts": experts, "cached_changes": len(experts), "change_budget": budget,
            "in_place": in_place}
    w, h = (int(v) for v in row["size"].split("x"))
    row["estimate_args"], row["predicted_bytes"] = args, estimate_bytes(w, h, **args)


def write(out: Path, rows: list[dict], load0, load1, trees, cli_args: str = "", scene: str = "noisy") -> None:
    lines = ["# Peak memory of `restora restore` vs photo size", "",
             "Produced by `benchmarks/memory_scaling.py`: a synthetic noisy 8-bit PNG per size, restored by "
             "`restora restore --device cpu` in a fresh process per code tree; peak resident set of that "
             "process (`ru_maxrss`: Python, libraries and networks included).", "",
             f"- machine: {os.cpu_count()} cores, **shared and loaded** (load average {load0[0]:.1f} at start, "
             f"{load1[0]:.1f} at end); seconds are wall time under that load",
             f"- memory: {available_memory() / 2**30:.1f} GB available at the end of "
             f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GB",
             f"- trees: {', '.join(f'{n} = `{t}`' for n, t in trees)}; arguments: `restore IN -o OUT --device cpu "
             f"--json {cli_args}`; scene: {scene}", "",
             "| tree | photo | MP | peak RSS GB | bytes per pixel (peak / pixels) | predicted GB (this tree's "
             "estimate) | predicted / peak | seconds | stages |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        predict(r)
        lines.append(f"| {r['tree']} | {r['size']} | {r['megapixels']:.1f} | {r['peak_bytes'] / 2**30:.2f} | "
                     f"{r['peak_bytes'] / (r['megapixels'] * 1e6):.0f} | {r['predicted_bytes'] / 2**30:.2f} | "
                     f"{r['predicted_bytes'] / r['peak_bytes']:.2f} | {r['seconds']:.0f} | "
                     f"{', '.join(r['stages']) or r.get('error', '')} |")
    by_tree: dict[str, dict[float, float]] = {}
    for r in rows:
        by_tree.setdefault(r["tree"], {})[round(r["megapixels"])] = r["peak_bytes"]
    lines += [""]
    for name, peaks in by_tree.items():
        sizes = sorted(peaks)
        if len(sizes) >= 2:
            a, b = sizes[0], sizes[-1]
            slope = (peaks[b] - peaks[a]) / ((b - a) * 1e6)
            lines.append(f"- {name}: {slope:.0f} bytes per added pixel between {a} and {b} MP; "
                         f"peak ratio {b}/{a} MP = {peaks[b] / peaks[a]:.2f}")
    lines += ["", "Raw (one run a line):", "", "```json", *(json.dumps(r) for r in rows), "```", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
