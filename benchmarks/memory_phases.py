"""Where a ``restora restore`` run's peak memory is: the resident set per phase, sampled.

Runs the CLI in this process (``python benchmarks/memory_phases.py restore IN -o OUT ...``, the
CLI's own arguments) while a thread reads the resident set (``/proc/self/statm``, Linux) every
2 ms together with the main thread's call stack. Each sample is filed under the phase the stack
is in (the chain of the functions in :data:`PHASES` on it, e.g.
``restore_file/restore_photo/run_stage/_run_in_place``); the report gives each phase's largest
resident set, the phase and stack of the overall peak, and ``ru_maxrss`` to check the sampler
caught it. ``PROFILE_OUT=FILE`` also writes the timeline of phase changes (JSON). Sampling holds
the GIL for microseconds per sample; numbers in GiB (2³⁰ bytes).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")
#: Functions that name a phase when they are on the main thread's stack.
PHASES = ("load_raster", "photo_from_raster", "load_photo", "analyse_default", "analyse", "noise_sigma",
          "run_in_place", "_run_in_place", "run_stage", "judge", "take_after", "compose_into", "release",
          "report_of_full_strength", "_prepare", "quantize", "_write_png", "_write_jpeg", "_write_tiff",
          "save_photo", "restore_photo", "restore_file")


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO))
    main_id = threading.get_ident()
    peaks: dict[str, int] = {}
    best: dict = {"rss": 0, "phase": None, "stack": None}
    timeline: list = []
    stop = threading.Event()
    t0 = time.monotonic()

    def sample() -> None:
        last = None
        while not stop.is_set():
            rss = _rss()
            frame = sys._current_frames().get(main_id)
            names, f = [], frame
            while f is not None:
                names.append(f.f_code.co_name)
                f = f.f_back
            phase = "/".join(n for n in reversed(names) if n in PHASES) or "other"
            peaks[phase] = max(peaks.get(phase, 0), rss)
            if rss > best["rss"]:
                best.update(rss=rss, phase=phase, stack=[f"{Path(s.filename).name}:{s.lineno} {s.name}"
                                                         for s in traceback.extract_stack(frame)][-12:])
            if phase != last:
                timeline.append((round(time.monotonic() - t0, 2), phase, round(rss / 2**30, 3)))
                last = phase
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    from engine.cli import main as cli

    rc = cli(argv)
    stop.set()
    thread.join()
    report = {"rc": rc, "ru_maxrss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
              "sampled_peak_gib": round(best["rss"] / 2**30, 3), "peak_phase": best["phase"],
              "peak_stack": best["stack"], "seconds": round(time.monotonic() - t0, 1),
              "phases_gib": {k: round(v / 2**30, 3) for k, v in sorted(peaks.items(), key=lambda kv: -kv[1])}}
    print(json.dumps(report, indent=1), file=sys.stderr)
    if os.environ.get("PROFILE_OUT"):
        Path(os.environ["PROFILE_OUT"]).write_text(json.dumps(dict(report, timeline=timeline), indent=1))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
