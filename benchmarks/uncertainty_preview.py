"""The window's uncertainty sentence against the CLI's JSON summary, on whole photos.

The window keeps its uncertainty map on at most ``UNCERTAINTY_PREVIEW_PIXELS`` pixels
(``app/document.py``: every ``step``-th pixel); the CLI (``restora --uncertainty``) computes it at
full resolution. Per photo this restores it as the CLI does (automatic plan, the file's JPEG
tables and EXIF) and reports, each as ``mean / p95 / fraction above 8 levels``:

- ``cli``: :class:`engine.uncertainty.SessionUncertainty` without a pixel limit (what the JSON says);
- ``preview``: the preview map (features read on the subsampled photo: what the window's sentence
  said before it read :meth:`SessionUncertainty.full`);
- ``window``: :meth:`SessionUncertainty.summary` with the preview's limit (the full-resolution map
  on the preview's grid: what the sentence says now), and the sentence itself;

with the seconds each map took (the map alone: the sentence and the face detection cost the same
either way). The restored pixels are not touched by any of it (the map only reads them).

Run: ``OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/uncertainty_preview.py
--out benchmarks/results/uncertainty-preview.json`` (default photos: the first three full-size
PolyU photos, validation only; nothing is fitted here).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _host import cpu_model  # noqa: E402  (benchmarks/_host.py, beside this script)

SHARED = Path(os.environ.get("RESTORA_SHARED") or ROOT.parent / "shared")
POLYU_FULL = SHARED / "data" / "pairs" / "noise_real_polyu_fullsize" / "lq"
DEFAULT_PHOTOS = ("Canon80D_ball.JPG", "Canon5D2_chair.JPG", "SonyA7II_plant.JPG")
#: ``app/document.py`` UNCERTAINTY_PREVIEW_PIXELS (the benchmark does not import the Qt app).
PREVIEW_PIXELS = 2_000_000


def preview_map(su, strengths):
    """The preview map as the window computed it before: the model on the subsampled photo."""
    from engine.uncertainty.session import _noise_sigma, _severity, composed_choice

    s, step = su.session, su.step
    image = s.image[::step, ::step]
    kept = [r for r in s.results if not r.dropped and r.output_report is not None]
    which, kind = composed_choice(su.model, s.results, s.report)
    return su.model.predict(image, s.compose(strengths, step=step), which, noise_sigma=_noise_sigma(image, s.report),
                            severity=_severity(s.report, kind),
                            severity_after=_severity(kept[-1].output_report if kept else s.report, kind))


def measure(path: Path, restorer, max_pixels: int) -> dict:
    import numpy as np

    from engine.imageio import load_photo
    from engine.pipeline.job import RestoreOptions
    from engine.uncertainty import SessionUncertainty, describe, summarise

    photo = load_photo(path)
    options = RestoreOptions()
    t0 = time.perf_counter()
    session = restorer.session(photo.pixels, options, jpeg=photo.jpeg, metadata=photo.metadata)
    session.analyse()
    plan = restorer.plan_for(session, options)
    outcome = restorer.orchestrator.restore(session, options.choices(), plan=plan)
    strengths = outcome.plan.strengths()
    restore_s = time.perf_counter() - t0
    restored = session.compose(strengths)
    out = {"photo": path.name, "size": list(photo.pixels.shape[:2]), "restore_s": round(restore_s, 1),
           "kept": [r.name for r in outcome.results if not r.dropped and r.delta is not None]}

    window = SessionUncertainty(session, max_pixels=max_pixels)
    out["step"] = window.step
    t = time.perf_counter()
    pre = preview_map(window, strengths)
    out["preview"] = {**summarise(pre), "seconds": round(time.perf_counter() - t, 1),
                      "sentence": describe(pre, session.compose(strengths, step=window.step))}
    t = time.perf_counter()
    window.full(strengths)
    seconds = round(time.perf_counter() - t, 1)
    out["window"] = {**window.summary(strengths), "seconds": seconds, "sentence": window.describe(strengths)}
    t = time.perf_counter()
    cli = SessionUncertainty(session).composed(strengths)
    out["cli"] = {**summarise(cli), "seconds": round(time.perf_counter() - t, 1)}
    out["restored_unchanged"] = bool(np.array_equal(restored, session.compose(strengths)))
    print(json.dumps(out), file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("photos", nargs="*", help=f"photos (default: {', '.join(DEFAULT_PHOTOS)} of {POLYU_FULL})")
    ap.add_argument("--max-pixels", type=int, default=PREVIEW_PIXELS)
    ap.add_argument("--out", required=True, help="JSON file for the rows")
    args = ap.parse_args()
    from engine.experts.default import build_registry
    from engine.pipeline.job import Restorer

    paths = [Path(p) for p in args.photos] or [POLYU_FULL / n for n in DEFAULT_PHOTOS]
    paths = [p for p in paths if p.is_file()]
    if not paths:
        sys.exit(f"no photos (is {SHARED} there?)")
    restorer = Restorer(build_registry(device="cpu"))
    load = os.getloadavg()[0]
    rows = [measure(p, restorer, args.max_pixels) for p in paths]
    report = {"machine": f"{cpu_model()}, {os.cpu_count()} logical cores, load average {load:.1f} at start",
              "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "max_pixels": args.max_pixels, "rows": rows}
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print("| photo | step | CLI (full resolution) | window before (preview map) | window now "
          "| map seconds: before → now (CLI) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        def f(d):
            return f"{d['mean']:.1f} / {d['p95']:.1f} / **{100 * d['fraction_above']:.0f} %**"
        print(f"| {r['photo']} | {r['step']} | {f(r['cli'])} | {f(r['preview'])} | {f(r['window'])} | "
              f"{r['preview']['seconds']} → {r['window']['seconds']} ({r['cli']['seconds']}) |")


if __name__ == "__main__":
    main()
