"""The default plan's decisions on some photos, for comparing two code trees: per file, the stages
kept or dropped, their reasons, a hash of the saved pixels, the megapixels and the CPU seconds,
appended as one JSON line to OUT (run it once per tree, from that tree, on the same files; then
compare the lines with ``--compare``).

Usage: ``PYTHONPATH=TREE python benchmarks/plan_decisions.py OUT.jsonl PHOTO...``

``python benchmarks/plan_decisions.py --compare BEFORE.jsonl AFTER.jsonl [GROUP=LISTFILE ...]``
prints a Markdown table: per file the CPU seconds before and after and whether stages, reasons and
pixels are the same; per group (the files named in LISTFILE, one path a line; default one group of
all) CPU seconds per megapixel before and after.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--compare":
        return compare(argv[1], argv[2], argv[3:])
    from PIL import Image

    from engine.experts.default import build_registry
    from engine.pipeline.job import RestoreOptions, Restorer

    restorer = Restorer(build_registry())
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(argv[1:]):
            src, target = Path(name), Path(tmp) / f"{i}.png"
            c0 = time.process_time()
            result = restorer.restore_file(src, lambda p, t=target: t, RestoreOptions(overwrite=True))
            cpu = time.process_time() - c0
            digest = None
            if result.error is None and target.exists():
                with Image.open(target) as im:
                    digest = hashlib.sha256(im.tobytes()).hexdigest()[:16]
            with Image.open(src) as im:
                mp = im.width * im.height / 1e6
            row = {"file": src.name, "mp": mp, "cpu": cpu, "error": result.error,
                   "stages": [(s["stage"], bool(s.get("dropped"))) for s in result.stages],
                   "reasons": [s.get("reason", "") for s in result.stages], "hash": digest}
            with open(argv[0], "a") as f:
                f.write(json.dumps(row) + "\n")
    return 0


def _rows(path: str) -> dict[str, dict]:
    return {r["file"]: r for r in map(json.loads, Path(path).read_text().splitlines()) if r}


def compare(before: str, after: str, groups: list[str]) -> int:
    a, b = _rows(before), _rows(after)
    common = [f for f in a if f in b]
    named = {}
    for spec in groups:
        label, _, listfile = spec.partition("=")
        named[label] = [Path(p).name for p in Path(listfile).read_text().split()]
    if not named:
        named = {"all": common}
    print("| file | CPU-s before | after | stages | reasons | pixels |\n|---|---|---|---|---|---|")
    for f in common:
        x, y = a[f], b[f]
        print(f"| {f} | {x['cpu']:.1f} | {y['cpu']:.1f} | {'same' if x['stages'] == y['stages'] else '**differ**'} | "
              f"{'same' if x['reasons'] == y['reasons'] else 'differ'} | "
              f"{'same' if x['hash'] == y['hash'] else '**differ**'} |")
    print("\n| group | files | same stages | same pixels | CPU-s/MP before | after | change |")
    print("|---|---|---|---|---|---|---|")
    for label, files in named.items():
        files = [f for f in files if f in a and f in b]
        if not files:
            continue
        mp = sum(a[f].get("mp", 0.0) for f in files) or float("nan")
        cb, ca = sum(a[f]["cpu"] for f in files) / mp, sum(b[f]["cpu"] for f in files) / mp
        same_s = sum(a[f]["stages"] == b[f]["stages"] for f in files)
        same_p = sum(a[f]["hash"] == b[f]["hash"] for f in files)
        print(f"| {label} | {len(files)} | {same_s} | {same_p} | {cb:.1f} | {ca:.1f} | {100 * (ca / cb - 1):+.0f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
