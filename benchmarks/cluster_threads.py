"""Why one single-threaded cluster worker outran a local run on the 2-core machine: the same
photos restored in-process by a local Restorer with the libraries' default threads, and with
one thread (what a ``--cluster`` worker with ``--worker-cpus 1`` uses), alternating
default, one, one, default. Reports wall and CPU seconds per configuration.

    .venv/bin/python benchmarks/cluster_threads.py     # writes benchmarks/results/cluster-threads.md
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "cluster-threads.md"


def measure(folder: Path, one_thread: bool) -> dict:
    from engine.cluster.runner import _limit_threads
    from engine.experts.default import build_registry
    from engine.imageio import load_photo
    from engine.pipeline.job import Restorer

    if one_thread:
        _limit_threads(1)
    registry = build_registry(device="cpu")
    if one_thread:
        for expert in registry.all():
            if getattr(expert, "threads", 0) is None:
                expert.threads = 1
    restorer = Restorer(registry)
    files = sorted(folder.glob("*.png"))
    restorer.restore_photo(load_photo(files[0]))  # warm-up: sessions created, models loaded
    wall, cpu = time.perf_counter(), time.process_time()
    for path in files:
        restorer.restore_photo(load_photo(path))
    return {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(time.process_time() - cpu, 1),
            "files": len(files), "load_1min": round(os.getloadavg()[0], 1)}


def main() -> int:
    if len(sys.argv) == 3:  # child: measure one configuration in a fresh process
        print(json.dumps(measure(Path(sys.argv[1]), sys.argv[2] == "one")))
        return 0
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from cluster import CLEAN, make_archive

    rows = []
    with tempfile.TemporaryDirectory(prefix="restora-threads-") as tmp:
        make_archive(Path(tmp) / "in", 6, CLEAN if len(sys.argv) == 1 else Path(sys.argv[1]))
        for mode in ("default", "one", "one", "default"):
            out = subprocess.run([sys.executable, __file__, str(Path(tmp) / "in"), mode], check=True,
                                 capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT))).stdout
            rows.append({"threads": mode, **json.loads(out.strip().splitlines()[-1])})
            print(rows[-1], file=sys.stderr)
    lines = ["# Threads per restoration: library defaults vs one", "",
             "Produced by `benchmarks/cluster_threads.py`: 6 photos of the `benchmarks/cluster.py` archive (BSDS500 "
             "481x321, one degradation each) restored in one process with the default plan after a warm-up, with "
             "onnxruntime/torch on their default threads (2 here) and with one thread each (as a `--cluster` worker "
             f"with `--worker-cpus 1`). {os.cpu_count()} cores, shared with other work (load average below).", "",
             "| threads | files | wall s | CPU s | load (1 min) |", "|---|---|---|---|---|"]
    lines += [f"| {r['threads']} | {r['files']} | {r['wall_s']} | {r['cpu_s']} | {r['load_1min']} |" for r in rows]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
