"""Peak memory and timings of the real window opening a large photo (issue 14, item 1).

Each size gets the bundled sample ``resources/samples/cat_noisy.png`` enlarged to the size (bicubic)
with Gaussian noise σ 12/255 added after, saved as an 8-bit PNG, so that the automatic plan runs and
keeps a noise stage (``memory_scaling.py``'s synthetic scene has edges on the 8-px grid every 96 px,
which read as JPEG blocks once denoised, and the plan drops its noise stage).
A fresh process per size starts the application
off-screen (``QT_QPA_PLATFORM=offscreen``, settings in a temporary folder), shows ``MainWindow``,
opens the photo with ``MainWindow.open_file`` (what a drop or File > Open does) and spins the event
loop until the document is ready. Recorded: the process's peak resident set (``ru_maxrss``: Python,
Qt, the networks, the session's cached stage outputs and the changes it keeps in memory within its
change budget, the viewer's copies), the budget and how many change files it wrote, seconds
from ``open_file`` to the original on screen (decoding included), to the document being ready,
and to the noise slider's half-strength knot being done (the window runs it in the background
after the document is shown; code without that deferral runs it before "ready"), and the peak
resident set at "ready" as well as at the end.

Run: ``python benchmarks/window_memory.py [--sizes 12 24] [--out benchmarks/results/window-memory.md]``.
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

#: The bundled photo each size is made from.
SOURCE = REPO / "resources" / "samples" / "cat_noisy.png"


def write_photo(path: Path, megapixels: float, seed: int = 0) -> tuple[int, int]:
    """:data:`SOURCE` enlarged to a 3:2 photo of about ``megapixels`` MP (bicubic, centre-cropped to
    3:2 first) plus Gaussian noise σ 12/255, as an 8-bit PNG; returns (width, height)."""
    import math

    import cv2
    import numpy as np
    from PIL import Image

    src = np.asarray(Image.open(SOURCE).convert("RGB"))
    h0, w0 = src.shape[:2]
    ch = min(h0, int(w0 / 1.5))
    cw = int(ch * 1.5)
    src = src[(h0 - ch) // 2:(h0 - ch) // 2 + ch, (w0 - cw) // 2:(w0 - cw) // 2 + cw]
    w = int(round(math.sqrt(megapixels * 1e6 * 1.5) / 8)) * 8
    h = int(round(w / 1.5 / 8)) * 8
    big = cv2.resize(src, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    big += np.random.default_rng(seed).normal(0.0, 12.0, big.shape).astype(np.float32)
    Image.fromarray(np.clip(np.round(big), 0, 255).astype(np.uint8)).save(path, compress_level=1)
    return w, h


def child(photo: Path, settings: Path, timeout_s: float) -> dict:
    """Open ``photo`` in the real window (this process) and return what was measured."""
    import resource

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    sys.path.insert(0, str(REPO))
    from app.main import configure_application
    from app.settings import AppSettings
    from app.window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0]])
    configure_application(app)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(settings))
    window = MainWindow(AppSettings())
    window.resize(1600, 1000)
    window.show()
    app.processEvents()
    seen: dict[str, float] = {}
    window.photoDecoded.connect(lambda *_: seen.setdefault("first_picture_s", time.perf_counter() - t0))
    t0 = time.perf_counter()
    window.open_file(photo)
    while window.doc is None or window.jobs.is_busy():
        app.processEvents()
        if time.perf_counter() - t0 > timeout_s:
            raise TimeoutError(f"the window did not finish opening {photo.name} in {timeout_s:.0f} s")
        time.sleep(0.01)
    app.processEvents()
    ready = time.perf_counter() - t0
    peak_at_ready = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    knots_s = None
    if hasattr(window, "knots"):  # the slider's deferred knots, run in the background after opening
        doc = window.doc
        while doc.knots_pending() or window.knots.is_busy():
            app.processEvents()
            if time.perf_counter() - t0 > timeout_s:
                raise TimeoutError(f"the window did not finish the strength knots of {photo.name} in {timeout_s:.0f} s")
            time.sleep(0.01)
        knots_s = time.perf_counter() - t0
    results = window.doc.session.results
    changes = window.doc.session.changes
    return {"peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "ready_s": ready,
            "peak_at_ready_bytes": peak_at_ready, "knots_s": knots_s,
            "budget": None if changes is None else changes.budget,
            "on_disk": None if changes is None else len(changes.spilled),
            "first_picture_s": seen.get("first_picture_s"),
            "stages": [r.name + (" (dropped)" if r.dropped else "") for r in results]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[12, 24], help="megapixels")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per size")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "window-memory.md")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--settings", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print("RESULT " + json.dumps(child(args.child, args.settings, args.timeout)), flush=True)
        return 0
    load0 = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="restora-window-memory-") as tmp:
        for mp in args.sizes:
            photo = Path(tmp) / f"synthetic-{mp:g}mp.png"
            w, h = write_photo(photo, mp)
            env = os.environ | {"QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPO)}
            proc = subprocess.run([sys.executable, __file__, "--child", str(photo), "--settings", tmp,
                                   "--timeout", str(args.timeout)], capture_output=True, text=True, env=env)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                print(proc.stderr[-2000:], file=sys.stderr)
                return 1
            row = {"photo": f"{w}x{h}", "mp": w * h / 1e6} | json.loads(line[len("RESULT "):])
            rows.append(row)
            print(json.dumps(row), flush=True)
            photo.unlink()
    load1 = os.getloadavg()[0]
    lines = ["# Peak memory of the window opening a large photo (issue 14)", "",
             f"Produced by `python benchmarks/window_memory.py --sizes {' '.join(f'{s:g}' for s in args.sizes)}`: "
             "the real `MainWindow` (1600x1000, off-screen) opens the bundled `cat_noisy.png` enlarged to "
             "each size with noise σ 12/255 (`write_photo`) with `open_file` and runs its automatic plan; "
             "a fresh process per size.", "",
             f"- machine: {cpu_model()}, {os.cpu_count()} logical cores, load average {load0:.1f} at the start, "
             f"{load1:.1f} at the end", "",
             "| photo | MP | peak RSS GB | bytes per pixel | peak RSS GB at ready | original on screen s | "
             "document ready s | slider knots done s | stages | change budget MiB | changes on disk |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        first = "–" if r["first_picture_s"] is None else f"{r['first_picture_s']:.1f}"
        knots = "with ready" if r.get("knots_s") is None else f"{r['knots_s']:.1f}"
        lines.append(f"| {r['photo']} | {r['mp']:.1f} | {r['peak_bytes'] / 1e9:.2f} | "
                     f"{r['peak_bytes'] / (r['mp'] * 1e6):.0f} | {r['peak_at_ready_bytes'] / 1e9:.2f} | "
                     f"{first} | {r['ready_s']:.1f} | {knots} | "
                     f"{', '.join(r['stages']) or 'none'} | "
                     f"{'all in memory' if r.get('budget') is None else format(r['budget'] / 2**20, '.0f')} | "
                     f"{r.get('on_disk') if r.get('on_disk') is not None else 0} |")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
