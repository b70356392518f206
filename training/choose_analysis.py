"""Choose, per kind, how the hand-made and the learned analysis are combined — from measurements.

Reads the per-case caches written by ``training.eval_analyser --cache`` (synthetic and
camera-realistic cases on the validation photos), ``benchmarks/clean_false_positives.py`` (all
clean photos) and ``benchmarks/analyser_pairs.py`` (the real validation pairs), and for each
analyser model and kind scores three rules: **hand** (the hand-made verdict), **learned** (the
network's) and **both** (present only when both say so). Per rule: F1 on the synthetic cases, F1
on the camera-realistic cases, the detection rate on the real pairs of that kind (where a set
exists), their false-alarm rate on the pairs' clean halves, and the false-positive rate on the
clean photos (the JPEG file's own tables decide JPEG for the session, as in the app).

The rule chosen for a kind: among those with clean false positives ≤ 2 % (or, if none is, the
lowest), the best mean of (synthetic F1, camera F1, real detection, 1 − real false alarms on
the pairs' clean halves); a rule that uses the
network must beat the hand-made one by :data:`MARGIN` there, otherwise hand. Severity comes from
the network where its Spearman ρ with the true strength (mean over both case sets) is higher by
:data:`MARGIN`. Writes ``benchmarks/results/analysis-choice.md`` and prints the constants for
``engine.analysis.learned``.

Run: ``python -m training.choose_analysis --model restora-analyser-v1 [--model restora-analyser-v2]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from benchmarks._host import SCRATCH as BENCH_SCRATCH
from engine.analysis import DEFAULT_PRESENCE_THRESHOLD
from engine.kinds import KINDS

REPO = Path(__file__).resolve().parents[1]
#: The caches this reads (``$RESTORA_BENCH_SCRATCH``/analyser, as the benchmark scripts write them).
SCRATCH = BENCH_SCRATCH / "analyser"
RULES = ("hand", "learned", "both")
FP_TARGET = 0.02
MARGIN = 0.02
PAIR_SETS = {"noise": ("noise_real_polyu_crops", "noise_real_polyu_fullsize"), "blur": ("blur_real_levin",),
             "haze": ("haze_reside",), "lowlight": ("lowlight_real_lol_train",), "rain": ("rain_synthetic",)}


def _jsonl(path: Path) -> list[dict]:
    rows: dict[str, dict] = {}
    for part in [p for p in [path, *sorted(path.parent.glob(path.stem + ".*.jsonl"))] if p.exists()]:
        for line in part.read_text().splitlines():
            r = json.loads(line)
            key = r.get("key") or r.get("name")
            if key in rows:
                rows[key]["learned"] |= r["learned"]
            else:
                rows[key] = r
    return list(rows.values())


def _sev(x) -> float:
    return float(x["severity"]) if isinstance(x, dict) else float(x)


def present(rule: str, hand: np.ndarray, learned: np.ndarray) -> np.ndarray:
    thr = DEFAULT_PRESENCE_THRESHOLD
    h, m = hand >= thr, learned >= thr
    return {"hand": h, "learned": m, "both": h & m}[rule]


def f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp, fp, fn = (pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum()
    return float(2 * tp / max(2 * tp + fp + fn, 1))


def measure(model: str, eval_rows: list[dict], fp_rows: list[dict], pair_rows: list[dict]) -> dict:
    out: dict = {}
    for i, k in enumerate(KINDS):
        res: dict = {}
        for tag in ("synthetic", "camera"):
            rows = [r for r in eval_rows if r["key"].startswith(tag + "/") and model in r["learned"]]
            truth = np.array([r["truth"][i] > 0 for r in rows], bool)
            hand = np.array([r["hand"][i] for r in rows], float)
            learned = np.array([r["learned"][model][i] for r in rows], float)
            res[tag] = {rule: f1(present(rule, hand, learned), truth) for rule in RULES} | {"n": len(rows)}
            t = np.array([r["truth"][i] for r in rows], float)
            res[tag]["rho"] = {src: (float(np.nan_to_num(spearmanr(v[t > 0], t[t > 0]).statistic))
                                     if (t > 0).sum() > 2 else float("nan"))
                               for src, v in (("hand", hand), ("learned", learned))}
        rows = [r for r in fp_rows if model in r["learned"]]
        hand = np.array([_sev(r["hand"][k]) for r in rows])
        if k == "jpeg":  # the session's JPEG verdict uses the file's tables where there are any
            hand = np.array([_sev(r["file_jpeg"]) if "file_jpeg" in r else _sev(r["hand"][k]) for r in rows])
        learned = np.array([_sev(r["learned"][model][k]) for r in rows])
        res["clean_fp"] = {rule: float(present(rule, hand, learned).mean()) for rule in RULES} | {"n": len(rows)}
        sets = PAIR_SETS.get(k, ())
        if sets:
            det, false = {}, {}
            for half, store in (("lq", det), ("gt", false)):
                rows = [r for r in pair_rows if r["key"].split("/")[0] in sets and r["key"].split("/")[1] == half
                        and model in r["learned"]]
                hand = np.array([_sev(r["hand"][k]) for r in rows])
                learned = np.array([_sev(r["learned"][model][k]) for r in rows])
                for rule in RULES:
                    store[rule] = float(present(rule, hand, learned).mean()) if rows else float("nan")
                store["n"] = len(rows)
            res["pairs_detect"], res["pairs_false"] = det, false
        out[k] = res
    return out


def choose(res: dict) -> tuple[dict[str, str], list[str]]:
    rules: dict[str, str] = {}
    severity: list[str] = []
    for k, r in res.items():
        def score(rule: str, r: dict = r) -> float:
            parts = [r["synthetic"][rule], r["camera"][rule]]
            if "pairs_detect" in r and np.isfinite(r["pairs_detect"][rule]):
                parts += [r["pairs_detect"][rule], 1.0 - r["pairs_false"][rule]]
            return float(np.mean(parts))
        ok = [rule for rule in RULES if r["clean_fp"][rule] <= FP_TARGET]
        if not ok:
            lowest = min(r["clean_fp"][rule] for rule in RULES)
            ok = [rule for rule in RULES if r["clean_fp"][rule] <= lowest + 1e-9]
        best = max(ok, key=score)
        if best != "hand" and "hand" in ok and score(best) < score("hand") + MARGIN:
            best = "hand"
        rules[k] = best
        rho = {src: np.nanmean([r[t]["rho"][src] for t in ("synthetic", "camera")]) for src in ("hand", "learned")}
        if rho["learned"] >= rho["hand"] + MARGIN:
            severity.append(k)
    return rules, severity


def render(model: str, res: dict, rules: dict[str, str], severity: list[str]) -> list[str]:
    lines = [f"## {model}", "",
             "| kind | rule | F1 synthetic | F1 camera | real pairs: detect / false on clean half | clean photos FP "
             "| chosen |",
             "|---|---|---|---|---|---|---|"]
    for k, r in res.items():
        for rule in RULES:
            pairs = (f"{r['pairs_detect'][rule]:.0%} / {r['pairs_false'][rule]:.0%} (n {r['pairs_detect']['n']})"
                     if "pairs_detect" in r else "–")
            mark = "**✓**" if rules[k] == rule else ""
            lines.append(f"| {k} | {rule} | {r['synthetic'][rule]:.2f} | {r['camera'][rule]:.2f} | {pairs} | "
                         f"{r['clean_fp'][rule]:.1%} | {mark} |")
    lines += ["", "Severity (Spearman ρ with the true strength, synthetic / camera): " + "; ".join(
        f"{k} hand {r['synthetic']['rho']['hand']:.2f}/{r['camera']['rho']['hand']:.2f}, learned "
        f"{r['synthetic']['rho']['learned']:.2f}/{r['camera']['rho']['learned']:.2f}" for k, r in res.items())
              + f". Learned severity for: {', '.join(severity) or 'no kind'}.", ""]
    n = next(iter(res.values()))
    lines.insert(2, f"Cases: {n['synthetic']['n']} synthetic, {n['camera']['n']} camera-realistic; clean photos: "
                    f"{n['clean_fp']['n']}.\n")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--eval-cache", type=Path, default=SCRATCH / "eval.jsonl")
    ap.add_argument("--fp-cache", type=Path, default=SCRATCH / "clean-fp.jsonl")
    ap.add_argument("--pairs-cache", type=Path, default=SCRATCH / "pairs.jsonl")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "analysis-choice.md")
    args = ap.parse_args(argv)
    eval_rows, fp_rows, pair_rows = _jsonl(args.eval_cache), _jsonl(args.fp_cache), _jsonl(args.pairs_cache)
    lines = ["# How the hand-made and the learned analysis are combined, per kind", "",
             "Produced by `python -m training.choose_analysis" + "".join(f" --model {m}" for m in args.model)
             + "` from the caches of `training.eval_analyser` (synthetic and `--realistic` cases on the "
             "validation photos), `benchmarks/clean_false_positives.py` and `benchmarks/analyser_pairs.py`. "
             "Rules: hand = the hand-made verdict, learned = the network's, both = present only when both say "
             f"so. Chosen: clean-photo false positives ≤ {FP_TARGET:.0%} first, then the best mean of "
             "F1 synthetic, F1 camera, real-pair detection and 1 − false alarms on the pairs' clean halves; a rule "
             f"using the network must beat hand by {MARGIN}.",
             ""]
    choice = {}
    for m in args.model:
        res = measure(m, eval_rows, fp_rows, pair_rows)
        rules, severity = choose(res)
        choice[m] = {"rules": rules, "severity": severity, "results": res}
        lines += render(m, res, rules, severity)
        print(f"{m}: LEARNED_PRESENCE_KINDS = {sorted(k for k, v in rules.items() if v == 'learned')}; "
              f"AGREE_KINDS = {sorted(k for k, v in rules.items() if v == 'both')}; "
              f"LEARNED_SEVERITY_KINDS = {sorted(severity)}")
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(choice, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
