"""What the output JPEG's quality costs: the default plan's result saved at several qualities.

For every photo the default plan (``Restorer`` in process, as the CLI runs it) restores the photo once;
the result is then written by the real writer (``engine.imageio.save_photo``, EXIF and ICC carried) at
each quality of ``QUALITIES`` and scored:

* ``noise_real_polyu_crops`` (60 real noisy camera JPEGs with ground truth): PSNR gain of the saved file
  over the noisy input (dB, 8-bit), and as computed (the result rounded to 8 bits, never encoded);
* every photo: the file's size (bytes per megapixel) and its PSNR against the result as computed
  (what the encoding alone loses).

Validation only: the crops are never fitted on; nothing here chooses a threshold.

Run: ``OMP_NUM_THREADS=1 nice -n 10 python benchmarks/output_quality.py --cache ROWS.jsonl
[--out benchmarks/results/output-quality.md]`` (resumable: photos already in the cache are skipped;
``--minutes`` stops a run early).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _host import append_rows, cpu_model, load_rgb, psnr_8bit as psnr, q8, report  # noqa: E402

SHARED = Path(os.environ.get("RESTORA_SHARED") or ROOT.parent / "shared")
CROPS = SHARED / "data" / "pairs" / "noise_real_polyu_crops"
QUALITIES = (90, 95, 97, 98, 100)


def photos() -> list[tuple[str, Path]]:
    """(set, path): the 60 PolyU crops, then the JPEG photos of data/real, the large camera JPEG of
    data/exif and the bundled JPEG sample (sizes only)."""
    out = [("polyu", p) for p in sorted((CROPS / "lq").glob("*.JPG"))]
    out += [("real", p) for p in sorted((SHARED / "data" / "real").glob("*.jpg"))]
    out += [("camera", SHARED / "data" / "exif" / "canon_powershot_g9_exif_icc.jpg")]
    out += [("sample", ROOT / "resources" / "samples" / "rocket_blocky.jpg")]
    return [(s, p) for s, p in out if p.exists()]


def measure(kind: str, path: Path, restorer, tmp: Path) -> dict:
    from engine.imageio import load_photo, save_photo
    from engine.pipeline.job import RestoreOptions

    started = time.perf_counter()
    restored, _ = restorer.restore_photo(load_photo(path), RestoreOptions())
    computed = q8(restored.pixels[..., :3])
    h, w = computed.shape[:2]
    row = {"set": kind, "name": path.name, "mp": h * w / 1e6, "input_bytes": path.stat().st_size,
           "seconds": time.perf_counter() - started, "q": {}}
    gt = load_rgb(CROPS / "gt" / path.name) if kind == "polyu" else None
    if gt is not None:
        row["input"] = psnr(load_rgb(path), gt)
        row["computed"] = psnr(computed, gt)
    for q in QUALITIES:
        target = save_photo(restored, tmp / f"out_{q}.jpg", fmt="jpeg", overwrite=True, jpeg_quality=q)
        saved = load_rgb(target)
        entry = {"bytes": target.stat().st_size, "fidelity": psnr(saved, computed)}
        if gt is not None:
            entry["psnr"] = psnr(saved, gt)
        row["q"][str(q)] = entry
    return row


def table(rows: list[dict]) -> list[str]:
    out = [f"Machine: {cpu_model()}, {os.cpu_count()} logical cores.", ""]
    polyu = [r for r in rows if r["set"] == "polyu"]
    if polyu:
        comp = np.array([r["computed"] - r["input"] for r in polyu])
        out += [f"## Real noisy crops (`noise_real_polyu_crops`, n={len(polyu)}): gain over the noisy input, dB", "",
                f"As computed (8-bit, never encoded): mean **{comp.mean():+.3f}**, worst {comp.min():+.3f}.", "",
                "| output | mean gain | worst gain | crops below input | save cost, mean | save cost, worst "
                "| encoding PSNR vs computed, mean | bytes per MP (mean) | size vs q95 |",
                "|---|---|---|---|---|---|---|---|---|"]
        base = np.mean([r["q"]["95"]["bytes"] / r["mp"] for r in polyu])
        for q in QUALITIES:
            g = np.array([r["q"][str(q)]["psnr"] - r["input"] for r in polyu])
            cost = np.array([r["q"][str(q)]["psnr"] - r["computed"] for r in polyu])
            fid = np.mean([r["q"][str(q)]["fidelity"] for r in polyu])
            bpm = np.mean([r["q"][str(q)]["bytes"] / r["mp"] for r in polyu])
            out.append(f"| JPEG q{q}{' 4:4:4' if q >= 90 else ''} | {g.mean():+.3f} | {g.min():+.3f} | "
                       f"{int((g < 0).sum())} | {cost.mean():+.3f} | {cost.min():+.3f} | {fid:.2f} | "
                       f"{bpm / 1e6:.2f} MB | {bpm / base:.2f}x |")
        inp = np.mean([r["input_bytes"] / r["mp"] for r in polyu])
        out += ["", f"The noisy inputs themselves: {inp / 1e6:.2f} MB per MP (the dataset's q75-class files).", ""]
    others = [r for r in rows if r["set"] != "polyu"]
    if others:
        out += ["## Other JPEG photos: size and what the encoding alone loses", "",
                "| photo | MP | input MB | " + " | ".join(f"q{q} MB (PSNR vs computed)" for q in QUALITIES) + " |",
                "|---|---|---|" + "---|" * len(QUALITIES)]
        for r in others:
            cells = [f"{r['q'][str(q)]['bytes'] / 1e6:.2f} ({r['q'][str(q)]['fidelity']:.1f})" for q in QUALITIES]
            out.append(f"| {r['set']}: {r['name']} | {r['mp']:.2f} | {r['input_bytes'] / 1e6:.2f} | "
                       + " | ".join(cells) + " |")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, required=True, help="rows, one JSON per photo (resumable)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos (a quick look)")
    ap.add_argument("--minutes", type=float, default=600.0, help="stop after this long; run again to resume")
    args = ap.parse_args(argv)

    from engine.experts.default import build_registry
    from engine.pipeline.job import Restorer

    todo = photos()[: args.limit]
    restorer = Restorer(build_registry())
    with tempfile.TemporaryDirectory() as tmp:
        append_rows(args.cache, todo, args.minutes,
                    lambda photo, index: {"index": index, **measure(*photo, restorer, Path(tmp))})
    done = {r["index"]: r for r in map(json.loads, args.cache.read_text().splitlines())}
    rows = [done[i] for i in range(len(todo)) if i in done]
    report("\n".join(table(rows)) + "\n", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
