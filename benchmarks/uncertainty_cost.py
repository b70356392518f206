"""What ``restora restore --uncertainty`` costs on photos of a photographer's sizes (issue 15: the map
"must cost a bounded fraction of the restoration").

Each photo is restored twice through the real CLI, each run a fresh process, one after the other:
plain (``restore PHOTO -o DIR --json``) and with the map (``--uncertainty``: every stage's map and the
composed one, the 16-bit sidecar). Per run: the wall seconds of the whole process, the restoration
seconds the CLI reports (``seconds`` in its JSON: analysis, stages, maps), the process's peak resident
set (``wait4``'s ``ru_maxrss``: Python, the networks, the stage changes, the maps) and the stages kept.
The ratios (map run / plain run, same photo, back to back) are what to read on a shared machine.

Photos: ``--sizes`` makes ``window_memory.write_photo``'s synthetic photo (the bundled noisy cat
enlarged, noise σ 12/255 added, so the plan keeps a noise stage) at each size in megapixels;
``--photos`` adds real photos as they are (e.g. a full-size PolyU camera JPEG).

``--code DIR`` restores with another checkout's code (``DIR`` first on ``PYTHONPATH``, e.g. a ``git archive``
of the commit before a change), the same environment and photos: before and after, one command each.

Run: ``python benchmarks/uncertainty_cost.py [--sizes 5 12 24] [--photos P ...] [--code DIR]
[--out benchmarks/results/uncertainty-cost.md]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _host import cpu_model  # noqa: E402
from window_memory import write_photo  # noqa: E402


def run_cli(photo: Path, out: Path, uncertainty: bool, code: Path = REPO) -> dict:
    """One ``restora restore`` of ``photo`` into ``out`` in a fresh process, with the code of the
    checkout ``code``: wall seconds, peak RSS bytes and the CLI's JSON line."""
    cmd = [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())",
           "restore", str(photo), "-o", str(out), "--json", "--overwrite"] + (["--uncertainty"] if uncertainty else [])
    env = os.environ | {"PYTHONPATH": str(code)}
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, env=env, cwd=str(code))
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        text, err = stdout.read(), stderr.read()
    if proc.returncode != 0:
        raise RuntimeError(f"restore {photo.name} failed ({proc.returncode}): {err[-1500:]}")
    result = json.loads(text.strip().splitlines()[-1])
    return {"wall_s": wall, "peak_bytes": usage.ru_maxrss * 1024, "seconds": result["seconds"],
            "stages": [s["stage"] + (" (dropped)" if s.get("dropped") else "") for s in result["stages"]],
            "uncertainty": result.get("uncertainty")}


def measure(photo: Path, label: str, megapixels: float, work: Path, code: Path = REPO) -> dict:
    plain = run_cli(photo, work / "plain", uncertainty=False, code=code)
    mapped = run_cli(photo, work / "map", uncertainty=True, code=code)
    return {"photo": label, "mp": megapixels, "plain": plain, "map": mapped}


def table(rows: list[dict]) -> list[str]:
    lines = ["| photo | MP | stages | CLI s: plain / with map | ratio | wall s: plain / with map | "
             "peak RSS GB: plain / with map | ratio | extra bytes per pixel | map mean / p95 / share > 8 levels |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p, m = r["plain"], r["map"]
        u = m["uncertainty"] or {}
        summary = (f"{u['mean']:.1f} / {u['p95']:.1f} / {100 * u['fraction_above']:.0f} %" if u else "–")
        lines.append(
            f"| {r['photo']} | {r['mp']:.1f} | {', '.join(p['stages']) or 'none'} | "
            f"{p['seconds']:.1f} / {m['seconds']:.1f} | {m['seconds'] / p['seconds']:.2f} | "
            f"{p['wall_s']:.1f} / {m['wall_s']:.1f} | {p['peak_bytes'] / 1e9:.2f} / {m['peak_bytes'] / 1e9:.2f} | "
            f"{m['peak_bytes'] / p['peak_bytes']:.2f} | "
            f"{(m['peak_bytes'] - p['peak_bytes']) / (r['mp'] * 1e6):.0f} | {summary} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="*", default=[5, 12, 24], help="synthetic photos, megapixels")
    ap.add_argument("--photos", type=Path, nargs="*", default=[], help="real photos, restored as they are")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "uncertainty-cost.md")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    ap.add_argument("--code", type=Path, default=REPO, help="restore with this checkout's code (default: this one)")
    args = ap.parse_args(argv)
    from PIL import Image

    load0, t0 = os.getloadavg()[0], time.time()
    rows = []
    with tempfile.TemporaryDirectory(prefix="restora-uncertainty-cost-") as tmp:
        work = Path(tmp)
        for path in args.photos:
            with Image.open(path) as im:
                w, h = im.size
            rows.append(measure(path, f"{path.name} ({w}x{h})", w * h / 1e6, work, args.code))
            print(json.dumps(rows[-1]), flush=True)
        for mp in args.sizes:
            photo = work / f"synthetic-{mp:g}mp.png"
            w, h = write_photo(photo, mp)
            rows.append(measure(photo, f"synthetic {w}x{h}", w * h / 1e6, work, args.code))
            print(json.dumps(rows[-1]), flush=True)
            photo.unlink()
    load1 = os.getloadavg()[0]
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    sizes = " ".join(f"{s:g}" for s in args.sizes)
    lines = ["# What `restore --uncertainty` costs (issue 15)", "",
             "Produced by `" + (f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ
                                else "") + "python "
             f"benchmarks/uncertainty_cost.py --sizes {sizes}"
             + (f" --photos {' '.join(p.name for p in args.photos)}" if args.photos else "")
             + ("" if args.code == REPO else f" --code {args.code}") + "`: each photo "
             "restored by the real CLI twice, a fresh process each, back to back: plain, then with "
             "`--uncertainty` (every stage's map, the composed map, the 16-bit sidecar). \"CLI s\" is the "
             "`seconds` of the CLI's JSON (analysis, stages, maps); wall s the whole process (start-up, "
             "decoding, saving). Peak RSS: `ru_maxrss` of the process.", "",
             f"- machine: {cpu_model()}, {os.cpu_count()} logical cores, load average {load0:.1f} at the start, "
             f"{load1:.1f} at the end; {time.strftime('%Y-%m-%d %H:%M', time.gmtime(t0))}–"
             f"{time.strftime('%H:%M', time.gmtime())} UTC", ""] + table(rows)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
