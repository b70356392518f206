"""Does the analysis see the degradation of real pairs, and leave their clean halves alone? Per set.

For each set of ../shared/data/pairs (validation only, never trained on) the expected kind is
known (noise_real_polyu_* → noise, blur_real_levin → blur, haze_reside → haze,
lowlight_real_lol_train → lowlight, rain_synthetic → rain). For every pair the degraded photo
(lq) and its ground truth (gt) are analysed by the hand-made analysis, by each learned analyser
given with ``--model`` alone, and by their combination (``engine.analysis.learned.combine``)
with the shipped per-kind choice. Reported per set: the detection rate of the expected kind on
lq, and on gt the rate at which that kind is (falsely) reported. Hand-made reports and learned
scores are cached per image in ``--cache`` (JSON lines), so reruns with another model only
run that model. Writes benchmarks/results/analyser-pairs.md (and ``--json``).

Run: .venv/bin/python benchmarks/analyser_pairs.py --model models/restora-analyser-v1.onnx [--model NEW.onnx]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from engine.analysis import DEFAULT_PRESENCE_THRESHOLD, analyse  # noqa: E402
from engine.analysis.learned import (LEARNED_PRESENCE_KINDS, LEARNED_SEVERITY_KINDS, LearnedAnalyser,  # noqa: E402
                                     combine, default_model_path)
from engine.analysis.report import DegradationReport, KindAssessment  # noqa: E402
from _host import SCRATCH  # noqa: E402
from real_noise import machine  # noqa: E402

PAIRS = Path(os.environ.get("RESTORA_SHARED", ROOT.parent / "shared")) / "data" / "pairs"
SETS = {"noise_real_polyu_crops": "noise", "noise_real_polyu_fullsize": "noise", "blur_real_levin": "blur",
        "haze_reside": "haze", "lowlight_real_lol_train": "lowlight", "rain_synthetic": "rain"}


def _dump(r: DegradationReport) -> dict:
    return {k: {"severity": float(a.severity), "confidence": float(a.confidence),
                "measurements": {m: float(x) for m, x in a.measurements.items()
                                 if isinstance(x, (int, float, np.floating))}} for k, a in r.kinds.items()}


def _report(d: dict) -> DegradationReport:
    return DegradationReport({k: KindAssessment(severity=v["severity"], confidence=v["confidence"],
                                                measurements=v["measurements"]) for k, v in d.items()})


def load_rgb(path: Path) -> np.ndarray:
    from engine.imageio import load_photo

    px = load_photo(path).pixels
    if px.ndim == 2:
        px = px[..., None]
    if px.shape[2] == 1:
        px = np.repeat(px, 3, axis=2)
    return np.ascontiguousarray(px[..., :3], dtype=np.float32)


def pair_file(set_name: str, half: str, name: str) -> Path:
    """The ``half`` (lq or gt) of pair ``name``: same file name, or the same stem with another
    suffix (a JPEG hazy photo's ground truth is a PNG)."""
    path = PAIRS / set_name / half / name
    if path.exists():
        return path
    stem = Path(name).stem
    return next(p for p in sorted((PAIRS / set_name / half).iterdir()) if p.stem == stem)


def collect(models: dict[str, LearnedAnalyser], cache: Path, sets: list[str], shard: str | None = None
            ) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for path in [p for p in [cache, *sorted(cache.parent.glob(cache.stem + ".*.jsonl"))] if p.exists()]:
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if r["key"] in rows:
                rows[r["key"]]["learned"] |= r["learned"]
            else:
                rows[r["key"]] = r
    k, n = (int(v) for v in shard.split("/")) if shard else (0, 1)
    if shard:
        cache = cache.with_name(f"{cache.stem}.{k}.jsonl")
    cache.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with cache.open("a") as f:
        for s in sets:
            for name in sorted(os.listdir(PAIRS / s / "lq"))[k::n]:
                for half in ("lq", "gt"):
                    key = f"{s}/{half}/{name}"
                    row = rows.get(key)
                    missing = [m for m in models if row is None or m not in row["learned"]]
                    if not missing:
                        continue
                    img = load_rgb(pair_file(s, half, name))
                    if row is None:
                        row = {"key": key, "hand": _dump(analyse(img)), "learned": {}}
                    for m in missing:
                        row["learned"][m] = _dump(models[m].report(img))
                    rows[key] = row
                    f.write(json.dumps(row) + "\n")
                    f.flush()
            print(f"{s} done ({time.time() - t0:.0f} s)", file=sys.stderr)
    return rows


def rates(rows: dict[str, dict], model: str, presence=LEARNED_PRESENCE_KINDS, severity=LEARNED_SEVERITY_KINDS,
          sets: tuple[str, ...] = tuple(SETS)) -> dict[str, dict[str, dict[str, float]]]:
    """{set: {analysis: {"detect": rate on lq, "false": rate on gt}}} for the expected kind."""
    thr = DEFAULT_PRESENCE_THRESHOLD
    out: dict = {}
    for s in sets:
        kind = SETS[s]
        acc: dict[str, dict[str, list[bool]]] = {}
        for key, row in rows.items():
            if not key.startswith(s + "/") or model not in row["learned"]:
                continue
            half = key.split("/")[1]
            hand, learned = _report(row["hand"]), _report(row["learned"][model])
            comb = combine(hand, learned, frozenset(presence), frozenset(severity))
            for name, rep in (("hand-made", hand), (f"learned {model}", learned), (f"combined {model}", comb)):
                acc.setdefault(name, {"lq": [], "gt": []})[half].append(rep.severity(kind) >= thr)
        out[s] = {name: {"detect": float(np.mean(v["lq"])) if v["lq"] else float("nan"),
                         "false": float(np.mean(v["gt"])) if v["gt"] else float("nan"), "n": len(v["lq"])}
                  for name, v in acc.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, action="append", default=None)
    ap.add_argument("--cache", type=Path, default=SCRATCH / "analyser" / "pairs.jsonl")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "analyser-pairs.md")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--shard", default=None,
                    help="K/N: analyse only every N-th pair from the K-th, into CACHE.K.jsonl, "
                                                  "and exit (run N side by side, then once without --shard to report)")
    args = ap.parse_args(argv)
    paths = args.model or [default_model_path()]
    models = {p.stem: LearnedAnalyser(p, threads=1) for p in paths}
    sets = [s for s in args.sets.split(",") if (PAIRS / s / "lq").is_dir()]
    rows = collect(models, args.cache, sets, args.shard)
    if args.shard:
        return 0
    lines = ["# Analysis on the real validation pairs: detection of the expected kind", "",
             f"Machine: {machine()} (shared, loaded). `python benchmarks/analyser_pairs.py"
             + "".join(f" --model {p}" for p in paths) + "`. Detect: the expected kind reported present "
             f"(severity ≥ {DEFAULT_PRESENCE_THRESHOLD}) on the degraded photo; false: reported on its clean ground "
             "truth. Combined: the shipped per-kind choice (learned presence: "
             f"{', '.join(sorted(LEARNED_PRESENCE_KINDS))}; learned severity: "
             f"{', '.join(sorted(LEARNED_SEVERITY_KINDS))}).", "",
             "| set (kind, pairs) | analysis | detect on degraded | false on clean |", "|---|---|---|---|"]
    all_rates = {}
    for m in models:
        for s, res in rates(rows, m, sets=sets).items():
            for name, r in res.items():
                if name == "hand-made" and (s, name) in all_rates:
                    continue
                all_rates[(s, name)] = r
    for s in sets:
        for (s2, name), r in all_rates.items():
            if s2 == s:
                lines.append(f"| {s} ({SETS[s]}, {r['n']}) | {name} | {r['detect']:.0%} | {r['false']:.0%} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({f"{s}|{n}": r for (s, n), r in all_rates.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
