"""Detection benchmark for engine.analysis.analyse on synthetic degradations.

A deterministic subset of ../shared/data/clean (every 8th file from the 7th, disjoint from the
calibration subset) is degraded with engine.degrade: every kind at several strengths, plus one
random 2–3-kind mixture per image. Prints and writes benchmarks/results/detection.md with
per-kind precision / recall / F1 at the presence threshold, the false-positive rate on the clean
photos, Spearman correlation of severity with strength, timing, and the verdicts on
../shared/data/real (no ground truth; for eyeballing).

Run: .venv/bin/python benchmarks/detection.py [--images 60] [--out benchmarks/results/detection.md]
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

from _host import cpu_model  # benchmarks/_host.py, beside this script

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "detection.md")
    parser.add_argument("--threshold", type=float, default=DEFAULT_PRESENCE_THRESHOLD)
    args = parser.parse_args()
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
