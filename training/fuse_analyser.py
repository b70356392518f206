"""Fold two analysers that share their first layers into one model: one run per analysis.

v2 was trained from v1 with v1's first 5 feature layers frozen, so both compute the same stem; the
analysis took v2's verdicts for every kind but blur, and v1's for blur (a second full pass). The
fused model (:class:`engine.nets.analyser.RestoraAnalyser` with a branch) runs that stem once,
then v2's later layers and head for every kind and v1's later layers and head for the branch
kinds. Its outputs are those of the two-model combination (checked here on random and real
crops, torch and ONNX), at about 60 % of the compute.

Run: ``python -m training.fuse_analyser`` (defaults: v2 + v1 for blur → ``models/restora-analyser-v3``,
its card and catalog entry).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from engine.kinds import KINDS
from engine.nets.analyser import CROP, RestoraAnalyser, load_analyser
from engine.weights.catalog import write_entry

from .export import (CARDS, MODELS, OPSET, _ScoredAnalyser, catalog_toml, export_onnx, file_facts, files_table,
                     onnx_max_diff, save_safetensors)
from .flops import count

FUSED_ID = "restora-analyser-v3"


def fuse(main: RestoraAnalyser, branch: RestoraAnalyser, kinds: tuple[str, ...], branch_at: int) -> RestoraAnalyser:
    """``main`` with ``branch``'s layers from ``branch_at`` on (and head) answering ``kinds``.
    Raises ``ValueError`` unless the two share their first ``branch_at`` layers exactly."""
    a, b = main.state_dict(), branch.state_dict()
    stem = [k for k in a if k.startswith("features.") and int(k.split(".")[1]) < branch_at]
    differ = [k for k in stem if not torch.equal(a[k], b[k])]
    if differ:
        raise ValueError(f"the two analysers differ in their first {branch_at} layers: {differ[:3]}")
    fused = RestoraAnalyser(branch_kinds=kinds, branch_at=branch_at)
    state = dict(a)
    for k, v in b.items():
        if k.startswith("features.") and int(k.split(".")[1]) >= branch_at:
            i = int(k.split(".")[1]) - branch_at
            state["branch_features." + ".".join([str(i), *k.split(".")[2:]])] = v
        elif k.startswith("head."):
            state["branch_" + k] = v
    fused.load_state_dict(state)
    return fused.eval()


@torch.no_grad()
def combination_diff(fused: RestoraAnalyser, main: RestoraAnalyser, branch: RestoraAnalyser,
                     kinds: tuple[str, ...], x: torch.Tensor) -> float:
    """Largest |fused − two-model combination| over the 12 logits of crops ``x``."""
    want = main(x).clone()
    other = branch(x)
    for k in kinds:
        for col in (KINDS.index(k), len(KINDS) + KINDS.index(k)):
            want[:, col] = other[:, col]
    return float((fused(x) - want).abs().max())


def real_crops(n: int = 8) -> torch.Tensor:
    """128-px crops of the first ``n`` clean photos in ``../shared/data/clean`` (random data where
    that folder is missing)."""
    from PIL import Image

    from .data import DEFAULT_DATA

    paths = sorted(Path(DEFAULT_DATA).iterdir())[:n] if Path(DEFAULT_DATA).is_dir() else []
    crops = []
    for p in paths:
        with Image.open(p) as im:
            a = np.asarray(im.convert("RGB"), np.float32) / 255.0
        if min(a.shape[:2]) >= CROP:
            crops.append(a[:CROP, :CROP].transpose(2, 0, 1))
    if not crops:
        return torch.rand(n, 3, CROP, CROP, generator=torch.Generator().manual_seed(1))
    return torch.from_numpy(np.stack(crops))


def write_card(facts: dict, path: Path, main_id: str, branch_id: str) -> None:
    f = facts["flops"]
    text = f"""# Restora learned analyser v3 (`{FUSED_ID}`)

Small CNN that says, from a few {CROP}x{CROP} crops of a photo, which of the six degradation kinds
(noise, blur, jpeg, haze, lowlight, rain) are present and how strong. `engine.analysis.learned`
runs it with onnxruntime and combines it with the hand-made analysis kind by kind
(`benchmarks/results/analysis-choice.md`). Licence: **MIT**.

v3 is **`{main_id}` and `{branch_id}` folded into one model**, no new training: `{main_id}` was
trained from `{branch_id}` with its first {facts['branch_at']} feature layers frozen, so both share
that stem. The analysis used `{main_id}` for every kind except {', '.join(facts['kinds'])}, whose
verdict came from a second, full run of `{branch_id}` (it measured better there). v3 runs the stem
once, then `{main_id}`'s later layers and head for every kind and `{branch_id}`'s later layers and
head (the *branch*) for {', '.join(facts['kinds'])}. Its scores are those of the two-model combination:
largest difference over the 12 logits {facts['combination_diff']:.1e} (torch, real and random crops).
Training, data and validation of the two parts: the cards of `{main_id}` and `{branch_id}`
(`{main_id}.md`; v1's card is in the git history), and `benchmarks/results/analysis-choice.md`.
Since the hand-made blur verdict asks that even the sharpest part of a photo be blurred, it measures
better than the network's and decides blur alone; the branch's blur score is still reported with the
analysis (`learned_probability`), and dropping the branch (v2 alone) is the cheaper option left.

## Files
{files_table(facts)}

ONNX: opset {OPSET}, input `input` float32 N x 3 x H x W (sRGB in [0, 1], native resolution,
trained on {CROP}-px crops, any H, W ≥ 32), output `scores` float32 N x 12 in [0, 1]: columns
0–5 = presence probability, 6–11 = severity (strength) estimate, both in the order noise,
blur, jpeg, haze, lowlight, rain. torch ↔ onnxruntime max abs difference: {facts['onnx_max_diff']:.2e}.
The safetensors header (`restora` metadata) names the branch (`branch_kinds`, `branch_at`);
`engine.nets.analyser.load_analyser` builds the model from it.

## Architecture
`engine.nets.analyser.RestoraAnalyser` with a branch: 3x3 conv + BatchNorm + ReLU stages at
1, 1/2, 1/4 resolution (shared), then two tails of 1/8 and 1/16 stages (64 → 96 channels), each with
global mean and standard-deviation pooling of its features plus the input's per-channel mean and std,
and a 2-layer MLP head (12 outputs; the branch's columns replace the main head's for its kinds).
- Parameters: {facts['params']:,}
- Compute: {f['macs'] / 1e6:.0f} MMAC per {CROP}x{CROP} crop ({f['flops_per_mp'] / 1e9:.1f} GFLOP per megapixel),
  against {facts['two_model_macs'] / 1e6:.0f} MMAC for the two separate runs it replaces.
- Reproduce: `python -m training.fuse_analyser`.
"""
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--main", type=Path, default=MODELS / "restora-analyser-v2.safetensors")
    p.add_argument("--branch", type=Path, default=MODELS / "restora-analyser-v1.safetensors")
    p.add_argument("--kinds", default="blur", help="comma-separated kinds the branch answers")
    p.add_argument("--branch-at", type=int, default=5)
    p.add_argument("--out", type=Path, default=MODELS)
    p.add_argument("--cards", type=Path, default=CARDS)
    p.add_argument("--catalog", type=Path, default=MODELS / "catalog.toml")
    args = p.parse_args(argv)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    main_m, branch_m = load_analyser(args.main), load_analyser(args.branch)
    fused = fuse(main_m, branch_m, kinds, args.branch_at)
    x = torch.cat([real_crops(), torch.rand(4, 3, CROP, CROP, generator=torch.Generator().manual_seed(0))])
    comb = combination_diff(fused, main_m, branch_m, kinds, x)
    if comb > 1e-4:
        raise SystemExit(f"the fused model does not reproduce the combination (max diff {comb:.2e})")
    args.out.mkdir(parents=True, exist_ok=True)
    st, onnx_path = args.out / f"{FUSED_ID}.safetensors", args.out / f"{FUSED_ID}.onnx"
    save_safetensors(fused, st, {"architecture": "RestoraAnalyser", "version": FUSED_ID.rsplit("-v", 1)[1],
                                 "crop": str(CROP), "license": "MIT", "main": args.main.stem,
                                 "branch": args.branch.stem} | fused.metadata())
    wrapped = _ScoredAnalyser(fused)
    export_onnx(wrapped, {"input": torch.rand(1, 3, CROP, CROP)}, onnx_path, "scores")
    diff = onnx_max_diff(wrapped, onnx_path, {"input": x[:3]})
    facts = {"id": FUSED_ID, "files": [file_facts(onnx_path), file_facts(st)], "kinds": kinds,
             "branch_at": args.branch_at, "params": sum(q.numel() for q in fused.parameters()),
             "flops": count(fused, (1, 3, CROP, CROP)), "onnx_max_diff": diff, "combination_diff": comb,
             "two_model_macs": count(main_m, (1, 3, CROP, CROP))["macs"] + count(branch_m, (1, 3, CROP, CROP))["macs"]}
    if args.cards is not None:
        write_card(facts, args.cards / f"{FUSED_ID}.md", args.main.stem, args.branch.stem)
    if args.catalog is not None:
        write_entry(args.catalog, FUSED_ID, catalog_toml(
            facts, "Restora learned degradation analyser (bundled)", ["analysis"],
            "Restora's own small CNN that detects the six degradation kinds and their strength "
            "(v2 with v1's blur branch, one run).", 1))
    print({k: facts[k] for k in ("files", "params", "onnx_max_diff", "combination_diff")},
          facts["flops"]["macs"] / 1e6, facts["two_model_macs"] / 1e6)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
