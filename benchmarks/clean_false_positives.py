"""False positives of the degradation analysis on clean photos, per kind, over all of ../shared/data/clean.

Each photo is loaded as the app loads it (``engine.imageio.load_photo``: EXIF orientation, the
JPEG file's quantisation tables, EXIF ISO / exposure time) and analysed by:

- **hand-made**: ``engine.analysis.analyse`` (with the EXIF noise prior);
- **learned <model>**: each analyser ONNX given with ``--model`` (default: the bundled one) alone;
- **combined <model>**: ``engine.analysis.learned.combine`` of the two with the shipped per-kind choice;
- **session <model>**: the combined report with the JPEG file's own evidence
  (``with_file_evidence``), i.e. what the planner sees for that file.

A kind is a false positive when its severity reaches the presence threshold. The raw per-photo
numbers are cached in ``--cache`` (JSON lines; rerunning skips the photos already there), so the
run can be interrupted and resumed on a loaded machine. Writes benchmarks/results/clean-false-positives.md
(and prints it).

Run: .venv/bin/python benchmarks/clean_false_positives.py [--step 1] [--model models/x.onnx ...]
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
from engine.analysis.jpeg_tables import estimate_quality, with_file_evidence  # noqa: E402
from engine.analysis.learned import (AGREE_KINDS, LEARNED_PRESENCE_KINDS, LEARNED_SEVERITY_KINDS,  # noqa: E402
                                     LearnedAnalyser, combine, default_model_path)
from engine.analysis.report import DegradationReport, KindAssessment  # noqa: E402
from engine.kinds import KINDS  # noqa: E402
from _host import SCRATCH  # noqa: E402
from real_noise import machine  # noqa: E402

SHARED = Path(os.environ.get("RESTORA_SHARED", ROOT.parent / "shared"))
TARGET = 0.02
#: The per-kind choice shipped before the clean-photo measurement (learned presence, learned
#: severity, agreement kinds), shown for comparison.
PREVIOUS_CHOICE = (frozenset({"noise", "blur", "haze", "lowlight", "rain"}), frozenset({"noise", "rain"}), frozenset())


def _report(d: dict) -> DegradationReport:
    return DegradationReport({k: KindAssessment(severity=v["severity"], confidence=v["confidence"],
                                                measurements=v["measurements"]) for k, v in d.items()})


def _dump(r: DegradationReport) -> dict:
    return {k: {"severity": float(a.severity), "confidence": float(a.confidence),
                "measurements": {m: float(x) for m, x in a.measurements.items()
                                 if isinstance(x, (int, float, np.floating))}} for k, a in r.kinds.items()}


def cache_files(cache: Path) -> list[Path]:
    """The cache and its shards (``CACHE.K.jsonl``), those that exist."""
    return [p for p in [cache, *sorted(cache.parent.glob(cache.stem + ".*.jsonl"))] if p.exists()]


def measure(path: Path, models: dict[str, LearnedAnalyser]) -> dict:
    from engine.imageio import load_photo

    photo = load_photo(path)
    meta = photo.metadata
    iso = getattr(meta, "iso", None) if meta is not None else None
    exposure = getattr(meta, "exposure_s", None) if meta is not None else None
    quality = estimate_quality(photo.jpeg).quality if photo.jpeg is not None else None
    t = time.perf_counter()
    hand = analyse(photo.pixels, iso=iso, exposure_s=exposure, jpeg_quality=quality)
    row = {"name": path.name, "hand": _dump(hand), "hand_s": time.perf_counter() - t, "learned": {}}
    for name, net in models.items():
        row["learned"][name] = _dump(net.report(photo.pixels))
    if photo.jpeg is not None:
        row["file_jpeg"] = _dump(with_file_evidence(hand, photo.jpeg))["jpeg"]
    return row


def update_noise(row: dict, path: Path) -> dict:
    """``row`` (cached before the still-area measurements existed) with its hand-made noise verdict
    brought up to date: ``analyse`` now adds :func:`engine.analysis.noise_level.still_evidence` (the
    still-area chroma and luma, at the file's JPEG quality) to the noise measurements and takes the
    largest severity; nothing else in the hand-made analysis changed, and the networks' scores are kept."""
    from engine.analysis.analyser import _as_rgb, full_res_tiles
    from engine.analysis.noise_level import still_chroma_severity, still_evidence, still_luma_severity
    from engine.imageio import load_photo

    photo = load_photo(path)
    quality = estimate_quality(photo.jpeg).quality if photo.jpeg is not None else None
    m = still_evidence(full_res_tiles(_as_rgb(photo.pixels)), quality)
    noise = row["hand"]["noise"]
    noise["measurements"] |= m
    noise["severity"] = max(float(noise["severity"]), still_chroma_severity(noise["measurements"]),
                            still_luma_severity(noise["measurements"]))
    row["noise_updated"] = True
    return row


def verdicts(rows: list[dict], model: str, presence=LEARNED_PRESENCE_KINDS, severity=LEARNED_SEVERITY_KINDS,
             agree=AGREE_KINDS, label: str = "") -> dict[str, np.ndarray]:
    """Boolean N x 6 "present" arrays for hand-made, learned, combined and session (the JPEG
    file's evidence replaces the JPEG verdict as ``with_file_evidence`` does, when the JPEG verdict
    is the hand-made one)."""
    thr = DEFAULT_PRESENCE_THRESHOLD
    out: dict[str, list] = {"hand-made": [], f"learned {model}": [], f"combined {model}{label}": [],
                            f"session {model}{label}": []}
    for row in rows:
        hand, learned = _report(row["hand"]), _report(row["learned"][model])
        comb = combine(hand, learned, frozenset(presence), frozenset(severity), agree_kinds=frozenset(agree))
        sess = dict(comb.severities())
        if "file_jpeg" in row and "jpeg" not in presence and "jpeg" not in severity:
            sess["jpeg"] = row["file_jpeg"]["severity"]  # with_file_evidence of the hand-made JPEG verdict
        out["hand-made"].append([hand.severity(k) >= thr for k in KINDS])
        out[f"learned {model}"].append([learned.severity(k) >= thr for k in KINDS])
        out[f"combined {model}{label}"].append([comb.severity(k) >= thr for k in KINDS])
        out[f"session {model}{label}"].append([sess[k] >= thr for k in KINDS])
    return {k: np.array(v, bool).reshape(-1, len(KINDS)) for k, v in out.items()}


def table(rows: list[dict], models: list[str]) -> list[str]:
    n = len(rows)
    res: dict[str, np.ndarray] = {}
    for m in models:
        res |= verdicts(rows, m)
    p, s, a = PREVIOUS_CHOICE
    previous = verdicts(rows, models[0], p, s, a, label=" (previous choice)")
    res |= {k: v for k, v in previous.items() if "previous" in k}
    lines = ["| analysis | " + " | ".join(KINDS) + " | any kind |", "|---|" + "---|" * (len(KINDS) + 1)]
    for name, v in res.items():
        cells = [f"{v[:, i].mean():.1%} ({int(v[:, i].sum())})" + (" ✗" if v[:, i].mean() > TARGET else "")
                 for i in range(len(KINDS))]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {v.any(axis=1).mean():.1%} |")
    lines += ["", f"{n} photos; ✗: above the {TARGET:.0%} target."]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", type=int, default=1, help="every N-th photo (1 = all)")
    ap.add_argument("--model", type=Path, action="append", default=None,
                    help="analyser ONNX (repeatable; default: the bundled one)")
    ap.add_argument("--cache", type=Path, default=SCRATCH / "analyser" / "clean-fp.jsonl")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "clean-false-positives.md")
    ap.add_argument("--max-minutes", type=float, default=None, help="stop measuring after this long (resume later)")
    ap.add_argument("--shard", default=None,
                    help="K/N: measure only every N-th photo from the K-th, into CACHE.K.jsonl "
                                                  "(run N of these side by side, then once without --shard to report)")
    ap.add_argument("--update-noise-from", type=Path, default=None,
                    help="an older cache (and its shards): keep its networks' scores and hand-made verdicts, "
                         "recompute only the hand-made noise verdict (update_noise) into --cache")
    args = ap.parse_args(argv)
    if args.update_noise_from:
        old_rows: dict[str, dict] = {}
        for cache in cache_files(args.update_noise_from):
            for line in cache.read_text().splitlines():
                row = json.loads(line)
                if row["name"] in old_rows:
                    old_rows[row["name"]]["learned"] |= row["learned"]
                else:
                    old_rows[row["name"]] = row
        done = {json.loads(x)["name"] for c in cache_files(args.cache) for x in c.read_text().splitlines()}
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        with args.cache.open("a") as f:
            for name, row in old_rows.items():
                if name not in done:
                    f.write(json.dumps(update_noise(row, SHARED / "data" / "clean" / name)) + "\n")
                    f.flush()
    paths = args.model or [default_model_path()]
    models = {p.stem: LearnedAnalyser(p, threads=1) for p in paths}  # each alone (no per-kind substitution)
    files = sorted(f for f in (SHARED / "data" / "clean").iterdir()
                   if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"))[:: args.step]
    cached: dict[str, dict] = {}
    for cache in cache_files(args.cache):
        for line in cache.read_text().splitlines():
            row = json.loads(line)
            if row["name"] in cached:
                cached[row["name"]]["learned"] |= row["learned"]
            else:
                cached[row["name"]] = row
    todo = files
    if args.shard:
        k, n = (int(v) for v in args.shard.split("/"))
        todo = files[k::n]
        args.cache = args.cache.with_name(f"{args.cache.stem}.{k}.jsonl")
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with args.cache.open("a") as f:
        for i, path in enumerate(todo):
            row = cached.get(path.name)
            if row is not None and all(m in row["learned"] for m in models):
                continue
            if args.max_minutes and time.time() - t0 > args.max_minutes * 60:
                break
            missing = {m: net for m, net in models.items() if row is None or m not in row["learned"]}
            if row is None:
                new = measure(path, missing)
            else:  # the hand-made analysis is cached: only the missing networks run
                from engine.imageio import load_photo

                pixels = load_photo(path).pixels
                row["learned"] |= {m: _dump(net.report(pixels)) for m, net in missing.items()}
                new = row
            cached[path.name] = new
            f.write(json.dumps(new) + "\n")
            f.flush()
            if i % 25 == 0:
                print(f"{i + 1}/{len(files)} {time.time() - t0:.0f} s", file=sys.stderr)
    rows = [cached[p.name] for p in files if p.name in cached and all(m in cached[p.name]["learned"] for m in models)]
    names = list(models)
    lines = ["# False positives on clean photos, per kind", "",
             f"Machine: {machine()} (shared, loaded). `python benchmarks/clean_false_positives.py --step {args.step}"
             + "".join(f" --model {p}" for p in (args.model or [])) + f"`. Photos: {len(rows)} of "
             f"{len(files)} in shared/data/clean{' (every ' + str(args.step) + '-th)' if args.step > 1 else ''}, "
             "loaded "
             "as the app loads them. Present = severity ≥ the presence threshold "
             f"{DEFAULT_PRESENCE_THRESHOLD}. Combined = the shipped per-kind choice (learned presence: "
             f"{', '.join(sorted(LEARNED_PRESENCE_KINDS))}; both must agree: "
             f"{', '.join(sorted(AGREE_KINDS)) or '–'}; learned severity: {', '.join(sorted(LEARNED_SEVERITY_KINDS))}; "
             "previous choice: learned presence for noise, blur, "
             "haze, lowlight, rain); "
             "session = combined plus the JPEG file's own quantisation tables (what the planner sees).", ""]
    lines += table(rows, names)
    from training.data import is_validation
    held_out = [r for r in rows if is_validation(r["name"])]
    if held_out:
        lines += ["", f"The learned analyser was trained on crops of the other {len(rows) - len(held_out)} photos "
                  "(as clean examples and degraded), so the same table on the held-out validation photos alone:", ""]
        lines += table(held_out, names)
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
