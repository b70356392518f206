"""int8 and float16 on the CPU for the bundled image networks: speed and quality loss vs float32.

Variants of each ONNX file (made in a scratch folder, never shipped by this script):

- ``int8-dynamic``: ``onnxruntime.quantization.quantize_dynamic`` (weights int8 per channel,
  activations quantised at run time: Conv becomes ConvInteger);
- ``int8-static``: ``quantize_static`` in QDQ format, activations calibrated (MinMax) on crops
  of the clean training photos (``../shared/data/clean``) with synthetic noise — never on the
  validation pairs;
- ``fp16``: ``onnxruntime.transformers.float16.convert_float_to_float16`` (inputs/outputs kept
  float32).

Speed: CPU seconds per call of each variant on one fixed window, one intra-op thread, settings
interleaved round by round after a warm-up (the machine is shared: CPU time is the stable
measure, wall time is recorded too). Quality: on the real noisy/clean pairs
``../shared/data/pairs/noise_real_polyu_crops`` (validation only: read, never trained on), the
PSNR of each variant's output against the clean photo minus the float32 output's, per pair (mean
and worst), and the PSNR of the variant's output against the float32 output.

Usage: ``python benchmarks/quantise.py [--pairs 12] [--crop 256] [--rounds 5] [--out
benchmarks/results/quantise.md]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _host import cpu_model  # benchmarks/_host.py, beside this script

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("RESTORA_SHARED") or REPO.parent / "shared")
PAIRS = SHARED / "data" / "pairs" / "noise_real_polyu_crops"
CLEAN = SHARED / "data" / "clean"
SCRATCH = Path(os.environ.get("RESTORA_SCRATCH", "/tmp")) / "restora-quantise"

#: The image networks the default and neural plans run, with their extra inputs.
NETWORKS = ("ffdnet-color", "dncnn-color-blind", "restora-generalist-v2")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1).astype(np.float64) - b) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


def centre(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return np.ascontiguousarray(img[y:y + size, x:x + size])


def feed_for(name: str, session, x: np.ndarray) -> dict:
    """The inputs of network ``name`` for one HxWx3 image (FFDNet: σ estimated on it; the
    generalist: told to remove noise)."""
    from engine.experts.base import ExpertContext
    from engine.experts.published import noise_sigma_map

    nchw = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    feed = {session.get_inputs()[0].name: nchw}
    if name.startswith("ffdnet"):
        sigma = noise_sigma_map(x, ExpertContext())[..., :1]
        feed["sigma"] = np.ascontiguousarray(np.broadcast_to(sigma, x.shape[:2] + (1,)).transpose(2, 0, 1)[None])
    if name.startswith("restora-generalist"):
        from engine.kinds import KINDS

        feed["strengths"] = np.array([[1.0 if k == "noise" else 0.0 for k in KINDS]], np.float32)
    return feed


def run(name: str, session, x: np.ndarray) -> np.ndarray:
    y = session.run(None, feed_for(name, session, x))[0]
    return np.asarray(y, np.float32)[0].transpose(1, 2, 0)


def calibration_images(n: int, size: int) -> list[np.ndarray]:
    from engine.degrade import degrade

    files = sorted(CLEAN.glob("*.jpg"))[:: max(1, len(sorted(CLEAN.glob("*.jpg"))) // n)][:n]
    return [degrade(centre(load(f), size), "noise", 0.3 + 0.5 * (i % 3) / 2, seed=i) for i, f in enumerate(files)]


def make_variants(name: str, calib: list[np.ndarray]) -> dict[str, Path]:
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, \
        quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    SCRATCH.mkdir(parents=True, exist_ok=True)
    src = REPO / "models" / f"{name}.onnx"
    out = {"fp32": src}
    pre = SCRATCH / f"{name}-pre.onnx"
    try:
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    except Exception as err:  # noqa: BLE001 - pre-processing is an optimisation; quantise the original then
        print(f"{name}: pre-processing failed ({err}); quantising the original", file=sys.stderr)
        pre = src
    dyn = SCRATCH / f"{name}-int8-dynamic.onnx"
    try:
        quantize_dynamic(str(pre), str(dyn), weight_type=QuantType.QInt8, per_channel=True)
        out["int8-dynamic"] = dyn
    except Exception as err:  # noqa: BLE001
        print(f"{name}: dynamic quantisation failed: {err}", file=sys.stderr)
    base = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([feed_for(name, base, x) for x in calib])

        def get_next(self):
            return next(self.items, None)

    static = SCRATCH / f"{name}-int8-static.onnx"
    try:
        quantize_static(str(pre), str(static), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        out["int8-static"] = static
    except Exception as err:  # noqa: BLE001
        print(f"{name}: static quantisation failed: {err}", file=sys.stderr)
    convs = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type == "Conv"]
    mixed = SCRATCH / f"{name}-int8-static-ends-fp32.onnx"
    try:  # the first and last convolutions (image in, image out) kept in float32
        quantize_static(str(pre), str(mixed), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=[convs[0], convs[-1]])
        out["int8-static-ends-fp32"] = mixed
    except Exception as err:  # noqa: BLE001
        print(f"{name}: static quantisation (ends in fp32) failed: {err}", file=sys.stderr)
    half = SCRATCH / f"{name}-fp16.onnx"
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
        onnx.save(model, str(half))
        out["fp16"] = half
    except Exception as err:  # noqa: BLE001
        print(f"{name}: fp16 conversion failed: {err}", file=sys.stderr)
    return out


def session(path: Path):
    from engine.runtime.onnx_backend import session_options
    import onnxruntime as ort

    return ort.InferenceSession(str(path), sess_options=session_options(1), providers=["CPUExecutionProvider"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--networks", nargs="*", default=list(NETWORKS))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "quantise.md")
    args = parser.parse_args()
    if not (PAIRS / "lq").is_dir() or not CLEAN.is_dir():
        print(f"no data: {PAIRS} or {CLEAN} is missing", file=sys.stderr)
        return 2
    load_start = [round(x, 1) for x in os.getloadavg()]
    names = sorted((PAIRS / "lq").iterdir())
    names = names[:: max(1, len(names) // args.pairs)][: args.pairs]
    pairs = [(p.name, centre(load(p), args.crop), centre(load(PAIRS / "gt" / p.name), args.crop)) for p in names]
    calib = calibration_images(8, args.crop)
    window = pairs[0][1]
    report = {}
    for name in args.networks:
        paths = make_variants(name, calib)
        sessions = {v: session(p) for v, p in paths.items()}
        for s in sessions.values():  # warm-up
            run(name, s, window)
        cpu = {v: [] for v in sessions}
        wall = {v: [] for v in sessions}
        for r in range(args.rounds):
            order = list(sessions) if r % 2 == 0 else list(sessions)[::-1]
            for v in order:
                c0, t0 = time.process_time(), time.perf_counter()
                run(name, sessions[v], window)
                cpu[v].append(time.process_time() - c0)
                wall[v].append(time.perf_counter() - t0)
        quality = {v: [] for v in sessions}
        for pair, lq, gt in pairs:
            ref = run(name, sessions["fp32"], lq)
            ref_psnr = psnr(ref, gt)
            for v, s in sessions.items():
                out = ref if v == "fp32" else run(name, s, lq)
                quality[v].append({"pair": pair, "psnr": psnr(out, gt), "vs_fp32_db": psnr(out, gt) - ref_psnr,
                                   "psnr_to_fp32": psnr(out, ref) if v != "fp32" else float("inf"),
                                   "input_psnr": psnr(lq, gt)})
        report[name] = {v: {"cpu_s": float(np.median(cpu[v])), "wall_s": float(np.median(wall[v])),
                            "size_kb": paths[v].stat().st_size / 1024, "pairs": quality[v]} for v in sessions}
        print(name, {v: round(report[name][v]["cpu_s"], 3) for v in sessions}, file=sys.stderr, flush=True)
        write(args, report, load_start, [round(x, 1) for x in os.getloadavg()], len(pairs))  # after each network
    print(args.out.read_text())
    return 0


def write(args, report: dict, load_start, load_end, n_pairs: int) -> None:
    lines = ["# int8 and float16 on the CPU: speed and quality loss vs float32", "",
             "Produced by `benchmarks/quantise.py`. Speed: median CPU seconds per call on one "
             f"{args.crop}x{args.crop} window, one intra-op thread, {args.rounds} calls per variant interleaved "
             "after a warm-up. Quality: the real noisy PolyU crops (validation pairs, centre "
             f"{args.crop}x{args.crop} of {n_pairs} pairs): PSNR of each variant's output vs the clean photo "
             "minus the float32 output's (dB; negative = worse), mean and worst over the pairs, and the "
             "variant's PSNR against the float32 output.", "",
             f"- machine: {cpu_model()}, {os.cpu_count()} cores, **shared and loaded** (load average "
             f"{load_start} at start, {load_end} at end): CPU time is the stable measure",
             "- ship rule: a variant ships only if it is ≥ 20 % faster in CPU time AND loses ≤ 0.05 dB "
             "mean and ≤ 0.05 dB on the worst pair", "",
             "| network | variant | CPU s/call | × fp32 | wall s/call | ΔPSNR mean dB | ΔPSNR worst dB "
             "| PSNR to fp32 (min) dB | size KB | ships |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, variants in report.items():
        base = variants["fp32"]["cpu_s"]
        for v, r in variants.items():
            d = [p["vs_fp32_db"] for p in r["pairs"]]
            to = [p["psnr_to_fp32"] for p in r["pairs"]]
            faster = r["cpu_s"] <= 0.8 * base
            ships = v != "fp32" and faster and np.mean(d) >= -0.05 and min(d) >= -0.05
            lines.append(f"| {name} | {v} | {r['cpu_s']:.3f} | {r['cpu_s'] / base:.2f} | {r['wall_s']:.3f} | "
                         f"{np.mean(d):+.3f} | {min(d):+.3f} | {min(to):.1f} | {r['size_kb']:.0f} | "
                         f"{'—' if v == 'fp32' else ('yes' if ships else 'no')} |")
    lines += ["", "Raw:", "", "```json", json.dumps(report, indent=1, default=float), "```", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
