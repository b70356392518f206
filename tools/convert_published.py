"""Convert the published networks Restora bundles (``../shared/weights``) into ``models/`` and
write their catalog entries and model cards.

    python -m tools.convert_published [--weights ../shared/weights] [--only ffdnet-color]

For each model: our module is loaded strictly from the authors' file, saved as safetensors and
exported to ONNX (``engine.convert.published``); the catalog entry gets the ONNX file's size
and sha256; the card records the source URL, the original's sha256, the conversion, parameters,
FLOPs per megapixel, the torch ↔ ONNX difference and the measured numbers from
``benchmarks/results/expert-ranking.json`` when the benchmark has been run (re-run with
``--cards-only`` after it).
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
CARDS = MODELS / "cards"
LICENSES = MODELS / "licenses"
RESULTS = REPO / "benchmarks" / "results" / "expert-ranking.json"


@dataclass(frozen=True)
class Bundled:
    id: str
    name: str
    architecture: str
    source: str            # path under the weights folder
    url: str               # where the authors publish it
    license: str
    license_file: str      # under the weights folder
    license_copy: str      # file name under models/licenses
    tasks: tuple[str, ...]
    scale: int
    size_multiple: int
    description: str
    paper: str
    notes: str


IAT_PAPER = ("Z. Cui, K. Li, L. Gu, S. Su, P. Gao, Z. Jiang, Y. Qiao, T. Harada, \"You Only Need 90K Parameters "
             "to Adapt Light: a Light Weight Transformer for Image Enhancement and Exposure Correction\", BMVC 2022")
IAT_NOTES = (
    "Local branch: 3×3 convolution to 16 channels (LeakyReLU 0.2), a multiplicative and an additive stack of "
    "three light blocks (depthwise 3×3, 1×1 → depthwise 5×5 → 1×1, ×4 1×1 MLP with GELU, each after a learned "
    "per-pixel channel mixing, scaled residuals), 3×3 convolutions to the per-pixel multiplier (ReLU) and "
    "offset (tanh). Global branch: two stride-2 3×3 convolutions with batch norm, one attention block with 10 "
    "learned queries (4 heads) over every position: query 0 → gamma, queries 1–9 → a 3×3 colour matrix. "
    "Output `clamp((x·mul + add) @ colourᵀ, 1e-8, 1) ^ gamma`. The number of heads is not visible in the "
    "tensor shapes: 4 (the paper's) gives 28.8 dB on six LOL pairs where 2 gives 23.5. "
    "ONNX: inputs `input` (tile), `global_input` (the photo), `gamma` N×1 and `color` N×3×3; outputs "
    "`output` (the local branch on `input` with the given gamma and colour), `gamma_out` and `color_out` "
    "(the global branch on `global_input`), so that the expert runs the global branch once per photo and "
    "the local branch per tile (receptive field 11 px each side), feeding an 8×8 dummy to the part not "
    "wanted. The global branch sees the full photo up to 4 MP (area-downscaled above).")

BUNDLED: tuple[Bundled, ...] = (
    Bundled("ffdnet-color", "FFDNet colour denoiser (bundled)", "FFDNet", "kair/ffdnet_color.pth",
            "https://github.com/cszn/KAIR/releases/download/v1.0/ffdnet_color.pth", "MIT", "kair/LICENSE",
            "KAIR-MIT.txt", ("noise",), 1, 2,
            "Non-blind CNN denoiser told the measured noise level at every pixel (Zhang et al., TIP 2018); "
            "the noise slider sets the removed σ. Converted from KAIR's ffdnet_color.pth.",
            "K. Zhang, W. Zuo, L. Zhang, \"FFDNet: Toward a Fast and Flexible Solution for CNN based Image "
            "Denoising\", IEEE TIP 27(9), 2018",
            "Pixel-unshuffle ×2 (3 → 12 channels), concatenate the noise-level map averaged over 2×2 blocks "
            "(1 channel: the published colour model has 13 input channels), 12 3×3 convolutions of 96 "
            "channels with ReLU, pixel shuffle ×2; not residual. ONNX inputs `input` N×3×H×W in [0, 1] "
            "and `sigma` N×1×H×W (σ in [0, 1] units per pixel), H and W even; output N×3×H×W, not "
            "clipped. Receptive field 24 px each side: the expert tiles with 24 px of overlap "
            "(`ExpertInfo.tile_overlap`). Per-channel σ whose means differ by more than 1.25× are "
            "removed one channel per run (the map has one channel). The noise slider multiplies σ; "
            "the session runs it at strengths 0.5 and 1 and interpolates between them."),
    Bundled("dncnn-color-blind", "CDnCNN-B blind colour denoiser (bundled)", "DnCNN", "kair/dncnn_color_blind.pth",
            "https://github.com/cszn/KAIR/releases/download/v1.0/dncnn_color_blind.pth", "MIT", "kair/LICENSE",
            "KAIR-MIT.txt", ("noise",), 1, 1,
            "Blind colour Gaussian denoiser for σ up to 55/255 (Zhang et al., TIP 2017): the fallback when no "
            "noise level is known. Converted from KAIR's dncnn_color_blind.pth.",
            "K. Zhang, W. Zuo, Y. Chen, D. Meng, L. Zhang, \"Beyond a Gaussian Denoiser: Residual Learning of "
            "Deep CNN for Image Denoising\", IEEE TIP 26(7), 2017",
            "20 3×3 convolutions of 64 channels with ReLU between them (batch normalisation already folded "
            "into the published convolutions), predicting the noise; output = input − noise. ONNX input "
            "`input` N×3×H×W in [0, 1], any size; output not clipped. Receptive field 20 px each side "
            "(tile overlap 20). Its MatConvNet original `GD_Color_Blind.mat` converts "
            "(`engine.convert.matconvnet`) to exactly these tensors."),
    Bundled("iat-lol-v1", "IAT low-light enhancer (LOL-v1, bundled)", "IAT", "iat/best_Epoch_lol_v1.pth",
            "https://github.com/cuiziteng/Illumination-Adaptive-Transformer/raw/"
            "c76472265247f47cea57649af28b15018bb64cb1/IAT_enhance/best_Epoch_lol_v1.pth",
            "Apache-2.0", "iat/LICENSE", "IAT-Apache-2.0.txt", ("lowlight",), 1, 1,
            "Illumination-Adaptive Transformer, 90 k parameters, trained on LOL-v1 (Cui et al., BMVC 2022): "
            "brightens dark photos with a per-pixel multiplier and offset plus a global gamma and colour matrix.",
            IAT_PAPER, IAT_NOTES),
    Bundled("iat-exposure", "IAT exposure corrector (bundled)", "IAT", "iat/best_Epoch_exposure.pth",
            "https://github.com/cuiziteng/Illumination-Adaptive-Transformer/raw/"
            "c76472265247f47cea57649af28b15018bb64cb1/IAT_enhance/best_Epoch_exposure.pth",
            "Apache-2.0", "iat/LICENSE", "IAT-Apache-2.0.txt", ("lowlight",), 1, 1,
            "Illumination-Adaptive Transformer, 90 k parameters, trained for exposure correction of under- and "
            "over-exposed photos (Cui et al., BMVC 2022).",
            IAT_PAPER, IAT_NOTES),
    Bundled("safmn-x4", "SAFMN ×4 fidelity upscaler (bundled)", "SAFMN", "safmn/team15_SAFMN.pth",
            "https://github.com/sunny2109/SAFMN/raw/68c2182e4f8829a979886b0a1cab8f269f91b321/"
            "NTIRE2023_ESR/model_zoo/team15_SAFMN.pth",
            "Apache-2.0", "safmn/LICENSE", "SAFMN-Apache-2.0.txt", ("upscale",), 4, 16,
            "Efficient 4x super-resolution, 0.24 M parameters, trained on bicubic downscaling (Sun et al., "
            "ICCV 2023; NTIRE 2023 efficient-SR entry): a fast, faithful upscaler (not generative); 2x by "
            "area-downscaling its output.",
            "L. Sun, J. Pan, J. Dong, J. Tang, \"Spatially-Adaptive Feature Modulation for Efficient Image "
            "Super-Resolution\", ICCV 2023 (NTIRE 2023 efficient-SR variant)",
            "3×3 convolution to 36 channels, global response normalisation (channel energies over the whole "
            "image), 8 blocks of SAFM (4 channel groups: depthwise 3×3 at full resolution and after max-pooling "
            "to 1/4, 1/8, 1/16, upsampled nearest, 1×1 mix, GELU, multiplying the features) and a convolutional "
            "channel mixer (3×3 to 72, GELU, 1×1), each with a skip; 3×3 convolution to 48 channels, pixel "
            "shuffle ×4, plus the bilinearly upscaled input. The published file also carries the MIT licence "
            "of the NTIRE 2023 challenge folder (`SAFMN-NTIRE2023-MIT.txt`). ONNX: inputs `input` (tile), "
            "`global_input` (the photo) and `response` (N×36×1×1); outputs `output` (×4, the tile with the "
            "given response) and `response_out` (the photo's), so the expert computes the global response "
            "once; sides padded to multiples of 16 (pooling cells aligned with the photo's), 48 px tile "
            "overlap."),
)


def file_table(files: list[dict]) -> str:
    rows = ["| file | bytes | sha256 |", "|---|---|---|"]
    rows += [f"| `{f['file']}` | {f['size']} | `{f['sha256']}` |" for f in files]
    return "\n".join(rows)


def measured_section(model_id: str) -> str:
    """The benchmark's rows for this model (``benchmarks/results/expert-ranking.json``), as tables."""
    if not RESULTS.is_file():
        return "_Not measured yet: run `python benchmarks/expert_ranking.py`._"
    data = json.loads(RESULTS.read_text())
    rows = [r for r in data.get("rows", []) if r.get("model") == model_id]
    if not rows:
        return "_Not in the last benchmark run: run `python benchmarks/expert_ranking.py`._"
    lines = ["| expert | case | n | PSNR in → out | gain mean / worst (dB) | SSIM gain |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['expert']}` | {r['case']} | {r['n']} | {r['psnr_in']:.2f} → {r['psnr_out']:.2f} | "
                     f"{r['psnr_gain']:+.2f} / {r['psnr_gain_worst']:+.2f} | {r['ssim_gain']:+.3f} |")
    ids = {r["expert"] for r in rows}
    speed = [s for s in data.get("speed", []) if s["expert"] in ids]
    if speed:
        lines += ["", "| expert | backend | s/MP, 1 thread | s/MP, 2 threads |", "|---|---|---|---|"]
        lines += [f"| `{s['expert']}` | {s['backend']} | {s['s_per_mp_1t']:.2f} | {s['s_per_mp_2t']:.2f} |"
                  for s in speed]
    memory = [m for m in data.get("memory", []) if m["expert"] in ids]
    lines += [""] + [f"Peak memory at 12 MP (extrapolated from {', '.join(f'{mp:.2f}' for mp in m['input_mp'])} MP): "
                     f"{m['peak_12mp_bytes_extrapolated'] / 2**20:.0f} MiB (`{m['expert']}`)." for m in memory]
    rank = [(kind, i + 1, len(entries)) for kind, entries in data.get("ranking", {}).items()
            for i, e in enumerate(entries) if e.get("model") == model_id]
    lines += [""] + [f"Rank {i} of {n} for {kind} in the benchmark's ranking." for kind, i, n in rank]
    return (f"From `benchmarks/results/expert-ranking.md` (machine: {data.get('machine', '?')}):\n\n"
            + "\n".join(lines))


def write_card(model: Bundled, facts: dict, flops: float) -> None:
    onnx_file = facts["files"][0]
    text = f"""# {model.name} (`{model.id}`)

{model.description}

- Paper: {model.paper}.
- Weights: published by the authors at <{model.url}>,
  sha256 `{facts['source_sha256']}`. Licence: **{model.license}**
  (`models/licenses/{model.license_copy}`, copied from the authors' repository).
- Implementation: Restora's own (`engine/nets/`), written from the paper and the published
  tensor shapes; the published file loads into it strictly (every tensor used, every shape
  equal).

## Files
{file_table(facts['files'])}

Conversion: `python -m tools.convert_published --only {model.id}` (`engine.convert.published`):
published `.pth` read with `torch.load(weights_only=True)` → our module (strict load) →
safetensors (the same tensors) and ONNX (opset 17, TorchScript exporter, dynamic batch, height
and width). torch ↔ ONNX Runtime largest absolute difference on random inputs of another size:
{facts['onnx_max_diff']:.1e}.

## Network
{model.notes}

- Parameters: {facts['params']:,}
- Compute: {flops / 1e9:.1f} GFLOP per input megapixel (2 × multiply-accumulates of the
  convolutions, counted with forward hooks; element-wise work not counted).
- Catalog: `{model.id}`, tasks {', '.join(model.tasks)}, scale {model.scale}, ONNX `{onnx_file['file']}`
  ({onnx_file['size']} bytes, sha256 `{onnx_file['sha256']}`).

## Measured
{measured_section(model.id)}
"""
    CARDS.mkdir(parents=True, exist_ok=True)
    (CARDS / f"{model.id}.md").write_text(text)


def catalog_entry(model: Bundled, facts: dict) -> str:
    onnx_file = facts["files"][0]
    return "\n".join([
        "[[models]]", f'id = "{model.id}"', f'name = "{model.name}"',
        "tasks = [" + ", ".join(f'"{t}"' for t in model.tasks) + "]",
        f'architecture = "{model.architecture}"', f"scale = {model.scale}", f'license = "{model.license}"',
        'format = "onnx"', f"size = {onnx_file['size']}", f'sha256 = "{onnx_file["sha256"]}"',
        f"size_multiple = {model.size_multiple}", f'upstream = "{model.url}"',
        f'description = "{model.description}"',
        f'sources = [{{ type = "bundled", path = "models/{onnx_file["file"]}" }}]'])


def main(argv: list[str] | None = None) -> int:
    from engine.convert.published import NETS, convert, flops_per_megapixel, load_converted
    from engine.weights.catalog import write_entry

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=REPO.parent / "shared" / "weights")
    parser.add_argument("--only", default="", help="comma-separated model ids")
    parser.add_argument("--cards-only", action="store_true", help="rewrite cards from the files in models/")
    args = parser.parse_args(argv)
    only = {s for s in args.only.split(",") if s}
    for model in BUNDLED:
        if only and model.id not in only:
            continue
        if args.cards_only:
            facts = json.loads((CARDS / f"{model.id}.facts.json").read_text())
        else:
            facts = convert(model.architecture, args.weights / model.source, MODELS, model.id)
            for f in facts["files"]:
                (MODELS / f["file"]).chmod(0o644)
            (CARDS / f"{model.id}.facts.json").write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n")
            LICENSES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(args.weights / model.license_file, LICENSES / model.license_copy)
            if model.architecture == "SAFMN":
                shutil.copyfile(args.weights / "safmn" / "LICENSE-NTIRE2023_ESR", LICENSES / "SAFMN-NTIRE2023-MIT.txt")
            write_entry(MODELS / "catalog.toml", model.id, catalog_entry(model, facts))
        module = load_converted(model.architecture, MODELS / f"{model.id}.safetensors")
        write_card(model, facts, flops_per_megapixel(module, NETS[model.architecture]))
        print(f"{model.id}: {facts['params']:,} parameters, ONNX diff {facts.get('onnx_max_diff', 0):.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
