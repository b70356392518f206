"""Export the trained checkpoints to what Restora ships: ``models/restora-*-v1.{onnx,safetensors}``,
and write their model cards (``models/cards/restora-*-v1.md``) with sizes, sha256, parameters,
FLOPs per megapixel, training facts and validation numbers.

One command: ``python -m training.export`` (after both training runs; re-run after
``training.evaluate`` / ``training.eval_analyser`` to put their numbers in the cards).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine.nets.analyser import CROP, RestoraAnalyser
from engine.nets.generalist import SIZE_MULTIPLE, GeneralistConfig, RestoraGeneralist
from engine.weights.catalog import write_entry

from .common import limit_threads, load_checkpoint
from .flops import count

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
CARDS = MODELS / "cards"
RESULTS = REPO / "benchmarks" / "results"
GENERALIST_ID = "restora-generalist-v2"
ANALYSER_ID = "restora-analyser-v2"
OPSET = 17


class _ClampedGeneralist(nn.Module):
    """What the ONNX file computes: the conditioned generalist's output clipped to [0, 1]."""

    def __init__(self, model: RestoraGeneralist) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, strengths: torch.Tensor) -> torch.Tensor:
        return self.model(x, strengths).clamp(0.0, 1.0)


class _ScoredAnalyser(nn.Module):
    """What the ONNX file computes: sigmoid of the analyser's 12 logits (probabilities, severities)."""

    def __init__(self, model: RestoraAnalyser) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(x))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_facts(path: Path) -> dict:
    return {"file": path.name, "size": path.stat().st_size, "sha256": sha256_of(path)}


def export_onnx(module: nn.Module, examples: dict[str, torch.Tensor], path: Path, output_name: str) -> None:
    """Legacy (TorchScript) exporter, opset 17, dynamic batch, height and width. ``examples``:
    ``{input name: example tensor}`` in the module's argument order (the first is the image)."""
    module.eval()
    names = list(examples)
    dynamic = {names[0]: {0: "batch", 2: "height", 3: "width"}} | {n: {0: "batch"} for n in names[1:]}
    torch.onnx.export(module, tuple(examples.values()), str(path), dynamo=False, opset_version=OPSET,
                      input_names=names, output_names=[output_name],
                      dynamic_axes=dynamic | {output_name: {0: "batch"} | ({2: "height", 3: "width"}
                                                                           if output_name == "output" else {})})


def onnx_max_diff(module: nn.Module, path: Path, inputs: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between torch and onnxruntime outputs on ``inputs``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = module(*inputs.values()).numpy()
    got = sess.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    return float(np.abs(ref - got).max())


def save_safetensors(model: nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """Weights plus one metadata entry ``"restora"`` holding ``metadata`` as sorted JSON (one key, so
    the header's byte order, and with it the file's sha256, is the same on every export)."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"restora": json.dumps(metadata, sort_keys=True)})


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def export_generalist(ckpt_path: Path, log_path: Path, out_dir: Path = MODELS) -> dict:
    ckpt = load_checkpoint(ckpt_path)
    config = GeneralistConfig.from_dict(ckpt["config"])
    model = RestoraGeneralist(config)
    model.load_state_dict(ckpt["model"])
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    st = out_dir / f"{GENERALIST_ID}.safetensors"
    onnx_path = out_dir / f"{GENERALIST_ID}.onnx"
    save_safetensors(model, st, {"architecture": "RestoraGeneralist", "version": "2",
                                 "config": json.dumps(config.to_dict()), "step": str(ckpt["step"]),
                                 "size_multiple": str(SIZE_MULTIPLE), "license": "MIT"})
    wrapped = _ClampedGeneralist(model)
    export_onnx(wrapped, {"input": torch.rand(1, 3, 64, 64), "strengths": torch.rand(1, config.cond_dim)},
                onnx_path, "output")
    gen = torch.Generator().manual_seed(0)
    diff = onnx_max_diff(wrapped, onnx_path, {"input": torch.rand(2, 3, 96, 136, generator=gen),
                                              "strengths": torch.rand(2, config.cond_dim, generator=gen)})
    flops = count(model, (1, 3, 512, 512))
    return {"id": GENERALIST_ID, "files": [file_facts(onnx_path), file_facts(st)],
            "params": sum(p.numel() for p in model.parameters()), "flops": flops, "onnx_max_diff": diff,
            "step": ckpt["step"], "elapsed_s": ckpt.get("elapsed_s", 0.0), "args": ckpt.get("args", {}),
            "config": config.to_dict(), "log": read_csv(log_path)}


def export_analyser(ckpt_path: Path, log_path: Path, out_dir: Path = MODELS) -> dict:
    ckpt = load_checkpoint(ckpt_path)
    model = RestoraAnalyser()
    model.load_state_dict(ckpt["model"])
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    st = out_dir / f"{ANALYSER_ID}.safetensors"
    onnx_path = out_dir / f"{ANALYSER_ID}.onnx"
    save_safetensors(model, st, {"architecture": "RestoraAnalyser", "version": ANALYSER_ID.rsplit("-v", 1)[1],
                                 "step": str(ckpt["step"]),
                                 "crop": str(CROP), "license": "MIT"})
    wrapped = _ScoredAnalyser(model)
    export_onnx(wrapped, {"input": torch.rand(1, 3, CROP, CROP)}, onnx_path, "scores")
    diff = onnx_max_diff(wrapped, onnx_path,
                         {"input": torch.rand(3, 3, CROP, CROP, generator=torch.Generator().manual_seed(0))})
    flops = count(model, (1, 3, CROP, CROP))
    return {"id": ANALYSER_ID, "files": [file_facts(onnx_path), file_facts(st)],
            "params": sum(p.numel() for p in model.parameters()), "flops": flops, "onnx_max_diff": diff,
            "step": ckpt["step"], "elapsed_s": ckpt.get("elapsed_s", 0.0), "args": ckpt.get("args", {}),
            "log": read_csv(log_path)}


def files_table(facts: dict) -> str:
    rows = ["| file | bytes | sha256 |", "|---|---|---|"]
    rows += [f"| `{f['file']}` | {f['size']} | `{f['sha256']}` |" for f in facts["files"]]
    return "\n".join(rows)


def catalog_toml(facts: dict, name: str, tasks: list[str], description: str, size_multiple: int,
                 lead_kinds: tuple[str, ...] = (), conditioned: bool = False) -> str:
    onnx_file = facts["files"][0]
    return "\n".join([
        "[[models]]", f'id = "{facts["id"]}"', f'name = "{name}"',
        "tasks = [" + ", ".join(f'"{t}"' for t in tasks) + "]",
        f'architecture = "{"RestoraGeneralist" if "generalist" in facts["id"] else "RestoraAnalyser"}"',
        "scale = 1", 'license = "MIT"', 'format = "onnx"', f"size = {onnx_file['size']}",
        f'sha256 = "{onnx_file["sha256"]}"', f"size_multiple = {size_multiple}",
        *(["conditioned = true"] if conditioned else []),
        *(["lead_kinds = [" + ", ".join(f'"{k}"' for k in lead_kinds) + "]"] if lead_kinds else []),
        f'description = "{description}"',
        f'sources = [{{ type = "bundled", path = "models/{onnx_file["file"]}" }}]'])


def _include(path: Path) -> str:
    return path.read_text().strip() if path.exists() else "_(not measured yet: run the evaluation script)_"


def write_generalist_card(facts: dict, path: Path, history: str = "") -> None:
    log = facts["log"]
    best = next((r for r in log if int(r["step"]) == int(facts["step"])), None)
    a = facts["args"]
    f = facts["flops"]
    v1_log = read_csv(CARDS / "restora-generalist-v1.training-log.csv")
    v1_minutes = float(v1_log[-1]["elapsed_s"]) / 60 if v1_log else 0.0
    stage1 = read_csv(CARDS / f"{GENERALIST_ID}-stage1.training-log.csv")
    stage1_best = max(stage1, key=lambda r: float(r["val_psnr"])) if stage1 else {"step": 0, "val_psnr": "nan"}
    stage1_step, stage1_minutes = int(stage1_best["step"]), float(stage1[-1]["elapsed_s"]) / 60 if stage1 else 0.0
    stage1_best = float(stage1_best["val_psnr"])
    width, hidden = facts['config']['width'], facts['config']['cond_hidden']
    crops = f"{a.get('crop', 96)}-px crops cut (pool of {a.get('pool', 2048)}"
    optimiser = f"AdamW (β = 0.9/0.99, weight decay {a.get('weight_decay', 1e-4)}), lr {a.get('lr')}"
    run = "python -m training.train_generalist --out training/runs/generalist"
    v1_cmd = f"{run} --steps 9000 --lr 0.0015 --crop 64 --time-budget 98"
    stage1_cmd = (f"{run}-v2-stage1 --condition --init v1.safetensors --steps 20000 --lr 0.001 --crop 64 "
                  "--time-budget 88")
    v2_cmd = (f"{run}-v2 --condition --p-analysed {a.get('p_analysed')} "
              f"--init training/runs/generalist-v2-stage1/best.safetensors --steps {a.get('steps')} --lr {a.get('lr')} "
              f"--crop {a.get('crop')} --batch {a.get('batch')} --time-budget {a.get('time_budget')}")
    shipped = (f"step {best['step']}): degraded input {best['val_psnr_input']} dB →\n"
               f"**{best.get('val_psnr_analysed', '–')} dB told what the analysis finds**, {best['val_psnr']} dB"
               if best else "step –): degraded input – dB →\n**– dB told what the analysis finds**, – dB")
    text = f"""# Restora fast generalist v2 (`{GENERALIST_ID}`)

All-in-one 1x restoration network trained by this project: removes mixed noise, blur, JPEG
artefacts, haze, low light and rain in one pass, fast enough for the CPU. It is **conditioned**:
besides the photo it is told, for each of the six kinds, how strongly to remove it (0 = leave
it alone); the pipeline tells it what the analysis found. Licence: **MIT** (weights and code).
Training data terms: see below.

## Files
{files_table(facts)}

ONNX: opset {OPSET}, inputs `input` float32 N x 3 x H x W (sRGB in [0, 1]) and `strengths`
float32 N x 6 (per-kind strength in [0, 1], order noise, blur, jpeg, haze, lowlight, rain),
output `output` N x 3 x H x W clipped to [0, 1]; dynamic batch, height and width. **H and W
must be multiples of {SIZE_MULTIPLE}** (pad by reflection, crop back). torch ↔ onnxruntime max abs
difference on two 96 x 136 inputs with random strengths: {facts['onnx_max_diff']:.2e}.

## Architecture
`engine.nets.generalist.RestoraGeneralist` with `cond_dim = 6` — 4-level U-Net (full, 1/2, 1/4,
1/8 resolution), widths {width}/{2*width}/{4*width}/{8*width},
NAF-lite blocks (channel LayerNorm, 1x1 expand, depthwise 3x3, SimpleGate, 1x1, gated 1x1 FFN;
no global channel attention, so the network is local and tiles give the same result as the
whole image away from tile borders), encoder blocks {facts['config']['enc_blocks']}, middle
{facts['config']['mid_blocks']}, decoder {facts['config']['dec_blocks']}; stride-2 conv down,
1x1 + PixelShuffle up, additive skips; residual output `y = x + r`.
Conditioning (FiLM): a 3-layer MLP (6 → {hidden} → {hidden} → per-channel scale and shift)
modulates the output of every encoder level, the middle and every decoder level,
`h · (1 + scale) + shift`. The strengths are one vector per photo, so tiles stay consistent.

- Parameters: {facts['params']:,}
- Compute: {f['macs_per_mp'] / 1e9:.1f} GMAC per megapixel = {f['flops_per_mp'] / 1e9:.1f} GFLOP per megapixel
  (convolutions counted exactly with forward hooks, element-wise ops added; `training/flops.py`).
- Strength control: the pipeline tells it the analysed severity of each kind in the plan (at
  least 0.3 for a kind the user asked for); the stage's own slider blends the residual,
  `x + s·(y − x)`. Whether each told strength acts mainly on its own kind is measured in
  `benchmarks/results/conditioning.md` (below).
- Tiling: outputs match the whole-image result from 48 px inside a tile edge, so the catalog's
  architecture `RestoraGeneralist` gets a 48-px tile overlap (`engine.experts.neural.ARCH_OVERLAP`).

## Training
- Data: the training split of `shared/data/clean` (photos whose file-name hash is not ≡ 0 mod 10;
  CBSD432 BSDS500 images, 25 Urban100, 40 Sun–Hays80, 4 Set5/Set14), degraded on the fly with
  `engine.degrade` (`training/data.py`): 6 % clean, 44 % single kinds, 32 % pairs (lowlight+noise,
  blur+noise, noise+jpeg, blur+jpeg, haze+rain, lowlight+blur, haze+noise, rain+jpeg, haze+jpeg,
  rain+noise or a random pair), 18 % triples (blur+noise+jpeg, lowlight+noise+jpeg,
  haze+rain+jpeg, lowlight+blur+noise); strengths uniform in [0.1, 1]; physical order (scene →
  optics/exposure → sensor noise → JPEG), ties in random order. Whole photos are degraded, then
  {crops}, regenerated every {a.get('refresh_every', 400)} steps),
  random horizontal flips.
  The BSDS500 images are licensed for non-commercial research; the others are research benchmarks
  with unclear terms (see `shared/data/PROVENANCE.md`).
- What it is told during training (`training_condition`): the recipe's true strengths with
  Gaussian jitter σ = 0.08 on present kinds (the analysis is never exact), and with probability
  0.05 per absent kind a false alarm in [0, 0.3] (target still the clean photo).
- Three stages, all on one CPU thread of a shared 2-core machine, no GPU:
  1. unconditioned v1: 9,000 steps from scratch ({v1_minutes:.0f} min; log
     `restora-generalist-v1.training-log.csv`);
  2. v1's weights plus a new zero-initialised FiLM head (so it starts exactly as v1), told the
     jittered true strengths: {stage1_step} steps ({stage1_minutes:.0f} min, lr 0.001; log
     `restora-generalist-v2-stage1.training-log.csv`; validation told the truth 21.1 → {stage1_best:.2f} dB);
  3. from stage 2's best, half of the samples told what the app's analysis of the whole degraded
     photo says instead (`--p-analysed 0.5`: missed kinds, false alarms and misjudged strengths
     included), so that the network learns to live with the analysis it gets in the app:
     this model is its best checkpoint by validation *told the analysis*, step {facts['step']}
     ({facts['elapsed_s'] / 60:.0f} min into that run; log `{GENERALIST_ID}.training-log.csv`).
- Optimiser: {optimiser}, warm-up 100 steps then cosine
  following the clock (`--time-budget {a.get('time_budget')}` min), Charbonnier loss, batch {a.get('batch')},
  gradient clipping 0.5.
{history}
- Reproduce (each command resumes if interrupted):
  1. v1: `{v1_cmd}`
     (its export, no longer shipped: `git show c6e989a:models/restora-generalist-v1.safetensors > v1.safetensors`);
  2. `{stage1_cmd}`
     (this run was stopped by hand after {stage1_minutes:.0f} min, when stage 3's idea came up; its best
     checkpoint was saved as `best.safetensors` with `training.export.save_safetensors`);
  3. `{v2_cmd}`,
     then `python -m training.export --only generalist --lead-kinds ...` (the kinds from
     `python -m training.choose_lead_kinds`, see below).

## Validation (held-out photos, never trained on)
Training-time validation: centre 128-px crops of the 38 validation photos, two recipes each
(single kinds at strength 0.5 and the evaluated mixtures at 0.4 per kind), each photo degraded
whole. Shipped checkpoint ({shipped} told the true strengths
(v1, unconditioned, on the same set: {max((float(r['val_psnr']) for r in v1_log), default=float('nan')):.2f} dB).
Full curve: `{GENERALIST_ID}.training-log.csv`.

Per kind and mixture, against the classical experts (`benchmarks/results/evaluation.md`):

{_include(RESULTS / 'evaluation-summary.md')}

{_include(CARDS / f'{GENERALIST_ID}.findings.md')}
"""
    path.write_text(text)


def write_analyser_card(facts: dict, path: Path) -> None:
    log = facts["log"]
    best = max(log, key=lambda r: float(r["mean_f1"])) if log else None
    a = facts["args"]
    f = facts["flops"]
    per_kind = ""
    if best:
        from engine.kinds import KINDS
        per_kind = "| kind | F1 | severity MAE |\n|---|---|---|\n" + "\n".join(
            f"| {k} | {best['f1_' + k]} | {best['mae_' + k]} |" for k in KINDS)
    text = f"""# Restora learned analyser v2 (`{ANALYSER_ID}`)

Small CNN that says, from a few {CROP}x{CROP} crops of a photo, which of the six degradation kinds
(noise, blur, jpeg, haze, lowlight, rain) are present and how strong. `engine.analysis.learned`
runs it with onnxruntime and combines it with the hand-made analysis kind by kind
(`benchmarks/results/analysis-choice.md`). Licence: **MIT**. v2 is v1 fine-tuned on the
camera-realistic degradation pipeline (`engine.degrade.camera`) so that real camera noise —
signal-dependent, correlated by demosaicing and in-camera noise reduction, shaped by the tone
curve and JPEG — is recognised, not only white Gaussian noise.

## Files
{files_table(facts)}

ONNX: opset {OPSET}, input `input` float32 N x 3 x H x W (sRGB in [0, 1], native resolution,
trained on {CROP}-px crops, any H, W ≥ 32), output `scores` float32 N x 12 in [0, 1]: columns
0–5 = presence probability, 6–11 = severity (strength) estimate, both in the order noise,
blur, jpeg, haze, lowlight, rain. torch ↔ onnxruntime max abs difference: {facts['onnx_max_diff']:.2e}.

## Architecture
`engine.nets.analyser.RestoraAnalyser` (unchanged from v1): 3x3 conv + BatchNorm + ReLU stages at
1, 1/2, 1/4, 1/8, 1/16 resolution (16 → 96 channels), global mean and standard-deviation pooling of
the features, plus the input's per-channel mean and std, then a 2-layer MLP head (12 outputs).
- Parameters: {facts['params']:,}
- Compute: {f['macs'] / 1e6:.0f} MMAC per {CROP}x{CROP} crop ({f['flops_per_mp'] / 1e9:.1f} GFLOP per megapixel).

## Training
- Start: the v1 weights (`restora-analyser-v1.safetensors`, trained on `engine.degrade`'s synthetic
  kinds; see git history for its card). The first {a.get('freeze')} feature layers (full to 1/4
  resolution) are kept frozen; the layers after them and the head are trained.
- Data: training split of `shared/data/clean`, a fixed pool of {a.get('pool')} {CROP}-px crops
  ({a.get('crops_per_image')} per degraded photo): recipes as for v1 (15 % clean, 40 % single kinds,
  30 % pairs, 15 % triples, strengths in [0.15, 1]); {a.get('realistic', 0) * 100:.0f} % of the photos go
  through the camera pipeline (`training.data.degrade_realistic`: a noise step becomes camera noise,
  labelled by its measured level before the camera JPEG — present from 2 levels; photos without
  noise still get the camera's processing and JPEG and are labelled clean). The frozen layers'
  output is computed once per crop (`--freeze`, `--shard`: the shared 2-core CPU was loaded to
  20–30 processes; a full step would have cost 10x more).
- Loss: as v1 (binary cross-entropy on presence + soft-target cross-entropy on the severity logit).
- AdamW lr {a.get('lr')}, cosine by the clock, batch {a.get('batch')}, {facts['step']} steps
  ({facts['elapsed_s'] / 60:.0f} min of training on one CPU thread of the shared machine, after the pool).
- Reproduce: `python -m training.train_analyser --out training/runs/analyser-v2 --init
  models/restora-analyser-v1.safetensors --freeze {a.get('freeze')} --realistic {a.get('realistic')} --pool
  {a.get('pool')} --crops-per-image {a.get('crops_per_image')} --val-per-image {a.get('val_per_image')} --shard K/4`
  for K = 0..3, then the same without `--shard` plus `--batch {a.get('batch')} --lr {a.get('lr')}
  --time-budget {a.get('time_budget')}`; then `python -m training.export --only analyser --analyser
  training/runs/analyser-v2`. Training log: `{ANALYSER_ID}.training-log.csv`.

## Validation
Per-crop numbers during training (validation photos, half through the camera pipeline), best step
{best['step'] if best else '–'}, mean F1 {best['mean_f1'] if best else '–'}:

{per_kind}

Whole-photo comparison with v1 and the hand-made analysis, on synthetic and camera-realistic cases,
the real validation pairs and the clean photos: `benchmarks/results/analysis-choice.md`.
"""
    path.write_text(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--generalist", type=Path, default=Path("training/runs/generalist-v2"), help="run folder")
    p.add_argument("--analyser", type=Path, default=Path("training/runs/analyser"), help="run folder")
    p.add_argument("--checkpoint", default="best.pt", help="checkpoint file name inside each run folder")
    p.add_argument("--out", type=Path, default=MODELS)
    p.add_argument("--cards", type=Path, default=CARDS)
    p.add_argument("--generalist-history", default="", help="a line for the card about how the run went")
    p.add_argument("--only", choices=("generalist", "analyser"), default=None)
    p.add_argument("--lead-kinds", default="",
                   help="the generalist's catalog lead_kinds, comma-separated (chosen from the evaluation: "
                        "python -m training.choose_lead_kinds)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limit_threads(1)
    args.cards.mkdir(parents=True, exist_ok=True)
    summary = {}
    if args.only in (None, "generalist"):
        g = export_generalist(args.generalist / args.checkpoint, args.generalist / "log.csv", args.out)
        write_generalist_card(g, args.cards / f"{GENERALIST_ID}.md", args.generalist_history)
        if (args.generalist / "log.csv").exists():
            shutil.copyfile(args.generalist / "log.csv", args.cards / f"{GENERALIST_ID}.training-log.csv")
        write_entry(args.out / "catalog.toml", GENERALIST_ID, catalog_toml(
            g, "Restora fast generalist (bundled)", ["generalist"],
            "Restora's own small all-in-one restorer for noise, blur, JPEG, haze, low light and rain, "
            "told by the analysis which kinds to remove and how strongly; fast on a CPU.", SIZE_MULTIPLE,
            tuple(args.lead_kinds.split(",")) if args.lead_kinds else (), conditioned=True))
        summary["generalist"] = {k: g[k] for k in ("files", "params", "onnx_max_diff", "step")} | {
            "gflops_per_mp": g["flops"]["flops_per_mp"] / 1e9}
    if args.only in (None, "analyser"):
        a = export_analyser(args.analyser / args.checkpoint, args.analyser / "log.csv", args.out)
        write_analyser_card(a, args.cards / f"{ANALYSER_ID}.md")
        if (args.analyser / "log.csv").exists():
            shutil.copyfile(args.analyser / "log.csv", args.cards / f"{ANALYSER_ID}.training-log.csv")
        write_entry(args.out / "catalog.toml", ANALYSER_ID, catalog_toml(
            a, "Restora learned degradation analyser (bundled)", ["analysis"],
            "Restora's own small CNN that detects the six degradation kinds and their strength.", 1))
        summary["analyser"] = {k: a[k] for k in ("files", "params", "onnx_max_diff", "step")} | {
            "gflops_per_mp": a["flops"]["flops_per_mp"] / 1e9}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
