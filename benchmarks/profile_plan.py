"""Where the default plan's time goes, per stage, and seconds per megapixel before/after a change.

Each code tree (``--tree NAME=DIR``, default: this checkout as ``current``) runs in its own
subprocess, one after the other and repeated ``--rounds`` times in alternation so that the
machine's load hits them alike. A subprocess builds the app's registry, warms up on a 64x64
photo, then restores every input with ``Restorer.restore_file`` (what ``restora restore IN -o
OUT`` does: load, analyse, plan, run, compose, save) under cProfile, timed in CPU seconds (process
time: on a shared, loaded machine wall time is mostly waiting for a core). Recorded per input: wall
and CPU seconds per megapixel, each stage's wall seconds (``StageResult.seconds``), a hash of the
saved pixels, the severities before and after and the stages kept; per tree: the cumulative CPU time
of the engine's main functions summed over inputs (the profile summary). With two trees, a table
says per input whether pixels, reports and stages are the same.

Inputs (``--inputs``): files; default the real noisy photos of
``../shared/data/pairs/noise_real_polyu_crops`` (``--limit`` of them, validation data: only read).

Usage: ``python benchmarks/profile_plan.py [--tree before=/path/to/old/checkout] [--tree after=.]
[--limit 6] [--rounds 2] [--out benchmarks/results/profile.md]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _host import cpu_model  # benchmarks/_host.py, beside this script

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RESTORA_SHARED") or REPO.parent / "shared")
CROPS = SHARED / "data" / "pairs" / "noise_real_polyu_crops" / "lq"

#: Functions whose cumulative time the summary lists (matched on ``file:function``).
WATCH = (
    ("imageio/loading.py", "load_photo"), ("imageio/saving.py", "save_photo"),
    ("analysis/learned.py", "analyse_default"), ("analysis/analyser.py", "analyse"),
    ("analysis/noise_level.py", "noise_sigma_for"), ("pipeline/session.py", "_run_stage"),
    ("pipeline/session.py", "_split_by_kind"), ("pipeline/session.py", "compose"),
    ("runtime/tiling.py", "run_tiled"), ("experts/published.py", "run"), ("experts/neural.py", "run_reduced"),
    ("experts/default.py", "build_registry"), ("pipeline/session.py", "run_stage"),
    ("experts/pnp_deblur.py", "run"), ("experts/pnp_deblur.py", "estimate"),
    ("experts/pnp_deblur.py", "hqs_deconvolve"),
    ("analysis/blur_kernel.py", "estimate_kernel"), ("experts/jpeg_restore.py", "run"),
    ("analysis/learned.py", "scores"), ("analysis/noise_level.py", "nlf_measurements"),
    ("analysis/measurements.py", "edge_width"), ("analysis/measurements.py", "haze_statistics"),
)

_CHILD = r"""
import cProfile, hashlib, json, pstats, sys, tempfile, time, resource
from pathlib import Path
t_import = time.perf_counter()
import numpy as np
from PIL import Image
from engine.experts.default import build_registry
from engine.pipeline.job import Restorer, RestoreOptions
watch, inputs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
registry = build_registry()
restorer = Restorer(registry)
import_s = time.perf_counter() - t_import
out = Path(tempfile.mkdtemp())
warm = out / "warm.png"
rng = np.random.default_rng(0)
Image.fromarray((np.clip(0.5 + rng.normal(0, 0.08, (64, 64, 3)), 0, 1) * 255).astype(np.uint8)).save(warm)
restorer.restore_file(warm, lambda p: out / "warm-out.png", RestoreOptions(overwrite=True))
prof = cProfile.Profile(time.process_time)  # CPU seconds: on a loaded machine wall time is mostly waiting
rows = []
for i, name in enumerate(inputs):
    src = Path(name)
    target = out / f"{i}{src.suffix}"
    prof.enable()
    t0, c0 = time.perf_counter(), time.process_time()
    result = restorer.restore_file(src, lambda p: target, RestoreOptions(overwrite=True))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    prof.disable()
    with Image.open(src) as im:
        mp = im.width * im.height / 1e6
    digest = None
    if result.error is None and target.exists():
        with Image.open(target) as im:
            digest = hashlib.sha256(im.tobytes()).hexdigest()[:16]
    rows.append({"input": src.name, "mp": mp, "seconds": wall, "cpu_seconds": cpu, "error": result.error,
                 "stages": [(s["stage"], s["seconds"], bool(s.get("dropped"))) for s in result.stages],
                 "pixels_sha256": digest, "report": result.report.severities() if result.report else None,
                 "report_after": result.report_after.severities() if result.report_after else None,
                 "reasons": [s.get("reason", "") for s in result.stages]})
stats = pstats.Stats(prof)
cum = {}
for (file, line, func), (cc, nc, tt, ct, callers) in stats.stats.items():
    for suffix, fn in watch:
        if file.endswith(suffix) and func == fn:
            key = f"{suffix}:{fn}"
            c = cum.setdefault(key, [0.0, 0])
            c[0] += ct; c[1] += nc
    if func in ("run",) and "onnxruntime" in file and "session" in file:
        c = cum.setdefault("onnxruntime InferenceSession.run", [0.0, 0]); c[0] += ct; c[1] += nc
top = sorted(((ct, nc, f"{Path(file).name}:{func}") for (file, line, func), (cc, nc, tt, ct, callers)
              in stats.stats.items()), reverse=True)
tot = sorted(((tt, nc, f"{Path(file).name}:{func}") for (file, line, func), (cc, nc, tt, ct, callers)
              in stats.stats.items()), reverse=True)[:15]
print("RESULT " + json.dumps({"rows": rows, "cum": cum, "import_s": import_s, "self_time": tot,
                              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def machine() -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "load_avg": [round(x, 1) for x in os.getloadavg()]}


def run_tree(tree: Path, inputs: list[str], timeout: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), HF_HUB_OFFLINE="1")
    env.pop("OMP_NUM_THREADS", None)  # the CLI's own thread choice is part of what is measured
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(WATCH), json.dumps(inputs)], cwd=tree,
                          capture_output=True, text=True, env=env, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{tree}: no result (rc {proc.returncode}): {proc.stderr[-2000:]}")


def summarise(name: str, runs: list[dict]) -> dict:
    rows = [r for run in runs for r in run["rows"] if not r["error"]]
    per_mp = [r["seconds"] / r["mp"] for r in rows]
    stages: dict[str, list[float]] = {}
    for r in rows:
        for stage, seconds, dropped in r["stages"]:
            stages.setdefault(stage + (" (dropped)" if dropped else ""), []).append(seconds / r["mp"])
    mp = sum(r["mp"] for r in rows)
    cum: dict[str, list[float]] = {}
    for run in runs:
        for k, (ct, nc) in run["cum"].items():
            c = cum.setdefault(k, [0.0, 0])
            c[0] += ct
            c[1] += nc
    cpu_per_mp = [r.get("cpu_seconds", float("nan")) / r["mp"] for r in rows]
    return {"name": name, "files": len(rows), "mp": mp, "s_per_mp_mean": sum(per_mp) / max(len(per_mp), 1),
            "cpu_s_per_mp_mean": sum(cpu_per_mp) / max(len(cpu_per_mp), 1),
            "cpu_s_per_mp_worst": max(cpu_per_mp, default=float("nan")),
            "cpu_s_per_mp_total": sum(r.get("cpu_seconds", float("nan")) for r in rows) / mp,
            "rows": rows,
            "per_file": [(r["input"], round(r["mp"], 2), round(r["seconds"] / r["mp"], 2),
                          round(r.get("cpu_seconds", float("nan")) / r["mp"], 2),
                          [s + (" (dropped)" if d else "") for s, _t, d in r["stages"]]) for r in rows],
            "s_per_mp_worst": max(per_mp, default=float("nan")), "s_per_mp_total": sum(r["seconds"] for r in rows) / mp,
            "stages": {k: sum(v) / len(v) for k, v in stages.items()},
            "cum_s_per_mp": {k: v[0] / mp for k, v in sorted(cum.items(), key=lambda kv: -kv[1][0])},
            "calls": {k: v[1] for k, v in cum.items()},
            "import_s": [run["import_s"] for run in runs], "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
            "self_time": runs[-1]["self_time"],
            "errors": [r["error"] for run in runs for r in run["rows"] if r["error"]]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--inputs", nargs="*", type=Path)
    parser.add_argument("--limit", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "profile.md")
    args = parser.parse_args()
    trees = [(t.split("=", 1)[0], Path(t.split("=", 1)[1]).resolve()) for t in args.tree] or [("current", REPO)]
    if args.inputs:
        inputs = [str(p.resolve()) for p in args.inputs]
    else:
        if not CROPS.is_dir():
            print(f"no inputs: {CROPS} is missing; pass --inputs", file=sys.stderr)
            return 2
        names = sorted(CROPS.iterdir())
        inputs = [str(p) for p in names[:: max(1, len(names) // args.limit)][: args.limit]]
    start = machine()
    runs: dict[str, list[dict]] = {name: [] for name, _ in trees}
    for r in range(args.rounds):
        for name, tree in (trees if r % 2 == 0 else trees[::-1]):
            t0 = time.perf_counter()
            runs[name].append(run_tree(tree, inputs, args.timeout))
            print(f"round {r + 1}: {name} {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    end = machine()
    summaries = [summarise(name, runs[name]) for name, _ in trees]
    write(args.out, summaries, start, end, inputs, args.rounds, trees)
    print(args.out.read_text())
    return 0


def write(out: Path, summaries: list[dict], start: dict, end: dict, inputs: list[str], rounds: int,
          trees: list[tuple[str, Path]]) -> None:
    lines = ["# Default plan: seconds per megapixel and where they go", "",
             "Produced by `benchmarks/profile_plan.py`: `Restorer.restore_file` (load, analyse, plan, run, compose, "
             "save: what `restora restore` does) under cProfile, after a warm-up, each code tree in its own "
             f"process, {rounds} rounds in alternation.", "",
             f"- machine: {start['cpu']}, {start['cores']} cores, **shared and loaded** (load average "
             f"{start['load_avg']} at start, {end['load_avg']} at end): absolute times are noisy, the trees "
             "were measured in the same run",
             f"- inputs: {len(inputs)} files ({', '.join(Path(i).name for i in inputs[:8])}"
             f"{' …' if len(inputs) > 8 else ''})",
             f"- trees: {', '.join(f'{n} = `{t}`' for n, t in trees)}", "",
             "| tree | files×rounds | wall s/MP mean | wall s/MP worst | total s / total MP | CPU s/MP mean "
             "| import + registry s | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        lines.append(f"| {s['name']} | {s['files']} | {s['s_per_mp_mean']:.2f} | {s['s_per_mp_worst']:.2f} | "
                     f"{s['s_per_mp_total']:.2f} | {s['cpu_s_per_mp_mean']:.2f} | "
                     f"{', '.join(f'{x:.1f}' for x in s['import_s'])} | {s['peak_rss_mb']:.0f} |")
    if len(summaries) > 1:
        first = summaries[0]
        lines += ["", f"Per file, each tree against {first['name']} (the same round): CPU s/MP, its ratio, and whether "
                  "the saved pixels, the reports (input and result severities) and the stages (kept or dropped) "
                  "are the same:", "",
                  "| file | MP | " + " | ".join(f"{s['name']} CPU s/MP" for s in summaries) + " | ratio | pixels | "
                  "reports | stages |", "|---|---|" + "---|" * (len(summaries) + 4)]
        for i, row in enumerate(first["rows"]):
            others = [s["rows"][i] if i < len(s["rows"]) else None for s in summaries]
            last = others[-1]
            if last is None:
                continue
            same = ["same" if last[k] == row[k] else "DIFFERENT" for k in ("pixels_sha256",)]
            same.append("same" if (last["report"], last["report_after"]) == (row["report"], row["report_after"])
                        else "DIFFERENT")
            same.append("same" if [(a, c) for a, _b, c in last["stages"]] == [(a, c) for a, _b, c in row["stages"]]
                        else "DIFFERENT")
            lines.append(f"| {row['input']} | {row['mp']:.2f} | " + " | ".join(
                f"{o['cpu_seconds'] / o['mp']:.2f}" if o else "–" for o in others)
                + f" | {last['cpu_seconds'] / row['cpu_seconds']:.2f} | " + " | ".join(same) + " |")
        lines += ["", "| tree | CPU s/MP mean over files | worst file | total CPU s / total MP |", "|---|---|---|---|"]
        lines += [f"| {s['name']} | {s['cpu_s_per_mp_mean']:.2f} | {s['cpu_s_per_mp_worst']:.2f} | "
                  f"{s['cpu_s_per_mp_total']:.2f} |" for s in summaries]
    lines += ["", "Per file (CPU s/MP = process time, all threads, per megapixel):", "",
              "| tree | file | MP | wall s/MP | CPU s/MP | stages |", "|---|---|---|---|---|---|"]
    for s in summaries:
        lines += [f"| {s['name']} | {f} | {mp} | {w} | {c} | {', '.join(st)} |" for f, mp, w, c, st in s["per_file"]]
    for s in summaries:
        lines += ["", f"## {s['name']}: seconds per MP per stage (mean over files)", "",
                  "| stage | s/MP |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in s["stages"].items()]
        lines += ["", f"Cumulative CPU time of the main functions ({s['name']}, CPU s per MP over all files, "
                  "calls):", "",
                  "| function | s/MP | calls |", "|---|---|---|"]
        lines += [f"| `{k}` | {v:.2f} | {s['calls'][k]} |" for k, v in s["cum_s_per_mp"].items()]
        lines += ["", "Largest self CPU times (last round): " +
                  "; ".join(f"`{n}` {t:.1f} s ({c} calls)" for t, c, n in s["self_time"][:8])]
        if s["errors"]:
            lines += ["", f"Errors: {s['errors']}"]
    lines += ["", "Raw:", "", "```json", json.dumps(summaries, indent=1), "```", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
