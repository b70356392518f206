"""Headroom on the real PolyU crops that the default plan gives only the JPEG stage: what would a
different σ (FFDNet's, or the JPEG stage's prior's) be worth there? Validation measurement only:
nothing here is fitted, and nothing the engine does is chosen from it.

For every crop whose plan kept the JPEG stage and no noise stage (``--plan`` JSON lines written by
``restora restore FOLDER --json``, e.g. the lead's ``aH.json`` / ``bH.json``), against the ground
truth (``../shared/data/pairs/noise_real_polyu_crops/gt``), every output rounded to 8 bits as a
saved PNG would be (the CLI saves JPEG in → JPEG q95 out; the plan's saved file is scored too):

- ``jpeg``: the shipped JPEG stage (:class:`engine.experts.jpeg_restore.JpegQcpRestorer` with
  FFDNet, the file's tables), re-run here: the reference every variant is compared with;
- ``ffdnet@σ``: the registry's FFDNet expert (chroma pass included) on the decoded file, told a
  uniform σ from :data:`FFDNET_SIGMAS`; its per-crop best (oracle) and the best single σ for the set;
- ``jpeg+ffdnet@σ``: the JPEG stage, then the same FFDNet told a small σ (:data:`AFTER_SIGMAS`);
- ``jpeg×m``: the JPEG stage with its camera-save priors told m times their σ (luma
  ``CAMERA_LUMA_SIGMA_75`` and chroma ``CAMERA_CHROMA_SIGMA_GAIN`` both scaled, :data:`PRIOR_SCALES`).

``--save-cost``: what saving costs instead: for crops of the plan files (every ``--every``-th, noise-stage
and JPEG-stage crops alike) the default plan run in process (:class:`engine.pipeline.job.Restorer`), its
output scored as computed (8-bit) and as the CLI saves a JPEG input (JPEG q95, 4:4:4: ``engine.imageio``'s
``_write_jpeg`` options), and the plan's saved file from the run.

Chosen after seeing validation numbers (said here and in ``real-noise-headroom.md``): the σ grids were cut
from a first, wider run on 2 crops to fit the time, and ``--smaller-priors`` was added after the table showed
FFDNet alone beating the stage. Nothing here feeds the engine.

Run: ``nice -n 10 OMP_NUM_THREADS=1 python benchmarks/real_noise_headroom.py --plan aH.json bH.json
--cache DIR/rows.jsonl [--out benchmarks/results/real-noise-headroom.md]`` (resumable per crop).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_noise import PAIRS, ffdnet_expert, machine, metrics  # noqa: E402

from _host import load_rgb  # noqa: E402

FFDNET_SIGMAS = (3.0, 4.0, 6.0, 8.0, 10.0)
AFTER_SIGMAS = (2.0, 3.0, 4.0)
PRIOR_SCALES = (1.5, 2.0)
#: ``--smaller-priors``: the same with the priors told less (measured after the first run: FFDNet alone at
#: σ 6 beat the stage, so the stage's prior σ may be too large for these crops, not too small).
SMALL_PRIOR_SCALES = (0.5, 0.75)
GT = PAIRS / "noise_real_polyu_crops" / "gt"


def jpeg_only(plan_files: list[Path]) -> list[tuple[Path, Path]]:
    """(input, saved output) of every crop whose plan kept the JPEG stage and not the noise stage."""
    rows = []
    for f in plan_files:
        for line in f.read_text().splitlines():
            d = json.loads(line)
            kept = [s["stage"] for s in d.get("stages", []) if not s["dropped"]]
            if d.get("output") and "jpeg" in kept and "noise" not in kept:
                rows.append((Path(d["input"]), Path(d["output"])))
    return sorted(rows)


def measure(lq_path: Path, saved: Path, lean: bool = False) -> dict:
    from engine.experts import jpeg_restore as jr
    from engine.experts.base import ExpertContext
    from engine.experts.default import build_registry
    from engine.imageio import load_photo
    from engine.analysis.jpeg_tables import JpegSource

    photo = load_photo(lq_path)
    lq = np.ascontiguousarray(photo.pixels[..., :3], dtype=np.float32)
    source = JpegSource(photo.jpeg, photo.pixels)
    gt = load_rgb(GT / lq_path.name)
    jpeg = next(e for e in build_registry().for_task("jpeg") if isinstance(e, jr.JpegQcpRestorer))
    ffd = ffdnet_expert()
    row: dict = {"name": lq_path.name, "input": metrics(lq, gt)[0], "saved": metrics(load_rgb(saved), gt)[0]}
    j = jpeg.run(lq, ExpertContext(jpeg=source))
    row["jpeg"] = metrics(j, gt)[0]
    row["ffdnet"] = {} if lean else {
        s: metrics(ffd.run(lq, ExpertContext(noise_sigma=np.float32(s / 255), jpeg=source)), gt)[0]
        for s in FFDNET_SIGMAS}
    row["after"] = {} if lean else {s: metrics(ffd.run(j, ExpertContext(noise_sigma=np.float32(s / 255))), gt)[0]
                    for s in AFTER_SIGMAS}
    luma, chroma = jr.CAMERA_LUMA_SIGMA_75, jr.CAMERA_CHROMA_SIGMA_GAIN
    row["prior"] = {}
    try:
        for m in PRIOR_SCALES:
            jr.CAMERA_LUMA_SIGMA_75, jr.CAMERA_CHROMA_SIGMA_GAIN = luma * m, chroma * m
            row["prior"][m] = metrics(jpeg.run(lq, ExpertContext(jpeg=source)), gt)[0]
    finally:
        jr.CAMERA_LUMA_SIGMA_75, jr.CAMERA_CHROMA_SIGMA_GAIN = luma, chroma
    return row


def save_cost(plan_files: list[Path], every: int, cache: Path) -> list[str]:
    """Rows of (crop, stages kept, PSNR as computed, as saved at q95 4:4:4, the run's saved file)."""
    import io

    from PIL import Image

    from _host import q8
    from engine.experts.default import build_registry
    from engine.imageio import load_photo
    from engine.pipeline.job import Restorer, RestoreOptions

    items = []
    for f in plan_files:
        for line in f.read_text().splitlines():
            d = json.loads(line)
            if d.get("output"):
                items.append((Path(d["input"]), Path(d["output"]),
                              [s["stage"] for s in d["stages"] if not s["dropped"]]))
    items = sorted(items)[::every]
    done = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            d = json.loads(line)
            done[d["name"]] = d
    restorer = Restorer(build_registry())
    for lq_path, saved, kept in items:
        if lq_path.name in done:
            continue
        restored, _ = restorer.restore_photo(load_photo(lq_path), RestoreOptions())
        gt = load_rgb(GT / lq_path.name)
        u8 = (q8(restored.pixels[..., :3]) * 255 + 0.5).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(u8, "RGB").save(buf, format="JPEG", quality=95, subsampling=0)
        buf.seek(0)
        with Image.open(buf) as im:
            q95 = np.asarray(im.convert("RGB"), np.float32) / 255
        row = {"name": lq_path.name, "kept": kept, "input": metrics(load_rgb(lq_path), gt)[0],
               "computed": metrics(restored.pixels[..., :3], gt)[0], "q95": metrics(q95, gt)[0],
               "saved": metrics(load_rgb(saved), gt)[0]}
        done[row["name"]] = row
        with cache.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"{row['name']}: computed {row['computed'] - row['input']:+.2f} q95 {row['q95'] - row['input']:+.2f} "
              f"saved {row['saved'] - row['input']:+.2f} {kept}", file=sys.stderr, flush=True)
    rows = [done[p.name] for p, _, _ in items if p.name in done]
    out = ["| crop | stages kept | gain as computed | as saved (q95 4:4:4, here) | the run's saved file | save cost |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['name']} | {', '.join(r['kept'])} | {r['computed'] - r['input']:+.2f} | "
                   f"{r['q95'] - r['input']:+.2f} | {r['saved'] - r['input']:+.2f} | {r['q95'] - r['computed']:+.2f} |")
    groups = (("noise stage", lambda r: "noise" in r["kept"]),
              ("JPEG stage only", lambda r: "noise" not in r["kept"]), ("all", lambda r: True))
    for label, sel in groups:
        rs = [r for r in rows if sel(r)]
        if rs:
            c = np.array([r["q95"] - r["computed"] for r in rs])
            out.append(f"| **{label}** (n={len(rs)}) | | {np.mean([r['computed'] - r['input'] for r in rs]):+.2f} | "
                       f"{np.mean([r['q95'] - r['input'] for r in rs]):+.2f} | "
                       f"{np.mean([r['saved'] - r['input'] for r in rs]):+.2f} | "
                       f"{c.mean():+.2f} (worst {c.min():+.2f}) |")
    return out


def report(rows: list[dict], n_all: int, plan_mean_all: float) -> list[str]:
    j = np.array([r["jpeg"] for r in rows])
    inp = np.array([r["input"] for r in rows])
    saved = np.array([r["saved"] for r in rows])

    def line(label: str, psnr: np.ndarray) -> str:
        d = psnr - j
        g = psnr - inp
        return (f"| {label} | {g.mean():+.2f} | {g.min():+.2f} | {d.mean():+.2f} | {d.min():+.2f} | "
                f"{int((d < -0.005).sum())} | {int((g < 0).sum())} | {d.mean() * len(rows) / n_all:+.3f} |")

    out = ["| method | gain over input, mean | worst | vs JPEG stage, mean | worst | crops below the JPEG stage | "
           "crops below input | on the 60-crop mean |", "|---|---|---|---|---|---|---|---|"]
    out.append(line("plan's saved file (JPEG q95)", saved))
    out.append(line("JPEG stage (re-run, 8-bit)", j))
    f = np.array([[r["ffdnet"][str(s)] for s in FFDNET_SIGMAS] for r in rows])
    best = int(np.argmax(f.mean(axis=0)))
    for k, s in enumerate(FFDNET_SIGMAS):
        out.append(line(f"FFDNet σ {s:g}" + (" (best single σ)" if k == best else ""), f[:, k]))
    out.append(line("FFDNet, per-crop best σ (oracle)", f.max(axis=1)))
    a = np.array([[r["after"][str(s)] for s in AFTER_SIGMAS] for r in rows])
    best_a = int(np.argmax(a.mean(axis=0)))
    for k, s in enumerate(AFTER_SIGMAS):
        out.append(line(f"JPEG stage + FFDNet σ {s:g}" + (" (best single σ)" if k == best_a else ""), a[:, k]))
    out.append(line("JPEG stage + FFDNet, per-crop best σ (oracle, σ 0 allowed)", np.maximum(a.max(axis=1), j)))
    p = np.array([[r["prior"][str(m)] for m in PRIOR_SCALES] for r in rows])
    for k, m in enumerate(PRIOR_SCALES):
        out.append(line(f"JPEG stage, priors told {m:g}× σ", p[:, k]))
    out.append(line("JPEG stage, per-crop best prior scale (oracle, 1× allowed)", np.maximum(p.max(axis=1), j)))
    out.append(line("best of everything above, per crop (oracle)",
                    np.max(np.concatenate([j[:, None], f, a, p], axis=1), axis=1)))
    out += ["", "Per crop (PSNR dB; best σ of each family):", "",
            "| crop | input | JPEG stage | FFDNet best σ | dB | JPEG+FFDNet best σ | dB | best prior × | dB |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r, fr, ar, pr in zip(rows, f, a, p, strict=True):
        out.append(f"| {r['name']} | {r['input']:.2f} | {r['jpeg']:.2f} | {FFDNET_SIGMAS[int(np.argmax(fr))]:g} | "
                   f"{fr.max():.2f} | {AFTER_SIGMAS[int(np.argmax(ar))]:g} | {ar.max():.2f} | "
                   f"{PRIOR_SCALES[int(np.argmax(pr))]:g} | {pr.max():.2f} |")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plan", nargs="+", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--part", default="0/1", help="K/N: measure only every N-th crop from the K-th (parallel runs "
                                                  "sharing one --cache; the report reads them all)")
    ap.add_argument("--save-cost", action="store_true")
    ap.add_argument("--smaller-priors", action="store_true", help="only the JPEG stage at SMALL_PRIOR_SCALES "
                                                                   "(its own --cache)")
    ap.add_argument("--every", type=int, default=1)
    args = ap.parse_args(argv)
    if args.smaller_priors:
        global PRIOR_SCALES
        PRIOR_SCALES = SMALL_PRIOR_SCALES
    if args.save_cost:
        return _emit([f"Machine: {machine()}."] + save_cost(args.plan, args.every, args.cache), args.out)
    items = jpeg_only(args.plan)
    if args.limit:
        items = items[:args.limit]
    done = {}
    if args.cache.exists():
        for line in args.cache.read_text().splitlines():
            d = json.loads(line)
            done[d["name"]] = d
    start = machine()
    t0 = time.time()
    k, n = (int(v) for v in args.part.split("/"))
    for lq_path, saved in items[k::n]:
        if lq_path.name in done:
            continue
        row = json.loads(json.dumps(measure(lq_path, saved, lean=args.smaller_priors)))
        done[row["name"]] = row
        with args.cache.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"{row['name']}: jpeg {row['jpeg'] - row['input']:+.2f}  ffdnet best "
              f"{max(row['ffdnet'].values(), default=row['jpeg']) - row['jpeg']:+.2f}  "
              f"after best {max(row['after'].values(), default=row['jpeg']) - row['jpeg']:+.2f}"
              f"  prior best {max(row['prior'].values()) - row['jpeg']:+.2f}  ({time.time() - t0:.0f} s)",
              file=sys.stderr, flush=True)
    rows = [done[p.name] for p, _ in items if p.name in done]
    if args.smaller_priors:
        j = np.array([r["jpeg"] for r in rows])
        lines = [f"Machine: {start}; {len(rows)} crops. JPEG stage with its priors told m x σ, against the stage as "
                 "shipped (dB): mean / worst / crops below / on the 60-crop mean", ""]
        for m in PRIOR_SCALES:
            d = np.array([r["prior"][str(m)] for r in rows]) - j
            lines.append(f"- m = {m:g}: {d.mean():+.3f} / {d.min():+.2f} / {int((d < -0.005).sum())} / "
                         f"{d.mean() * len(rows) / 60:+.3f}")
        return _emit(lines, args.out)
    lines = [f"Machine: {start}; end load average {os.getloadavg()[0]:.1f}; {len(rows)} crops.", ""]
    return _emit(lines + report(rows, 60, float("nan")), args.out)


def _emit(lines: list[str], out: Path | None) -> int:
    """Print the report ``lines`` and write them to ``out`` when given; the exit status 0."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
