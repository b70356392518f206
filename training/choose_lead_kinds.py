"""Choose the generalist's catalog ``lead_kinds`` from an evaluation run.

``python -m training.evaluate --lead-kinds all --out DIR`` records, per case, the classical
plan, the auto plan with the generalist always first, and the kinds the analysis found. For every
set S of kinds, the policy "generalist first when the analysis finds a kind in S, else the
classical plan" then scores, per case, the one of the two it would have run. This script ranks
all 64 sets by mean PSNR and writes ``benchmarks/results/lead-kinds.md``:

    python -m training.choose_lead_kinds DIR/evaluation.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from engine.kinds import KINDS

from .evaluate import RESULTS


def policy_psnr(rows: list[dict], lead: set[str]) -> float:
    """Mean PSNR (dB) of "auto plan if a kind in ``lead`` is found, else classical" over ``rows``."""
    return float(np.mean([r["auto plan"]["psnr"] if set(r["found"]) & lead else r["classical"]["psnr"]
                          for r in rows]))


#: Mean-PSNR differences below this (dB) count as ties; among tied sets the smallest wins (fewer
#: kinds handed to the generalist when the evidence does not ask for more).
TIE_DB = 0.01


def rank(rows: list[dict]) -> list[tuple[float, tuple[str, ...]]]:
    """Every subset of :data:`KINDS` with its policy PSNR, best first."""
    scored = [(round(policy_psnr(rows, set(s)), 3), s)
              for n in range(len(KINDS) + 1) for s in itertools.combinations(KINDS, n)]
    return sorted(scored, key=lambda t: (-t[0], len(t[1])))


def choose(ranked: list[tuple[float, tuple[str, ...]]]) -> tuple[float, tuple[str, ...]]:
    """The smallest set within :data:`TIE_DB` of the best mean (the better of those on a size tie)."""
    tied = [t for t in ranked if t[0] >= ranked[0][0] - TIE_DB]
    return min(tied, key=lambda t: (len(t[1]), -t[0]))


def render(rows: list[dict], ranked: list[tuple[float, tuple[str, ...]]], source: str) -> str:
    score, best = choose(ranked)
    classical = float(np.mean([r["classical"]["psnr"] for r in rows]))
    always = float(np.mean([r["auto plan"]["psnr"] for r in rows]))
    per_case = ["| case | classical | generalist first | chosen policy |", "|---|---|---|---|"]
    for case in dict.fromkeys(r["case"] for r in rows):
        rs = [r for r in rows if r["case"] == case]
        per_case.append(f"| {case} | {np.mean([r['classical']['psnr'] for r in rs]):.2f} | "
                        f"{np.mean([r['auto plan']['psnr'] for r in rs]):.2f} | {policy_psnr(rs, set(best)):.2f} |")
    top = ["| lead_kinds | mean PSNR (dB) |", "|---|---|"] + [
        f"| {', '.join(s) or '(none: classical only)'} | {p:.3f} |" for p, s in ranked[:10]]
    return f"""# Which kinds should put the generalist first?

Produced by `python -m training.choose_lead_kinds {source}` from an evaluation run with the
generalist always first (`python -m training.evaluate --lead-kinds all`). {len(rows)} cases.

Policy for a set S: the auto plan puts the generalist first (told every kind found) when the
analysis finds a kind in S; otherwise it runs the classical specialists alone.

- classical only: {classical:.3f} dB; generalist always first: {always:.3f} dB.
- best set: {', '.join(ranked[0][1])} → {ranked[0][0]:.3f} dB.
- **chosen: {', '.join(best) or '(none)'}** → {score:.3f} dB: the smallest set within {TIE_DB} dB of
  the best (differences that small are noise on {len(rows)} cases).

Best ten sets:

{chr(10).join(top)}

Per case (mean over the photos):

{chr(10).join(per_case)}

The choice is made on the same validation photos it is reported on (64 sets compared on
{len(rows)} cases), so the chosen set's margin over its neighbours is optimistic.
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("evaluation", type=Path, help="evaluation.json of a run with --lead-kinds all")
    p.add_argument("--out", type=Path, default=RESULTS / "lead-kinds.md")
    args = p.parse_args(argv)
    result = json.loads(args.evaluation.read_text())
    if result.get("lead_kinds"):
        raise SystemExit("this evaluation was run with lead_kinds set; run it with --lead-kinds all")
    rows = result["rows"]
    ranked = rank(rows)
    text = render(rows, ranked, args.evaluation.as_posix())
    args.out.write_text(text)
    print(text)
    print("lead_kinds =", ",".join(choose(ranked)[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
