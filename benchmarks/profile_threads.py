"""ONNX Runtime session settings for the bundled networks on this CPU: intra-op threads x
thread spinning, measured on the networks the default plan runs.

For each bundled ONNX network (FFDNet, the JPEG prior's DnCNN, IAT's local branch where its
inputs are simple) one session per setting runs the same 512x512 tile (a 560x560 window, as
the tiler makes on the CPU) ``--repeats`` times; settings are interleaved round by round so
that the machine's load hits them alike. Reported: median and worst seconds per call, and the
process CPU seconds per call (what the other programs on the machine lose).

Usage: ``python benchmarks/profile_threads.py [--repeats 6] [--out benchmarks/results/threads.md]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SETTINGS = [(1, True), (1, False), (2, True), (2, False)]


def feeds(session, side: int) -> dict:
    rng = np.random.default_rng(0)
    out = {}
    for inp in session.get_inputs():
        shape = [d if isinstance(d, int) else (side if i >= 2 else 1) for i, d in enumerate(inp.shape)]
        if inp.name == "sigma":
            out[inp.name] = np.full(shape, 0.05, np.float32)
        elif inp.name == "strengths":
            out[inp.name] = np.full(shape, 0.5, np.float32)
        else:
            out[inp.name] = rng.random(shape, dtype=np.float32)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--side", type=int, default=560)
    parser.add_argument("--models", nargs="*", default=["ffdnet-color.onnx", "dncnn-color-blind.onnx"])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "threads.md")
    args = parser.parse_args()
    import onnxruntime as ort

    from engine.runtime.onnx_backend import session_options

    load0 = os.getloadavg()
    rows = []
    for model in args.models:
        path = REPO / "models" / model
        sessions = {}
        for threads, spin in SETTINGS:
            sessions[(threads, spin)] = ort.InferenceSession(str(path), sess_options=session_options(threads, spin),
                                                             providers=["CPUExecutionProvider"])
        feed = feeds(next(iter(sessions.values())), args.side)
        for s in sessions.values():
            s.run(None, feed)  # warm-up
        wall: dict = {k: [] for k in sessions}
        cpu: dict = {k: [] for k in sessions}
        for r in range(args.repeats):
            order = SETTINGS if r % 2 == 0 else SETTINGS[::-1]
            for key in order:
                c0, t0 = time.process_time(), time.perf_counter()
                sessions[key].run(None, feed)
                wall[key].append(time.perf_counter() - t0)
                cpu[key].append(time.process_time() - c0)
        for key in SETTINGS:
            rows.append({"model": model, "threads": key[0], "spinning": key[1],
                         "median_s": statistics.median(wall[key]), "worst_s": max(wall[key]),
                         "cpu_s": statistics.median(cpu[key])})
            print(rows[-1], file=sys.stderr, flush=True)
    load1 = os.getloadavg()
    lines = ["# ONNX Runtime threads and spinning on this CPU", "",
             "Produced by `benchmarks/profile_threads.py`: one session per setting, the same "
             f"{args.side}x{args.side} window, {args.repeats} calls each, settings interleaved.", "",
             f"- machine: {os.cpu_count()} cores, **shared and loaded** (load average {load0[0]:.1f} at start, "
             f"{load1[0]:.1f} at end)", "",
             "| model | threads | spinning | median s/call | worst s/call | CPU s/call |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['threads']} | {'on' if r['spinning'] else 'off'} | {r['median_s']:.3f} | "
              f"{r['worst_s']:.3f} | {r['cpu_s']:.3f} |" for r in rows]
    lines += ["", "Raw:", "", "```json", json.dumps(rows, indent=1), "```", ""]
    args.out.write_text("\n".join(lines))
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
