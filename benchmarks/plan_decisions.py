"""The default plan's decisions on some photos, for comparing two code trees: per file, the stages
kept or dropped, their reasons, a hash of the saved pixels and the CPU seconds, appended as one JSON
line to OUT (run it once per tree, from that tree, on the same files; then compare the lines).

Usage: ``PYTHONPATH=TREE python benchmarks/plan_decisions.py OUT.jsonl PHOTO...``
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    from PIL import Image

    from engine.experts.default import build_registry
    from engine.pipeline.job import RestoreOptions, Restorer

    restorer = Restorer(build_registry())
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(argv[1:]):
            src, target = Path(name), Path(tmp) / f"{i}.png"
            c0 = time.process_time()
            result = restorer.restore_file(src, lambda p, t=target: t, RestoreOptions(overwrite=True))
            digest = None
            if result.error is None and target.exists():
                with Image.open(target) as im:
                    digest = hashlib.sha256(im.tobytes()).hexdigest()[:16]
            row = {"file": src.name, "cpu": time.process_time() - c0, "error": result.error,
                   "stages": [(s["stage"], bool(s.get("dropped"))) for s in result.stages],
                   "reasons": [s.get("reason", "") for s in result.stages], "hash": digest}
            with open(argv[0], "a") as f:
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
