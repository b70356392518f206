"""Detection benchmark for engine.analysis.analyse on synthetic degradations.

A deterministic subset of ../shared/data/clean (every 8th file from the 7th, disjoint from the
calibration subset) is degraded with engine.degrade: every kind at several strengths, plus one
random 2–3-kind mixture per image. Prints and writes benchmarks/results/detection.md with
per-kind precision / recall / F1 at the presence threshold, the false-positive rate on the clean
photos, Spearman correlation of severity with strength, timing, and the verdicts on
../shared/data/real (no ground truth; for eyeballing).

Run: .venv/bin/python benchmarks/detection.py [--images 60] [--out benchmarks/results/detection.md]

``--blur-verdicts``: instead, which photos the shipped analysis (hand-made + the bundled network,
``engine.analysis.learned.analyse_combined``) calls blurry, now and under the previous rule (hand-made
and network agree, without the sharpest-tile condition of
``engine.analysis.analyser.MIN_SHARPEST_BLUR_PX``): photos of the training split (clean, synthetic
shallow depth of field, uniform blur, camera noise: what the condition was chosen on), the held-out
validation photos (clean and with a shallow depth of field), the real noisy crops (both halves),
and real shake (``blur_real_levin``, ``shared/data/real/blurry_*``). Per-photo results are cached
(``--cache``, JSON lines, ``--shard K/N``); writes benchmarks/results/blur-verdicts.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.stats import spearmanr

from _host import SCRATCH, cpu_model  # benchmarks/_host.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.analysis import DEFAULT_PRESENCE_THRESHOLD, analyse  # noqa: E402
from engine.degrade import degrade, degrade_chain  # noqa: E402
from engine.kinds import KINDS  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
STRENGTHS = (0.2, 0.5, 0.8)


def load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), np.float32) / 255.0


def machine() -> str:
    import os
    return (f"{cpu_model()}, {os.cpu_count()} logical cores available, Python {platform.python_version()}, "
            f"numpy {np.__version__}")


def mixture(rng: np.random.Generator) -> list[tuple[str, float]]:
    n = int(rng.integers(2, 4))
    kinds = list(rng.choice(KINDS, size=n, replace=False))
    return [(str(k), round(float(rng.uniform(0.3, 0.9)), 2)) for k in kinds]


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else float("nan")
    r = tp / (tp + fn) if tp + fn else float("nan")
    f = 2 * p * r / (p + r) if tp and p + r else 0.0
    return p, r, f


def blur_groups(fit_step: int) -> dict[str, list[tuple[str, object]]]:
    """``{group: [(photo name, loader)]}`` for :func:`blur_verdicts`; loaders return float RGB."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from real_blur import shallow_dof

    from engine.degrade.camera import camera_noise
    from training.data import is_validation

    clean = sorted((DATA / "clean").iterdir())
    train = [p for p in clean if not is_validation(p)][::fit_step]
    val = [p for p in clean if is_validation(p)]
    pairs = DATA / "pairs"
    return {
        "training split: clean": [(p.name, lambda p=p: load(p)) for p in train],
        "training split: shallow depth of field": [(p.name, lambda p=p: shallow_dof(load(p))) for p in train],
        "training split: camera noise 0.5": [(p.name, lambda p=p: camera_noise(load(p), 0.5, seed=7)[0])
                                             for p in train],
        "training split: uniform blur 0.5 (should be flagged)": [
            (p.name, lambda p=p: degrade(load(p), "blur", 0.5, seed=7)) for p in train],
        "training split: uniform blur 0.8 (should be flagged)": [
            (p.name, lambda p=p: degrade(load(p), "blur", 0.8, seed=7)) for p in train],
        "held-out clean photos": [(p.name, lambda p=p: load(p)) for p in val],
        "held-out photos, synthetic shallow depth of field": [(p.name, lambda p=p: shallow_dof(load(p))) for p in val],
        "real noisy crops (noise_real_polyu_crops, noisy halves)": [
            (p.name, lambda p=p: load(p)) for p in sorted((pairs / "noise_real_polyu_crops" / "lq").iterdir())],
        "the same crops' clean halves (averaged frames, no noise)": [
            (p.name, lambda p=p: load(p)) for p in sorted((pairs / "noise_real_polyu_crops" / "gt").iterdir())],
        "real shake, blur_real_levin (should be flagged)": [
            (p.name, lambda p=p: load(p)) for p in sorted((pairs / "blur_real_levin" / "lq").iterdir())],
        "blur_real_levin ground truth (sharp)": [
            (p.name, lambda p=p: load(p)) for p in sorted((pairs / "blur_real_levin" / "gt").iterdir())],
        "real shake, shared/data/real/blurry_* (should be flagged)": [
            (p.name, lambda p=p: load(p)) for p in sorted((DATA / "real").glob("blurry_*"))],
    }


def blur_verdicts(args: argparse.Namespace) -> None:
    """The ``--blur-verdicts`` report (see the module docstring)."""
    import json
    import os

    from engine.analysis.analyser import MIN_SHARPEST_BLUR_PX
    from engine.analysis.calibration import severity_from
    from engine.analysis.learned import LearnedAnalyser, analyse_combined

    thr = args.threshold
    groups = blur_groups(args.fit_step)
    cached: dict[tuple[str, str], dict] = {}
    for part in [args.cache, *sorted(args.cache.parent.glob(args.cache.stem + ".*.jsonl"))]:
        if part.exists():
            for line in part.read_text().splitlines():
                r = json.loads(line)
                cached[(r["group"], r["name"])] = r
    items = [(g, n, f) for g, members in groups.items() for n, f in members]
    cache = args.cache
    if args.shard:
        k, n = (int(v) for v in args.shard.split("/"))
        items = items[k::n]
        cache = cache.with_name(f"{cache.stem}.{k}.jsonl")
    net = LearnedAnalyser(threads=1)
    cache.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with cache.open("a") as f:
        for i, (group, name, loader) in enumerate(items):
            if (group, name) in cached:
                continue
            report = analyse_combined(loader(), analyser=net)
            b = report.kinds["blur"].measurements
            row = {"group": group, "name": name, "severity": report.severity("blur"),
                   "hand_ungated": severity_from("blur", b), "learned": b.get("learned_probability", float("nan")),
                   "learned_strength": b.get("learned_strength", float("nan")),
                   "sharpest_tile_width_px": b.get("sharpest_tile_width_px", float("nan")),
                   "edge_width_px": b.get("edge_width_px", float("nan"))}
            cached[(group, name)] = row
            f.write(json.dumps(row) + "\n")
            f.flush()
            if i % 20 == 0:
                print(f"{i + 1}/{len(items)} {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    if args.shard:
        return
    from engine.analysis.learned import learned_severity

    lines = ["# Which photos the analysis calls blurry", "",
             f"Command: `.venv/bin/python benchmarks/detection.py --blur-verdicts --fit-step {args.fit_step}`  ",
             f"Machine: {machine()}; shared and loaded (load average {os.getloadavg()[0]:.0f} at the end).  ",
             "Analysis: the shipped one (hand-made + `models/restora-analyser-v3.onnx`, "
             "`engine.analysis.learned.analyse_combined`). *Previous*: blur present when the hand-made edge "
             "width and the network both say so. *Now*: the hand-made edge width alone, with the condition that "
             f"the sharpest of 3 x 3 tiles has edges at least {MIN_SHARPEST_BLUR_PX} px wide (`MIN_SHARPEST_BLUR_PX`; "
             "with it, the hand-made verdict measures better than the agreement: `analysis-choice.md`). "
             "Training-split groups: every "
             f"{args.fit_step}-th photo of the analyser's training split (what the width was chosen on); every "
             "other group is for reporting only. Shallow depth of field: a sharp centre ellipse, the rest "
             "defocused by a 6-px disc (`benchmarks/real_blur.py: shallow_dof`).", "",
             "| photos | previous: flagged blurry | now: flagged blurry | sharpest tile px: median (max) |",
             "|---|---|---|---|"]
    for group, members in groups.items():
        rows = [cached[(group, n)] for n, _ in members if (group, n) in cached]
        if not rows:
            continue
        prev = sum(r["hand_ungated"] >= thr and learned_severity(r["learned"], r["learned_strength"]) >= thr
                   for r in rows)
        now = sum(r["severity"] >= thr for r in rows)
        width = np.array([r["sharpest_tile_width_px"] for r in rows], float)
        lines.append(f"| {group} | {prev / len(rows):.1%} ({prev}/{len(rows)}) | {now / len(rows):.1%} "
                     f"({now}/{len(rows)}) | {np.nanmedian(width):.2f} ({np.nanmax(width):.2f}) |")
    noisy, clean_halves = (next((g for g in groups if g.startswith(start)), "")
                           for start in ("real noisy crops", "the same crops' clean halves"))
    both = [n for n, _ in groups.get(noisy, []) if (noisy, n) in cached and (clean_halves, n) in cached]
    if both:
        only_noisy = [n for n in both if cached[(noisy, n)]["severity"] >= thr > cached[(clean_halves, n)]["severity"]]
        lines += ["", f"Real noisy crops called blurry whose noise-free half is not: {len(only_noisy)} of {len(both)}"
                  + (f" ({', '.join(only_noisy)})" if only_noisy else "") + "."]
    text = "\n".join(lines) + "\n"
    print(text)
    args.blur_out.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "detection.md")
    parser.add_argument("--threshold", type=float, default=DEFAULT_PRESENCE_THRESHOLD)
    parser.add_argument("--blur-verdicts", action="store_true", help="the blur-verdict report instead")
    parser.add_argument("--fit-step", type=int, default=16, help="with --blur-verdicts: every N-th training photo")
    parser.add_argument("--cache", type=Path, default=SCRATCH / "analyser" / "blur-verdicts.jsonl")
    parser.add_argument("--shard", default=None, help="with --blur-verdicts: K/N, measure part K into CACHE.K.jsonl")
    parser.add_argument("--blur-out", type=Path, default=ROOT / "benchmarks" / "results" / "blur-verdicts.md")
    args = parser.parse_args()
    if args.blur_verdicts:
        blur_verdicts(args)
        return
    thr = args.threshold
    files = sorted((DATA / "clean").iterdir())[6::8][:args.images]
    rng = np.random.default_rng(2024)
    # samples: (image index, {kind: strength}, severities)
    samples: list[tuple[str, dict[str, float], dict[str, float]]] = []
    times = []
    t_start = time.time()
    for i, path in enumerate(files):
        img = load(path)
        cases: list[tuple[str, dict[str, float], np.ndarray]] = [("clean", {}, img)]
        for kind in KINDS:
            for s in STRENGTHS:
                cases.append(("single", {kind: s}, degrade(img, kind, s, seed=1000 + i)))
        steps = mixture(rng)
        cases.append(("mixture", dict(steps), degrade_chain(img, steps, seed=2000 + i)))
        for group, truth, x in cases:
            t0 = time.perf_counter()
            report = analyse(x)
            times.append(time.perf_counter() - t0)
            samples.append((group, truth, report.severities()))
        print(f"{i + 1}/{len(files)} {path.name} ({time.time() - t_start:.0f} s)", file=sys.stderr)

    lines = ["# Degradation detection benchmark", "",
             f"Command: `.venv/bin/python benchmarks/detection.py --images {args.images}`  ",
             f"Machine: {machine()}  ",
             f"Images: {len(files)} from shared/data/clean (every 8th from the 7th; disjoint from the "
             f"calibration subset). Per image: clean, each kind at strengths {STRENGTHS}, one random "
             f"2–3-kind mixture (strengths 0.3–0.9, random order). Presence threshold {thr}.", ""]

    lines += ["## Single degradations and clean photos", "",
              "| kind | precision | recall | F1 | recall @0.2 | recall @0.5 | recall @0.8 | FP rate on clean "
              "| Spearman(severity, strength) |",
              "|---|---|---|---|---|---|---|---|---|"]
    single = [s for s in samples if s[0] in ("clean", "single")]
    summary = {}
    for kind in KINDS:
        tp = sum(1 for _, t, sev in single if kind in t and sev[kind] >= thr)
        fn = sum(1 for _, t, sev in single if kind in t and sev[kind] < thr)
        fp = sum(1 for _, t, sev in single if kind not in t and sev[kind] >= thr)
        p, r, f = prf(tp, fp, fn)
        rec = []
        for s in STRENGTHS:
            hits = [sev[kind] >= thr for _, t, sev in single if t.get(kind) == s]
            rec.append(np.mean(hits))
        clean = [sev[kind] >= thr for g, _, sev in single if g == "clean"]
        xs = [t.get(kind, 0.0) for g, t, sev in single if g == "clean" or kind in t]
        ys = [sev[kind] for g, t, sev in single if g == "clean" or kind in t]
        rho = spearmanr(xs, ys).statistic
        summary[kind] = (p, r, f, np.mean(clean), rho)
        lines.append(f"| {kind} | {p:.3f} | {r:.3f} | {f:.3f} | {rec[0]:.2f} | {rec[1]:.2f} | {rec[2]:.2f} | "
                     f"{np.mean(clean):.3f} | {rho:.3f} |")
    any_flag = np.mean([any(v >= thr for v in sev.values()) for g, _, sev in single if g == "clean"])
    lines += ["", f"Clean photos with any kind flagged: {any_flag:.3f} ({len(files)} photos).", ""]

    lines += ["Cross-talk: fraction of single-kind samples (all strengths) in which *another* kind was flagged "
              "(rows: applied kind, columns: flagged kind).", "",
              "| applied \\ flagged | " + " | ".join(KINDS) + " |", "|---|" + "---|" * len(KINDS)]
    for applied in KINDS:
        rows = [sev for g, t, sev in single if g == "single" and applied in t]
        cells = ["–" if k == applied else f"{np.mean([r[k] >= thr for r in rows]):.2f}" for k in KINDS]
        lines.append(f"| {applied} | " + " | ".join(cells) + " |")

    lines += ["", "## Mixtures", "",
              "Labels are the kinds applied; a kind applied early can be masked by later steps (noise "
              "smoothed away by a later blur or JPEG, darkened by low light), so recall is also given "
              "for the samples where the kind was the last step.", "",
              "| kind | precision | recall | F1 | n present | recall when applied last (n) |",
              "|---|---|---|---|---|---|"]
    mixed = [s for s in samples if s[0] == "mixture"]
    for kind in KINDS:
        tp = sum(1 for _, t, sev in mixed if kind in t and sev[kind] >= thr)
        fn = sum(1 for _, t, sev in mixed if kind in t and sev[kind] < thr)
        fp = sum(1 for _, t, sev in mixed if kind not in t and sev[kind] >= thr)
        p, r, f = prf(tp, fp, fn)
        last = [sev[kind] >= thr for _, t, sev in mixed if t and list(t)[-1] == kind]
        last_text = f"{np.mean(last):.2f} ({len(last)})" if last else "–"
        lines.append(f"| {kind} | {p:.3f} | {r:.3f} | {f:.3f} | {tp + fn} | {last_text} |")

    t = np.array(times)
    lines += ["", "## Speed", "",
              f"analyse() on these {len(files)}-photo samples (≤ 768 px): mean {t.mean() * 1000:.0f} ms, "
              f"median {np.median(t) * 1000:.0f} ms, max {t.max() * 1000:.0f} ms."]
    import cv2
    big = cv2.resize(load(files[0]), (6000, 4000), interpolation=cv2.INTER_LINEAR)
    t0 = time.perf_counter()
    analyse(big)
    lines.append(f"analyse() on a 6000×4000 (24 MP) array: {time.perf_counter() - t0:.2f} s.")

    lines += ["", "## Real degraded photos (shared/data/real, no ground truth)", "",
              "| file | " + " | ".join(KINDS) + " | flagged |", "|---|" + "---|" * (len(KINDS) + 1)]
    for path in sorted((DATA / "real").iterdir()):
        sev = analyse(load(path)).severities()
        flagged = ", ".join(k for k in KINDS if sev[k] >= thr) or "–"
        lines.append(f"| {path.name} | " + " | ".join(f"{sev[k]:.2f}" for k in KINDS) + f" | {flagged} |")
    lines.append("")
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
