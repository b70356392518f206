"""CPU time of the default plan with and without re-analysing the restored photo for ``report_after``.

When every kept stage runs at full strength the restored photo is the last kept stage's output, which
the run has already analysed for the judge (``orchestrator.report_of_full_strength``). This runs the
default plan over every 10th real noisy crop (``../shared/data/pairs/noise_real_polyu_crops``, at most
``--count``) alternately the old way (analyse again) and the new way (reuse), twice each after a
warm-up, in one process, and prints CPU seconds per pass.

Run: ``OMP_NUM_THREADS=1 python benchmarks/report_after_reuse.py [--count 6]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("RESTORA_SHARED") or ROOT.parent / "shared")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=6)
    args = ap.parse_args()
    import engine.pipeline.job as job
    from engine.experts.default import build_registry
    from engine.imageio import load_photo

    files = sorted((SHARED / "data/pairs/noise_real_polyu_crops/lq").glob("*"))[::10][:args.count]
    if not files:
        print("no real noisy crops under", SHARED)
        return 1
    restorer = job.Restorer(build_registry())
    reuse = job.report_of_full_strength
    for label, fn in (("warm-up", reuse), ("analyse again", lambda results, strengths: None), ("reuse", reuse),
                      ("analyse again", lambda results, strengths: None), ("reuse", reuse)):
        job.report_of_full_strength = fn
        t = time.process_time()
        for f in files:
            restorer.restore_photo(load_photo(f), job.RestoreOptions())
        print(f"{label}: {time.process_time() - t:.1f} CPU-s for {len(files)} crops", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
