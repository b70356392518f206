"""The real PolyU crops through the real CLI: JPEG in, JPEG out, scored as a user gets the file.

Runs ``<repo>/.venv/bin/restora restore <crops> -o OUT/img --overwrite --json`` (``--code DIR`` puts another
checkout's ``engine`` first on ``PYTHONPATH``, e.g. a ``git archive`` of main, to measure the code before a
change with the same environment), then scores every saved output against its ground truth (PSNR on the 8-bit
files, dB), with the input's PSNR, the noise severity the CLI reported and the stages kept. ``--baseline
ROWS.json`` (a previous run's ``rows.json``) adds each crop's change against it.

``--gray``: the crops made black and white first (noisy and ground truth alike: the mean of R, G and B,
rounded, saved as 8-bit gray PNG under ``OUT/gray``): real camera noise in a gray photo, which is what the
black-and-white rules (no haze verdict, FFDNet told σ·√3) are measured on. With ``--oracle``, beside the plan:
the bundled FFDNet run alone on every gray crop at each σ of a grid, and the best single σ for the whole set
(an oracle: chosen knowing the ground truth), the published method to compare with.

Validation only: ``../shared/data/pairs/noise_real_polyu_crops`` is never fitted on.

Run: ``OMP_NUM_THREADS=1 nice -n 10 python benchmarks/polyu_cli.py OUT [--names a.JPG,b.JPG] [--code DIR]
[--baseline ROWS.json] [--gray]`` (the CLI run is skipped when ``OUT/run.jsonl`` exists).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

SHARED = Path(os.environ.get("RESTORA_SHARED") or ROOT.parent / "shared")
CROPS = SHARED / "data" / "pairs" / "noise_real_polyu_crops"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    m = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / m))


def make_gray(out: Path) -> Path:
    """The crops and their ground truths in black and white under ``out/gray`` (module docs)."""
    from PIL import Image

    gray = out / "gray"
    for part in ("lq", "gt"):
        (gray / part).mkdir(parents=True, exist_ok=True)
        for path in sorted((CROPS / part).iterdir()):
            pixels = np.asarray(Image.open(path).convert("RGB"), np.float64).mean(axis=2)
            Image.fromarray(np.round(pixels).astype(np.uint8)).save(gray / part / f"{path.stem}.png")
    return gray


def run_cli(out: Path, names: list[str] | None, code: Path | None, crops: Path = CROPS) -> Path:
    jl = out / "run.jsonl"
    if jl.exists():
        return jl
    out.mkdir(parents=True, exist_ok=True)
    inputs = [str(crops / "lq" / n) for n in names] if names else [str(crops / "lq")]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    if code is not None:
        env["PYTHONPATH"] = str(code)
    r = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", "import sys; from engine.cli import main; "
                        "sys.exit(main())", "restore", *inputs,
                        "-o", str(out / "img"), "--overwrite", "--json"],
                       capture_output=True, text=True, env=env, cwd=str(code or ROOT))
    jl.write_text(r.stdout)
    (out / "stderr.txt").write_text(r.stderr)
    return jl


def score(jl: Path, crops: Path = CROPS) -> list[dict]:
    from PIL import Image

    rows = []
    for line in jl.read_text().splitlines():
        if not line.startswith("{"):
            continue
        d = json.loads(line)
        name = Path(d["input"]).name
        gt = np.asarray(Image.open(crops / "gt" / name).convert("RGB"))
        lq = np.asarray(Image.open(crops / "lq" / name).convert("RGB"))
        o = np.asarray(Image.open(d["output"]).convert("RGB"))
        kept = [s["stage"] for s in d["stages"] if not s["dropped"]]
        rows.append({"name": name, "inp": psnr(lq, gt), "out": psnr(o, gt), "kept": kept,
                     "noise": d["report"]["noise"], "noise_stage": "noise" in kept})
    return rows


def oracle(crops: Path, sigmas=(2, 3, 4, 6, 8, 10, 12, 15)) -> str:
    """Mean and worst gain of the bundled FFDNet told each σ of ``sigmas`` (8-bit levels, before its
    black-and-white gain) on every crop of ``crops``, and the best single σ (module docs)."""
    from PIL import Image

    from engine.experts.base import ExpertContext
    from engine.experts.published import FFDNetExpert

    ffdnet = FFDNetExpert(ROOT / "models" / "ffdnet-color.onnx", model_id="ffdnet-color", threads=1)
    gains = {s: [] for s in sigmas}
    for path in sorted((crops / "lq").iterdir()):
        lq = np.asarray(Image.open(path).convert("RGB"))
        gt = np.asarray(Image.open(crops / "gt" / path.name).convert("RGB"))
        for s in sigmas:
            out = ffdnet.run(lq.astype(np.float32) / 255.0, ExpertContext(noise_sigma=np.float32(s / 255.0)))
            out8 = np.round(np.clip(out.mean(axis=2, keepdims=True), 0, 1) * 255.0).repeat(3, axis=2)
            gains[s].append(psnr(out8, gt) - psnr(lq, gt))
    lines = [f"FFDNet told σ {s}: mean {np.mean(g):+.3f} worst {min(g):+.3f} worse {sum(x < 0 for x in g)}"
             for s, g in gains.items()]
    best = max(gains, key=lambda s: np.mean(gains[s]))
    return "\n".join(lines + [f"best single σ for the set: {best}"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--names", default=None)
    ap.add_argument("--code", type=Path, default=None)
    ap.add_argument("--baseline", type=Path, default=None)
    ap.add_argument("--gray", action="store_true", help="the crops made black and white (module docs)")
    ap.add_argument("--oracle", action="store_true", help="also FFDNet told each σ of a grid (module docs)")
    args = ap.parse_args(argv)
    crops = make_gray(args.out) if args.gray else CROPS
    rows = score(run_cli(args.out, args.names.split(",") if args.names else None, args.code, crops), crops)
    base = {r["name"]: r for r in json.loads(args.baseline.read_text())} if args.baseline else {}
    for r in rows:
        b = base.get(r["name"])
        r["change"] = r["out"] - b["out"] if b else None
        print(f"{r['name']:45s} {r['inp']:6.2f} {r['out']:6.2f} {r['out'] - r['inp']:+6.2f} noise={r['noise']:.2f} "
              f"kept={','.join(r['kept'])}" + (f" vs baseline {r['change']:+.2f}" if b else ""))
    g = np.array([r["out"] - r["inp"] for r in rows])
    det = np.mean([r["noise"] >= 0.15 or r["noise_stage"] for r in rows])
    print(f"n={len(rows)} mean gain {g.mean():+.3f} worst {g.min():+.3f} worse {int((g < 0).sum())} "
          f"noise found {100 * det:.0f} %")
    (args.out / "rows.json").write_text(json.dumps(rows, indent=1))
    if args.oracle:
        print(oracle(crops))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
