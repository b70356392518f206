"""Compare the hand-made, learned and combined degradation analysis on the validation photos.

One command: ``python -m training.eval_analyser`` → ``benchmarks/results/analyser.md`` (full
table), ``analyser-summary.md`` (for the model card) and ``analyser.json`` (raw numbers and the
per-kind choice for ``engine.analysis.learned.LEARNED_PRESENCE_KINDS`` and ``LEARNED_SEVERITY_KINDS``).

Cases per validation photo (deterministic): the clean photo, each of the six kinds alone at a
random strength in [0.15, 1], and four of the evaluated mixtures (cycled over photos) with
random strengths. Metrics per kind: F1 of "present" (severity ≥ 0.15) against the truth,
false-positive rate on the clean photos, and Spearman correlation of the reported severity with
the true strength over the cases where the kind is present.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from engine.analysis import DEFAULT_PRESENCE_THRESHOLD, analyse
from engine.analysis.learned import LearnedAnalyser, combine
from engine.degrade import degrade_chain
from engine.kinds import KINDS

from .common import limit_threads
from .data import DEFAULT_DATA, EVAL_MIXTURES, load_split, load_uint8, physical_order, to_float

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
METHODS = ("hand-made", "learned", "combined")
#: The learned verdict replaces the hand-made one for a kind when its F1 is higher by at least
#: this much and its false-positive rate on clean photos is not higher by more than FP_SLACK.
F1_MARGIN = 0.02
FP_SLACK = 0.03
#: ...and its severity replaces the hand-made one when its Spearman ρ is higher by at least this.
RHO_MARGIN = 0.02


def cases_for(index: int, rng: np.random.Generator) -> list[list[tuple[str, float]]]:
    cases: list[list[tuple[str, float]]] = [[]]
    cases += [[(k, float(rng.uniform(0.15, 1.0)))] for k in KINDS]
    for j in range(4):
        mixture = EVAL_MIXTURES[(4 * index + j) % len(EVAL_MIXTURES)]
        cases.append([(k, float(rng.uniform(0.15, 1.0))) for k in physical_order(mixture, rng)])
    return cases


def metrics(pred: np.ndarray, truth: np.ndarray, clean: np.ndarray) -> dict[str, dict[str, float]]:
    """Per kind: F1, false-positive rate on clean cases, Spearman ρ on present cases.
    ``pred``/``truth``: N x 6 severities/strengths; ``clean``: boolean N (no degradation)."""
    out = {}
    thr = DEFAULT_PRESENCE_THRESHOLD
    for i, k in enumerate(KINDS):
        p, t = pred[:, i] >= thr, truth[:, i] > 0
        tp, fp, fn = int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())
        f1 = 2 * tp / max(2 * tp + fp + fn, 1)
        fpr = float(p[clean].mean()) if clean.any() else float("nan")
        rho = spearmanr(pred[t, i], truth[t, i]).statistic if t.sum() > 2 else float("nan")
        out[k] = {"f1": f1, "fp_clean": fpr, "spearman": float(np.nan_to_num(rho)),
                  "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1)}
    return out


def choose(m_hand: dict, m_learned: dict) -> tuple[list[str], list[str]]:
    """``(presence kinds, severity kinds)`` for which the learned analysis measured better: F1 higher by
    F1_MARGIN without a clean false-positive rate higher by more than FP_SLACK; Spearman ρ higher by
    RHO_MARGIN."""
    presence = [k for k in KINDS
                if m_learned[k]["f1"] >= m_hand[k]["f1"] + F1_MARGIN
                and m_learned[k]["fp_clean"] <= m_hand[k]["fp_clean"] + FP_SLACK]
    severity = [k for k in KINDS if m_learned[k]["spearman"] >= m_hand[k]["spearman"] + RHO_MARGIN]
    return presence, severity


def render(results: dict, chosen: list[str], chosen_severity: list[str], n_photos: int, n_cases: int,
           seconds: dict) -> tuple[str, str]:
    head = "| kind | " + " | ".join(f"F1 {m}" for m in METHODS) + " | " + \
        " | ".join(f"FP clean {m}" for m in METHODS) + " | " + " | ".join(f"ρ {m}" for m in METHODS) + " |"
    rows = [head, "|" + "---|" * (1 + 3 * len(METHODS))]
    for k in KINDS:
        cells = [f"{results[m][k]['f1']:.2f}" for m in METHODS]
        cells += [f"{results[m][k]['fp_clean']:.2f}" for m in METHODS]
        cells += [f"{results[m][k]['spearman']:.2f}" for m in METHODS]
        tag = "/".join(t for t, src in (("presence", chosen), ("severity", chosen_severity)) if k in src)
        rows.append(f"| {k}{f' (learned {tag})' if tag else ''} | " + " | ".join(cells) + " |")
    means = [f"{np.mean([results[m][k]['f1'] for k in KINDS]):.2f}" for m in METHODS]
    means += [f"{np.mean([results[m][k]['fp_clean'] for k in KINDS]):.2f}" for m in METHODS]
    means += [f"{np.mean([results[m][k]['spearman'] for k in KINDS]):.2f}" for m in METHODS]
    rows.append("| **mean** | " + " | ".join(means) + " |")
    table = "\n".join(rows)
    summary = (f"{n_cases} cases on {n_photos} validation photos. Combined = hand-made analysis with the learned "
               f"presence for: {', '.join(chosen) or 'no kind'}; learned severity for: "
               f"{', '.join(chosen_severity) or 'no kind'}.\n\n{table}")
    full = f"""# Degradation analysis: hand-made vs learned vs combined

Produced by `python -m training.eval_analyser` (deterministic). Validation photos of
`shared/data/clean` (file-name hash split, never trained on); per photo: the clean photo, each
kind alone at a random strength in [0.15, 1], and four of the evaluated mixtures (cycled) with
random strengths per kind — {n_cases} cases on {n_photos} photos.

- **F1**: "present" (severity ≥ {DEFAULT_PRESENCE_THRESHOLD}) against the truth, over all cases.
- **FP clean**: fraction of the clean photos on which the kind is reported present.
- **ρ**: Spearman correlation of the reported severity with the true strength, over the cases
  where the kind is present.

The combined analysis takes a kind's *presence* from the learned analyser when its F1 is at
least {F1_MARGIN} higher and its clean false-positive rate at most {FP_SLACK} higher than the
hand-made one's, and its *severity* when its ρ is at least {RHO_MARGIN} higher; those kinds are
marked and recorded in `engine.analysis.learned.LEARNED_PRESENCE_KINDS` /
`LEARNED_SEVERITY_KINDS`.

{table}

Seconds per photo (these 481 x 321 photos, CPU, shared machine): hand-made {seconds['hand-made']:.3f},
learned {seconds['learned']:.3f}.

Caveats: the cases are synthetic (`engine.degrade`), the same generator the learned analyser was
trained on, which favours it; real photos (real camera noise, real haze) are not measured here.
The clean photos themselves carry some real degradations (some Sun–Hays photos carry JPEG
traces, some BSDS photos are soft), which count as false positives for both.
"""
    return full, summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--model", type=Path, default=None, help="analyser ONNX (default: the bundled one)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--limit", type=int, default=None, help="only the first N validation photos")
    p.add_argument("--seed", type=int, default=2024)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limit_threads(1)
    _, val = load_split(args.data)
    if args.limit:
        val = val[:args.limit]
    learned_net = LearnedAnalyser(args.model, threads=1)
    rng = np.random.default_rng(args.seed)
    truth, clean, hand, learned = [], [], [], []
    seconds = {"hand-made": 0.0, "learned": 0.0}
    for i, path in enumerate(val):
        photo = to_float(load_uint8(path))
        for j, recipe in enumerate(cases_for(i, rng)):
            img = degrade_chain(photo, recipe, seed=args.seed + 1000 * i + j)
            t = time.perf_counter()
            h = analyse(img)
            seconds["hand-made"] += time.perf_counter() - t
            t = time.perf_counter()
            lr = learned_net.report(img)
            seconds["learned"] += time.perf_counter() - t
            hand.append(h)
            learned.append(lr)
            s = np.zeros(len(KINDS))
            for k, v in recipe:
                s[KINDS.index(k)] = max(s[KINDS.index(k)], v)
            truth.append(s)
            clean.append(not recipe)
    truth_a, clean_a = np.array(truth), np.array(clean)
    sev = lambda reports: np.array([[r.severity(k) for k in KINDS] for r in reports])  # noqa: E731
    results = {"hand-made": metrics(sev(hand), truth_a, clean_a), "learned": metrics(sev(learned), truth_a, clean_a)}
    chosen, chosen_severity = choose(results["hand-made"], results["learned"])
    combined = [combine(h, lr, frozenset(chosen), frozenset(chosen_severity))
                for h, lr in zip(hand, learned, strict=True)]
    results["combined"] = metrics(sev(combined), truth_a, clean_a)
    n_cases = len(truth)
    seconds = {k: v / n_cases for k, v in seconds.items()}
    full, summary = render(results, chosen, chosen_severity, len(val), n_cases, seconds)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "analyser.md").write_text(full)
    (args.out / "analyser-summary.md").write_text(summary + "\n")
    (args.out / "analyser.json").write_text(json.dumps(
        {"results": results, "learned_presence_kinds": chosen, "learned_severity_kinds": chosen_severity,
         "cases": n_cases, "photos": len(val), "seconds_per_photo": seconds}, indent=2))
    print(full)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
