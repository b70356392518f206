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
from engine.analysis.report import DegradationReport, KindAssessment
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

Seconds per photo (these 481 x 321 photos, CPU, shared loaded machine; only the cases computed in
this run): hand-made {seconds['hand-made']:.3f}, learned {seconds['learned']:.3f}.

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
    p.add_argument("--realistic", action="store_true",
                   help="degrade the cases through the camera pipeline (training.data.degrade_realistic, "
                        "p_camera 1: camera noise, demosaicing, in-camera NR, camera JPEG) instead of engine.degrade")
    p.add_argument("--cache", type=Path, default=None,
                   help="JSON-lines cache of per-case severities (hand-made and per model), so that another "
                        "model or an interrupted run only computes what is missing")
    p.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/results alone")
    p.add_argument("--shard", default=None, help="K/N: compute only every N-th photo from the K-th (into "
                                                  "CACHE.K.jsonl); run N side by side, then once without --shard")
    return p.parse_args(argv)


def case_severities(args: argparse.Namespace, learned_net: LearnedAnalyser, model_key: str
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
    """``(truth, clean, hand, learned)`` N x 6 arrays (``clean``: N booleans) and mean seconds."""
    import json

    from .data import degrade_realistic

    _, val = load_split(args.data)
    if args.limit:
        val = val[:args.limit]
    cache: dict[str, dict] = {}
    parts = [args.cache, *sorted(args.cache.parent.glob(args.cache.stem + ".*.jsonl"))] if args.cache else []
    for part in [p for p in parts if p.exists()]:
        for line in part.read_text().splitlines():
            row = json.loads(line)
            if row["key"] in cache:
                cache[row["key"]]["learned"] |= row["learned"]
            else:
                cache[row["key"]] = row
    shard, shards = (int(v) for v in args.shard.split("/")) if args.shard else (0, 1)
    if args.shard and args.cache is not None:
        args.cache = args.cache.with_name(f"{args.cache.stem}.{shard}.jsonl")
    out = args.cache.open("a") if args.cache is not None else None
    rng = np.random.default_rng(args.seed)
    truth, clean, hand, learned = [], [], [], []
    seconds = {"hand-made": [], "learned": []}
    tag = "camera" if args.realistic else "synthetic"
    for i, path in enumerate(val):
        photo = None
        for j, recipe in enumerate(cases_for(i, rng)):
            key = f"{tag}/{args.seed}/{path.name}/{j}"
            row = cache.get(key)
            if i % shards != shard:
                if row is not None and model_key in row["learned"]:
                    truth.append(row["truth"])
                    clean.append(not any(v > 0 for v in row["truth"]))
                    hand.append(row["hand"])
                    learned.append(row["learned"][model_key])
                continue
            if row is None or model_key not in row["learned"]:
                if photo is None:
                    photo = to_float(load_uint8(path))
                case_seed = args.seed + 1000 * i + j
                if args.realistic:
                    img, _, sev_truth = degrade_realistic(photo, recipe, case_seed, p_camera=1.0)
                else:
                    img = degrade_chain(photo, recipe, seed=case_seed)
                    sev_truth = np.zeros(len(KINDS))
                    for k, v in recipe:
                        sev_truth[KINDS.index(k)] = max(sev_truth[KINDS.index(k)], v)
                if row is None:
                    t = time.perf_counter()
                    h = analyse(img)
                    seconds["hand-made"].append(time.perf_counter() - t)
                    row = {"key": key, "truth": [float(v) for v in sev_truth],
                           "hand": [h.severity(k) for k in KINDS], "learned": {}}
                t = time.perf_counter()
                lr = learned_net.report(img)
                seconds["learned"].append(time.perf_counter() - t)
                row["learned"][model_key] = [lr.severity(k) for k in KINDS]
                cache[key] = row
                if out is not None:
                    out.write(json.dumps(row) + "\n")
                    out.flush()
            truth.append(row["truth"])
            clean.append(not any(v > 0 for v in row["truth"]))
            hand.append(row["hand"])
            learned.append(row["learned"][model_key])
    if out is not None:
        out.close()
    mean_s = {k: float(np.mean(v)) if v else float("nan") for k, v in seconds.items()}
    return np.array(truth), np.array(clean), np.array(hand), np.array(learned), mean_s | {"photos": len(val)}


def combine_severities(hand: np.ndarray, learned: np.ndarray, presence: list[str], severity: list[str]) -> np.ndarray:
    """:func:`engine.analysis.learned.combine` on N x 6 severity arrays."""
    def rep(row: np.ndarray) -> DegradationReport:
        return DegradationReport({k: KindAssessment(float(v), 1.0, {}) for k, v in zip(KINDS, row, strict=True)})

    return np.array([[combine(rep(h), rep(lr), frozenset(presence), frozenset(severity)).severity(k) for k in KINDS]
                     for h, lr in zip(hand, learned, strict=True)])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limit_threads(1)
    learned_net = LearnedAnalyser(args.model, threads=1)
    model_key = learned_net.model_path.stem
    truth_a, clean_a, hand, learned, seconds = case_severities(args, learned_net, model_key)
    results = {"hand-made": metrics(hand, truth_a, clean_a), "learned": metrics(learned, truth_a, clean_a)}
    chosen, chosen_severity = choose(results["hand-made"], results["learned"])
    results["combined"] = metrics(combine_severities(hand, learned, chosen, chosen_severity), truth_a, clean_a)
    n_cases = len(truth_a)
    full, summary = render(results, chosen, chosen_severity, seconds["photos"], n_cases, seconds)
    if args.realistic:
        full = full.replace("# Degradation analysis: hand-made vs learned vs combined",
                            "# Degradation analysis on camera-realistic cases: hand-made vs learned vs combined")
    full = full.replace("Produced by `python -m training.eval_analyser`",
                        f"Model: `{model_key}`. Produced by `python -m training.eval_analyser"
                        f"{' --realistic' if args.realistic else ''}`")
    if not args.no_write:
        args.out.mkdir(parents=True, exist_ok=True)
        suffix = "-camera" if args.realistic else ""
        (args.out / f"analyser{suffix}.md").write_text(full)
        (args.out / f"analyser{suffix}-summary.md").write_text(summary + "\n")
        (args.out / f"analyser{suffix}.json").write_text(json.dumps(
            {"model": model_key, "results": results, "learned_presence_kinds": chosen,
             "learned_severity_kinds": chosen_severity, "cases": n_cases, "photos": seconds["photos"],
             "seconds_per_photo": {k: seconds[k] for k in ("hand-made", "learned")}}, indent=2))
    print(full)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
