"""How long the window's UI thread blocks per setting change in the Uncertainty overlay (issue 15).

A real photo (default: a full-size PolyU camera photo, about 5 MP) is opened in the real
:class:`app.window.MainWindow` (off-screen, 1600x1000, the CPU restorer the window builds, the
automatic restoration as the window runs it), the view is switched to Uncertainty, and then
settings change as a person changes them: the noise strength slider is set to a few values one
after another (each a setting not seen before), Caution is set and reset, and the strength is
moved again with Caution on. After each change the event loop runs for ``--wait`` seconds.

Measured per change, with a 5 ms heartbeat timer on the UI thread:

- ``longest block``: the longest gap between two heartbeats, less the 5 ms interval (how long the
  window could not answer a click, a key or a repaint);
- ``longest paint``: the longest viewer paint;
- ``first map``: seconds from the change until the viewer painted with a map of the new setting
  ready (its preview-grid map or its full-resolution one);
- ``map final``: seconds from the change until the viewer painted with the setting's
  full-resolution map ready (``SessionUncertainty.full``), and whether the analysis panel's
  sentence at the end of the wait was that map's (the sentence the CLI's numbers give);
- ``leaned``: with Caution on, seconds until the viewer painted the result with its Caution blend.

The last three changes are in Split mode (no overlay: the sentence and Caution's blend only).

``--superseded`` measures instead a setting change made while the previous setting's map is being
made (issue 15's cancellation): in Uncertainty mode the noise strength is set to one value, the
event loop runs ``--lead`` seconds (past the 0.2 s rest and the preview map: the full-resolution
map is in flight), then the strength is set to another value; ``map final`` is then the seconds
from the second change until the viewer painted with its full-resolution map ready, and
``superseded map made`` whether the first value's full map was finished anyway (made and cached
although no longer shown). Last, ``close``: the seconds ``MainWindow.close()`` takes with a map in
flight (set a strength, ``--lead`` seconds, close). Before those, where the code has the cancellation
point (``SessionUncertainty.full(..., progress=...)``), ``stop``: the seconds from cancelling a
full-resolution map being made (on this thread, the token cancelled from a timer thread every
0.1 s from 0.1 to 2.5 s after it started) until it raised ``Cancelled``; and of ``close``, the
seconds it waited for the maps worker.

``--run-esc`` measures instead Esc pressed while a restoration run's new setting gets its map (issue
15, the map a run used to make at its end on the restoration worker): per sample the noise strength is
set to a new value (no run; the event loop runs until that setting's map is made), then the noise
expert is switched (a run: the other expert the first time, the stage cache after that), and Esc is
pressed ``--lead`` seconds (here 0.3 unless given) after the run's pixels are done
(``Orchestrator.run`` returned). Measured: ``esc to idle``, the seconds from Esc until the
restoration worker is idle (0 when the run was already over), and, at the end of the wait, whether
the document shows the new expert, the undo stack holds the change, and the panel's sentence is the
shown setting's full map's. Last, ``close``: the same change, and ``close()`` ``--lead`` seconds
after the pixels are done.

The script runs against whichever checkout it sits in (``benchmarks/..``), so the same file
measures the code before and after a change. Validation photos only; nothing is fitted here.

Run: ``QT_QPA_PLATFORM=offscreen OMP_NUM_THREADS=1 .venv/bin/python benchmarks/uncertainty_overlay.py
--out /tmp/overlay.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from _host import cpu_model  # noqa: E402  (benchmarks/_host.py, beside this script)

SHARED = Path(os.environ.get("RESTORA_SHARED") or REPO.parent / "shared")
DEFAULT_PHOTO = SHARED / "data" / "pairs" / "noise_real_polyu_fullsize" / "lq" / "Canon80D_ball.JPG"
HEARTBEAT_MS = 5


class Clock:
    """UI-thread heartbeat gaps and viewer paint times, collected per change."""

    def __init__(self, viewer) -> None:
        from PySide6.QtCore import QTimer

        self.beats: list[float] = []
        #: (end time, seconds, full map ready at its end, some map of the setting ready at its end,
        #: the picture drawn with its Caution blend)
        self.paints: list[tuple[float, float, bool, bool, bool]] = []
        self.ready = self.some = self.leaned = lambda: False
        self.timer = QTimer()
        self.timer.setInterval(HEARTBEAT_MS)
        self.timer.timeout.connect(lambda: self.beats.append(time.perf_counter()))
        paint = viewer.paintEvent

        def timed(event):
            t = time.perf_counter()
            paint(event)
            now = time.perf_counter()
            self.paints.append((now, now - t, self.ready(), self.some(), self.leaned()))

        viewer.paintEvent = timed

    def reset(self) -> None:
        self.beats.clear()
        self.paints.clear()
        self.beats.append(time.perf_counter())

    def longest_block(self) -> float:
        gaps = [self.beats[i + 1] - self.beats[i] for i in range(len(self.beats) - 1)]
        return max(0.0, max(gaps, default=0.0) - HEARTBEAT_MS / 1000.0)

    def longest_paint(self) -> float:
        return max((p[1] for p in self.paints), default=0.0)


def pump(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)


def full_ready(doc, strengths) -> bool:
    su = doc.uncertainty
    try:
        return su.full(strengths, compute=False) is not None
    except TypeError:  # the code before the overlay's worker: the map is only made when asked
        return su._key(strengths) in su._full or su.step == 1


def preview_ready(doc, strengths) -> bool:
    su = doc.uncertainty
    try:
        return su.composed(strengths, compute=False) is not None
    except TypeError:  # the code before: the preview map was made in the paint, for Caution only
        return su._key(strengths) in su._cache


def measure_change(app, w, clock, change, what: str, wait: float) -> dict:
    doc = w.doc
    clock.reset()
    t0 = time.perf_counter()
    change()
    strengths = doc.state.effective_strengths()
    clock.ready = lambda: full_ready(doc, strengths)
    clock.some = lambda: full_ready(doc, strengths) or preview_ready(doc, strengths)
    pending = getattr(doc, "caution_pending", lambda: False)  # before: the blend was always drawn
    clock.leaned = lambda: doc.state.caution > 0 and not pending()
    pump(app, wait)
    final = [p[0] for p in clock.paints if p[2]]
    final_at = final[0] - t0 if final else None
    some = [p[0] for p in clock.paints if p[3]]
    leaned = [p[0] for p in clock.paints if p[4]]
    sentence = w.controls.uncertainty.text()
    expected = doc.uncertainty.describe(strengths)  # the full map's sentence (computed now if it was not)
    row = {"change": what, "longest_block_s": round(clock.longest_block(), 3),
           "longest_paint_s": round(clock.longest_paint(), 3), "paints": len(clock.paints),
           "map_final_s": None if final_at is None else round(final_at, 2),
           "first_map_s": round(some[0] - t0, 2) if some else None, "mode": w.viewer.mode().value,
           "leaned_s": round(leaned[0] - t0, 2) if leaned else None,
           "sentence_is_the_maps": sentence == expected, "sentence": sentence}
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def stop_latency(doc) -> Optional[list[dict]]:
    """Seconds from cancelling a full-resolution map in progress to its ``Cancelled``, for a few
    cancel times; ``None`` for code without the cancellation point."""
    import inspect
    import threading

    from engine.errors import Cancelled
    from engine.progress import CancelToken, Progress

    su = doc.uncertainty
    if "progress" not in inspect.signature(su.full).parameters:
        return None
    strengths = dict(doc.state.effective_strengths(), noise=0.33)  # a setting not made yet
    rows = []
    for after in [round(0.1 * i, 1) for i in range(1, 26)]:
        token = CancelToken()
        cancelled_at: list[float] = []
        timer = threading.Timer(after, lambda t=token, at=cancelled_at: (at.append(time.perf_counter()), t.cancel()))
        t0 = time.perf_counter()
        timer.start()
        try:
            su.full(strengths, progress=Progress(cancel=token))
            stopped = None
        except Cancelled:
            stopped = time.perf_counter()
        timer.cancel()
        row = {"cancel_after_s": after, "made_before_cancel": stopped is None,
               "stop_s": None if stopped is None else round(stopped - cancelled_at[0], 3),
               "map_s": round(time.perf_counter() - t0, 2)}
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def superseded(app, w, clock, slider, wait: float, lead: float) -> tuple[list[dict], float, float]:
    """Rows of changes made while the previous setting's map is in flight, the seconds the window
    takes to close with a map in flight and, of those, the seconds it waits for the maps worker."""
    rows = []
    for first, second in ((80, 60), (40, 20), (90, 70)):
        slider.setValue(first)
        before = w.doc.state.effective_strengths()
        pump(app, lead)
        in_flight = w.maps.is_busy() and not full_ready(w.doc, before)
        row = measure_change(app, w, clock, lambda v=second: slider.setValue(v),
                             f"noise strength {first} % then, {lead:g} s later, {second} %", wait)
        row.update(first_in_flight=in_flight, superseded_map_made=full_ready(w.doc, before))
        rows.append(row)
    slider.setValue(50)
    pump(app, lead)
    in_flight = w.maps.is_busy()
    waited: list[float] = []
    wait = w.maps.wait

    def timed_wait(msecs: int = -1) -> bool:
        t = time.perf_counter()
        done = wait(msecs)
        waited.append(time.perf_counter() - t)
        return done

    w.maps.wait = timed_wait
    t = time.perf_counter()
    w.close()
    close_s = time.perf_counter() - t
    print(json.dumps({"close_s": round(close_s, 2), "map_in_flight": in_flight,
                      "maps_wait_s": [round(x, 3) for x in waited]}), file=sys.stderr, flush=True)
    return rows, close_s, sum(waited)


def run_esc(app, w, slider, wait: float, lead: float, samples: int = 3) -> tuple[list[dict], dict]:
    """Rows of a run whose pixels are done followed, ``lead`` seconds later, by Esc; then one close."""
    doc = w.doc
    orchestrator = doc.restorer.orchestrator
    pixels_done: list[float] = []
    real_run = orchestrator.run

    def timed_run(*args, **kwargs):
        out = real_run(*args, **kwargs)
        pixels_done.append(time.perf_counter())
        return out

    orchestrator.run = timed_run
    experts = [c[0] for c in doc.expert_choices("noise")]
    first = doc.state.experts["noise"]
    other = next(e for e in experts if e != first)

    def settle() -> None:
        end = time.perf_counter() + 60
        while time.perf_counter() < end and (w.jobs.is_busy() or w.maps.is_busy() or not doc.uncertainty_measured()):
            app.processEvents()
            time.sleep(0.005)

    def change_and_wait_for_pixels(expert: str) -> float:
        pixels_done.clear()
        t0 = time.perf_counter()
        w._expert_changed("noise", expert)
        while not pixels_done:
            app.processEvents()
            time.sleep(0.001)
        pump(app, max(0.0, pixels_done[0] + lead - time.perf_counter()))
        return pixels_done[0] - t0

    rows = []
    for i, value in enumerate((70, 55, 85, 45, 65)[:samples]):
        slider.setValue(value)
        settle()
        expert = other if i % 2 == 0 else first
        undo = w.undo_stack.index()
        pixels_s = change_and_wait_for_pixels(expert)
        busy_at_esc = w.jobs.is_busy()
        t = time.perf_counter()
        w.actions_by_name["cancel"].trigger()
        while w.jobs.is_busy():
            app.processEvents()
            time.sleep(0.001)
        esc_s = time.perf_counter() - t
        pump(app, wait)
        strengths = doc.state.effective_strengths()
        row = {"sample": i, "expert": expert, "noise_strength": value, "pixels_s": round(pixels_s, 2),
               "run_busy_at_esc": busy_at_esc, "esc_to_idle_s": round(esc_s, 3),
               "shows_new_expert": doc.state.experts["noise"] == expert and w._pending is None,
               "undo_holds_the_change": w.undo_stack.index() == undo + 1,
               "map_made_after_wait": full_ready(doc, strengths),
               "sentence_is_the_maps": w.controls.uncertainty.text() == doc.uncertainty.describe(strengths)}
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    slider.setValue(35)
    settle()
    pixels_s = change_and_wait_for_pixels(other if doc.state.experts["noise"] == first else first)
    busy = w.jobs.is_busy()
    t = time.perf_counter()
    w.close()
    close = {"close_s": round(time.perf_counter() - t, 3), "run_busy_at_close": busy, "pixels_s": round(pixels_s, 2)}
    print(json.dumps(close), file=sys.stderr, flush=True)
    return rows, close


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("photo", nargs="?", default=str(DEFAULT_PHOTO))
    ap.add_argument("--wait", type=float, default=8.0, help="seconds the event loop runs after each change")
    ap.add_argument("--out", required=True, help="JSON file for the rows")
    ap.add_argument("--superseded", action="store_true",
                    help="measure changes made while the previous setting's map is in flight, and closing")
    ap.add_argument("--lead", type=float, default=1.5,
                    help="with --superseded: seconds between the first change and the second (or the close)")
    ap.add_argument("--run-esc", action="store_true",
                    help="measure Esc pressed --lead s after a restoration run's pixels are done, and closing")
    args = ap.parse_args()
    photo = Path(args.photo)
    if not photo.is_file():
        sys.exit(f"no photo {photo} (is {SHARED} there?)")

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication, QSlider

    from app.main import configure_application
    from app.settings import AppSettings
    from app.window import MainWindow

    app = QApplication.instance() or QApplication([])
    configure_application(app)
    settings_dir = tempfile.mkdtemp(prefix="restora-overlay-")  # never the user's settings
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, settings_dir)
    load = os.getloadavg()[0]
    w = MainWindow(AppSettings())
    w.confirm_close = lambda what: True
    w.resize(1600, 1000)
    w.show()
    t = time.perf_counter()
    w.open_file(photo)
    while w.doc is None or w.jobs.is_busy():
        app.processEvents()
        time.sleep(0.01)
    open_s = time.perf_counter() - t
    w.set_view_mode("uncertainty")
    pump(app, 1.0)
    clock = Clock(w.viewer)
    clock.timer.start()
    slider = w.controls.findChild(QSlider, "slider_noise")

    def write_report(**fields) -> None:
        """``--out``: the machine, the photo and the opening, then ``fields`` (each mode's own)."""
        report = {"machine": f"{cpu_model()}, {os.cpu_count()} logical cores, load average {load:.1f} at start, "
                             f"{os.getloadavg()[0]:.1f} at the end",
                  "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "photo": photo.name,
                  "size": [w.doc.height, w.doc.width] if w.doc is not None else None, "open_s": round(open_s, 1),
                  "wait_s": args.wait, **fields}
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")

    if args.run_esc:
        lead = 0.3 if args.lead == 1.5 else args.lead
        rows, close = run_esc(app, w, slider, args.wait, lead)
        write_report(lead_s=lead, close=close, rows=rows)
        print("| noise expert (strength) | pixels done after s | run still busy at Esc | Esc to idle s "
              "| shows the new expert | undo holds it | sentence is the shown map's |")
        print("|---|---|---|---|---|---|---|")
        yn = {True: "yes", False: "no"}
        for r in rows:
            print(f"| {r['expert']} ({r['noise_strength']} %) | {r['pixels_s']} | {yn[r['run_busy_at_esc']]} | "
                  f"{r['esc_to_idle_s']:.3f} | {yn[r['shows_new_expert']]} | {yn[r['undo_holds_the_change']]} | "
                  f"{yn[r['sentence_is_the_maps']]} |")
        print(f"\nclose {lead:g} s after a run's pixels: {close['close_s']:.3f} s "
              f"(run still busy: {yn[close['run_busy_at_close']]})")
        return
    if args.superseded:
        stops = stop_latency(w.doc)
        rows, close_s, close_wait_s = superseded(app, w, clock, slider, args.wait, args.lead)
        write_report(lead_s=args.lead, close_s=round(close_s, 2), close_maps_wait_s=round(close_wait_s, 3),
                     stop=stops, rows=rows)
        print("| changes | first map in flight at the second change | superseded map made anyway "
              "| longest UI block s | full map of the second ready at a paint after s |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['change']} | {'yes' if r['first_in_flight'] else 'no'} | "
                  f"{'yes' if r['superseded_map_made'] else 'no'} | {r['longest_block_s']:.2f} | {r['map_final_s']} |")
        print(f"\nclose with a map in flight: {close_s:.2f} s, of which waiting for the maps worker "
              f"{close_wait_s:.2f} s")
        for r in stops or []:
            print(f"cancelled after {r['cancel_after_s']} s: " + ("made before" if r["made_before_cancel"] else
                                                                 f"stopped {r['stop_s']:.3f} s later"))
        return
    rows = []
    for value in (80, 60, 40):
        rows.append(measure_change(app, w, clock, lambda v=value: slider.setValue(v), f"noise strength {value} %",
                                   args.wait))
    for value in (50, 0):
        rows.append(measure_change(app, w, clock, lambda v=value: w.controls.caution.setValue(v), f"Caution {value} %",
                                   args.wait))
    w.controls.caution.setValue(50)
    pump(app, args.wait)
    for value in (70, 90):
        rows.append(measure_change(app, w, clock, lambda v=value: slider.setValue(v),
                                   f"noise strength {value} % with Caution 50 %", args.wait))
    w.set_view_mode("split")  # the sentence and Caution's blend in a mode without the overlay
    rows.append(measure_change(app, w, clock, lambda: slider.setValue(50),
                               "split: noise strength 50 % with Caution 50 %", args.wait))
    w.controls.caution.setValue(0)
    pump(app, 1.0)
    rows.append(measure_change(app, w, clock, lambda: slider.setValue(30), "split: noise strength 30 %", args.wait))
    rows.append(measure_change(app, w, clock, lambda: w.controls.caution.setValue(50), "split: Caution 50 %",
                               args.wait))
    w.close()
    write_report(rows=rows)
    print("| change | longest UI block s | longest paint s | this setting's first map ready at a paint after s "
          "| full map ready at a paint after s | Caution blend drawn after s | sentence is the map's |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['change']} | {r['longest_block_s']:.2f} | {r['longest_paint_s']:.2f} | {r['first_map_s']} | "
              f"{r['map_final_s']} | {r['leaned_s']} | {'yes' if r['sentence_is_the_maps'] else 'no'} |")


if __name__ == "__main__":
    main()
