"""Does each per-kind strength of the conditioned generalist change mainly its own degradation?

One command: ``python -m training.evaluate_conditioning`` → ``benchmarks/results/conditioning.md``.

For every pair mixture A+B of the evaluation (lowlight+noise, blur+noise, noise+jpeg, blur+jpeg,
haze+rain, lowlight+blur) on validation photos, the photo is degraded by A then B (physical
order, strength 0.4 each). The generalist is then told three things: fix both, fix only A, fix
only B. If the strengths are disentangled, "fix only A" should land near the photo degraded by
B alone (same random seed for B), i.e. it removes A and leaves B; and vice versa.

Reported per pair (mean PSNR in dB against the *single-kind reference* named in the column):
- ``input → B-only ref``: how far the A+B photo is from the B-only photo (before any fixing);
- ``fix A → B-only ref``: the output when told only A, against the B-only photo (higher = it
  removed A and kept B);
- ``fix A → clean``: the same output against the clean photo (should stay below fix-both);
and the same for B, plus ``fix both → clean``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from engine.degrade.strength import degrade, step_seed
from engine.experts.base import ExpertContext

from .common import limit_threads
from .data import DEFAULT_DATA, EVAL_MIXTURES, load_split, load_uint8, physical_order, to_float
from .evaluate import GENERALIST_ONNX, RESULTS, generalist_expert
from .metrics import psnr

STRENGTH = 0.4


def chain(clean: np.ndarray, recipe: list[tuple[str, float]], seed: int, keep: set[str]) -> np.ndarray:
    """``clean`` degraded by the steps of ``recipe`` whose kind is in ``keep``, each step with the
    seed it has in the full chain (so a kept step's randomness is the same as in the full chain)."""
    out = clean.astype(np.float32)
    for i, (kind, strength) in enumerate(recipe):
        if kind in keep:
            out = degrade(out, kind, strength, step_seed(seed, i))
    return out


def evaluate(paths: list[Path], generalist_path: Path, seed: int) -> list[dict]:
    expert = generalist_expert(generalist_path)
    rng = np.random.default_rng(seed)
    rows = []
    pairs = [m for m in EVAL_MIXTURES if len(m) == 2]
    for i, path in enumerate(paths):
        clean = to_float(load_uint8(path))
        for j, pair in enumerate(pairs):
            a, b = physical_order(pair, rng)
            recipe = [(a, STRENGTH), (b, STRENGTH)]
            s = seed + 100 * i + j
            deg = chain(clean, recipe, s, {a, b})
            only_a, only_b = chain(clean, recipe, s, {a}), chain(clean, recipe, s, {b})

            def told(image: np.ndarray, kinds: set[str]) -> np.ndarray:
                return expert.run(image, ExpertContext(strengths={k: STRENGTH for k in kinds}))

            both, fix_a, fix_b = told(deg, {a, b}), told(deg, {a}), told(deg, {b})
            rows.append({"photo": path.name, "pair": f"{a}+{b}", "a": a, "b": b,
                         "input_to_b": psnr(deg, only_b), "fix_a_to_b": psnr(fix_a, only_b),
                         "fix_a_clean": psnr(fix_a, clean),
                         "input_to_a": psnr(deg, only_a), "fix_b_to_a": psnr(fix_b, only_a),
                         "fix_b_clean": psnr(fix_b, clean),
                         "input_clean": psnr(deg, clean), "both_clean": psnr(both, clean)})
            r = rows[-1]
            print(f"{path.name} {a}+{b}: fix {a}: {r['input_to_b']:.2f} -> {r['fix_a_to_b']:.2f} dB vs {b}-only; "
                  f"fix {b}: {r['input_to_a']:.2f} -> {r['fix_b_to_a']:.2f} dB vs {a}-only; "
                  f"both {r['input_clean']:.2f} -> {r['both_clean']:.2f} dB", flush=True)
    return rows


def render(rows: list[dict], n_photos: int) -> str:
    lines = ["| pair A+B | fix A only: input → output, vs B-only ref | fix A only vs clean | "
             "fix B only: input → output, vs A-only ref | fix B only vs clean | fix both vs clean (input) |",
             "|---|---|---|---|---|---|"]
    for pair in dict.fromkeys(r["pair"] for r in rows):
        rs = [r for r in rows if r["pair"] == pair]

        def m(key: str, rs: list[dict] = rs) -> float:
            return float(np.mean([r[key] for r in rs]))
        lines.append(f"| {pair} | {m('input_to_b'):.2f} → **{m('fix_a_to_b'):.2f}** | {m('fix_a_clean'):.2f} | "
                     f"{m('input_to_a'):.2f} → **{m('fix_b_to_a'):.2f}** | {m('fix_b_clean'):.2f} | "
                     f"**{m('both_clean'):.2f}** ({m('input_clean'):.2f}) |")
    wins = sum(r["fix_a_to_b"] > r["input_to_b"] for r in rows) + sum(r["fix_b_to_a"] > r["input_to_a"] for r in rows)
    return f"""# Conditioning: does each strength change mainly its own degradation?

Produced by `python -m training.evaluate_conditioning` (deterministic). {n_photos} validation photos,
each pair degraded in physical order at strength {STRENGTH} per kind; `restora-generalist-v2` told
to fix both kinds, only A, or only B (strength {STRENGTH}). PSNR in dB, mean over photos.

A "fix A only" output that moves *towards the photo degraded by B alone* has removed A and kept B.

{chr(10).join(lines)}

Single-kind fixes that moved towards the other kind's single-degradation reference: {wins} of {2 * len(rows)}.
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--photos", type=int, default=6)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--generalist", type=Path, default=GENERALIST_ONNX)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    limit_threads(1)
    cv2.setNumThreads(1)
    _, val = load_split(args.data)
    step = max(len(val) // max(args.photos, 1), 1)
    paths = val[::step][:args.photos]
    text = render(evaluate(paths, args.generalist, args.seed), len(paths))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "conditioning.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
