"""Rank every available expert per kind by measured quality, and measure its speed and memory.

Run from the repository root (takes several minutes on 2 cores):

    .venv/bin/python benchmarks/expert_ranking.py [--photos 6] [--crop 256]

Quality: PSNR/SSIM gain over the degraded input on (a) synthetic damage of held-aside clean
photos (the validation split of ``shared/data/clean``, ``training.data.is_validation``) and
(b) the real pairs of ``shared/data/pairs`` where they exist for the kind. Side by side: the
classical expert each network replaces and, for noise, CBM3D told the true σ (the ``bm3d``
package, non-commercial licence: used here only, never by the app; skipped when absent).
Speed: seconds per megapixel of input (wall and process CPU time of one run on a 256-px square
with noise σ 0.04 — 128 px for ×4 upscaling — after a warm-up run), 1 and 2 threads, ONNX
Runtime and torch. Memory: peak resident memory of a fresh process running the expert on 0.125
and 0.25 MP inputs (0.024 and 0.048 MP for ×4), extrapolated linearly to a 12 MP photo (output,
for ×4) — a long extrapolation from small sizes (the machine was shared and slow), said so in
the table.

Writes ``benchmarks/results/expert-ranking.{md,json}`` and ``models/expert-ranking.json``, the
ranking the registry uses (``ExpertRegistry.for_task``): per kind, expert ids best first by the
mean PSNR gain over all cases (synthetic and real), with the headline figure the model manager
shows.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.experts import machine, psnr, ssim  # noqa: E402

SHARED = Path(os.environ.get("RESTORA_SHARED") or ROOT.parent / "shared")
CLEAN = SHARED / "data" / "clean"
PAIRS = SHARED / "data" / "pairs"
WEIGHTS = SHARED / "weights"
RESULTS = ROOT / "benchmarks" / "results"
RANKING = ROOT / "models" / "expert-ranking.json"


@dataclass
class Case:
    """One test image: ``clean`` target and ``degraded`` input; ``sigma`` the true noise σ ([0, 1])
    where known; ``set`` the case family (e.g. ``"awgn σ25"``, ``"real: polyu crops"``)."""

    set: str
    clean: np.ndarray
    degraded: np.ndarray
    sigma: Optional[float] = None
    real: bool = False
    trained_on: bool = False  # some expert was trained on these images: reported, not ranked


@dataclass
class Row:
    kind: str
    expert: str
    model: Optional[str]
    set: str
    real: bool
    psnr_in: list[float] = field(default_factory=list)
    psnr_out: list[float] = field(default_factory=list)
    ssim_in: list[float] = field(default_factory=list)
    ssim_out: list[float] = field(default_factory=list)
    reference: bool = False  # not an app expert (CBM3D, FFDNet told the truth)
    trained_on: bool = False

    def summary(self) -> dict:
        gains = np.array(self.psnr_out) - np.array(self.psnr_in)
        return {"kind": self.kind, "expert": self.expert, "model": self.model, "case": self.set, "real": self.real,
                "n": len(gains), "psnr_in": float(np.mean(self.psnr_in)), "psnr_out": float(np.mean(self.psnr_out)),
                "psnr_gain": float(gains.mean()), "psnr_gain_worst": float(gains.min()),
                "ssim_gain": float(np.mean(self.ssim_out) - np.mean(self.ssim_in)), "reference": self.reference,
                "trained_on": self.trained_on}


def load(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(bgr[:, :, ::-1], dtype=np.float32) / 255.0


def centre(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(size, h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return np.ascontiguousarray(img[y:y + s, x:x + s])


def jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"), np.float32) / 255


def bicubic_down(x: np.ndarray, factor: int = 4) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(x.transpose(2, 0, 1).copy())[None]
    lr = F.interpolate(t, scale_factor=1 / factor, mode="bicubic", antialias=True, align_corners=False)
    return np.ascontiguousarray(lr.clamp(0, 1)[0].numpy().transpose(1, 2, 0))


def pairs(name: str, limit: int, size: Optional[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    folder = PAIRS / name
    if not folder.is_dir():
        return []
    out = []
    for lq in sorted((folder / "lq").iterdir())[:limit]:
        gt = folder / "gt" / lq.name
        if gt.is_file():
            a, b = load(gt), load(lq)
            out.append((centre(a, size), centre(b, size)) if size else (a, b))
    return out


def night_scene(clean: np.ndarray) -> np.ndarray:
    """``clean`` as a night shot: 5 stops darker in linear light, with three small lamps at white
    (0.15 % of the frame at 256 px), so its brightest parts are exposed as they should be."""
    from engine.degrade.exposure import lowlight

    night = lowlight(clean, 0.03).copy()
    h, w = night.shape[:2]
    for fy, fx in ((0.2, 0.25), (0.3, 0.7), (0.7, 0.5)):
        y, x = int(h * fy), int(w * fx)
        night[max(y - 3, 0):y + 3, max(x - 3, 0):x + 3] = 1.0
    return night


def build_cases(photos: int, crop: int, real: int = 12) -> dict[str, list[Case]]:
    from engine.degrade import degrade
    from training.data import load_split

    _, val = load_split(CLEAN)
    clean = [centre(load(p), crop) for p in val[:photos]]
    rng = np.random.default_rng(0)
    cases: dict[str, list[Case]] = {"noise": [], "jpeg": [], "lowlight": [], "upscale": []}
    for sigma in (15, 25, 50):
        for c in clean:
            noisy = np.clip(c + rng.normal(0, sigma / 255, c.shape), 0, 1).astype(np.float32)
            cases["noise"].append(Case(f"awgn σ{sigma}", c, noisy, sigma / 255))
    for gt, lq in pairs("noise_real_polyu_crops", real, crop):
        cases["noise"].append(Case("real: PolyU camera-noise crops", gt, lq, real=True))
    for q in (10, 20, 40):
        cases["jpeg"] += [Case(f"jpeg q{q}", c, jpeg(c, q)) for c in clean]
    for s in (0.5, 0.8):
        cases["lowlight"] += [Case(f"lowlight {s}", c, degrade(c, "lowlight", s, seed=i).astype(np.float32))
                              for i, c in enumerate(clean)]
    for c in clean:  # a dark scene exposed for its lights is right as it is: brightening it is an error
        night = night_scene(c)
        noisy = np.clip(night + rng.normal(0, 2 / 255, night.shape), 0, 1).astype(np.float32)
        cases["lowlight"].append(Case("dark scene exposed for its lamps (keep it dark)", night, noisy))
    for gt, lq in pairs("lowlight_real_lol_train", min(real, 6), None):
        cases["lowlight"].append(Case("real: LOL pairs (IAT-LOL was trained on these)", gt, lq, real=True,
                                      trained_on=True))
    cases["upscale"] += [Case("bicubic ×1/4", c, bicubic_down(c)) for c in clean]
    return cases


def experts_by_kind(threads: int) -> dict[str, list]:
    """The app's experts per kind (bundled ONNX), plus DnCNN-3 from ../shared/weights when there."""
    from engine.experts.default import build_registry
    from engine.experts.published import LumaDnCNNExpert

    registry = build_registry()
    out: dict[str, list] = {}
    for kind in ("noise", "jpeg", "lowlight"):
        out[kind] = [e for e in registry.for_task(kind) if not e.info.generative]
    out["upscale"] = [e for e in registry.for_task("upscale") if e.info.scale == 4 and not e.info.generative]
    mat = WEIGHTS / "dncnn" / "DnCNN3.mat"
    if mat.is_file() and not any(e.info.model_id == "dncnn3" for e in out["jpeg"]):
        import shutil
        import tempfile

        tmp = Path(tempfile.mkdtemp()) / "DnCNN3.mat"
        shutil.copyfile(mat, tmp)
        out["jpeg"].append(LumaDnCNNExpert(tmp, model_id="dncnn3", threads=threads))
    for experts in out.values():
        for e in experts:
            if hasattr(e, "threads"):
                e.threads = threads
    return out


def run_as_the_app(kind: str, expert, image: np.ndarray) -> np.ndarray:  # noqa: D401
    """The expert's output as the app produces it: a one-stage plan through a
    :class:`RestorationSession` with the default analysis, so the expert gets what the session
    tells it (e.g. the measured noise level), composed at full strength."""
    from engine.experts.base import ExpertRegistry
    from engine.pipeline.plan import Plan, Stage
    from engine.pipeline.session import RestorationSession

    session = RestorationSession(image, ExpertRegistry([expert]), assess=False)
    session.run(Plan((Stage(kind, expert.info.id, 1.0, auto=False),)))
    return session.compose({kind: 1.0})


def score(kind: str, expert, case: Case, sigma: Optional[float] = None) -> tuple[float, float, float, float]:
    from engine.experts.base import ExpertContext

    if kind == "upscale" or sigma is not None:
        out = expert.run(case.degraded, ExpertContext(noise_sigma=None if sigma is None else np.float32(sigma)))
    else:
        out = run_as_the_app(kind, expert, case.degraded)
    if kind == "upscale":
        import torch
        import torch.nn.functional as F

        t = torch.from_numpy(case.degraded.transpose(2, 0, 1).copy())[None]
        base = F.interpolate(t, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
        base = base[0].numpy().transpose(1, 2, 0)  # "input" of an upscaler: bicubic
    else:
        base = case.degraded
    return psnr(base, case.clean), psnr(out, case.clean), ssim(base, case.clean), ssim(out, case.clean)


def quality(cases: dict[str, list[Case]], experts: dict[str, list]) -> list[Row]:
    rows: list[Row] = []
    for kind, kind_cases in cases.items():
        sets = list(dict.fromkeys(c.set for c in kind_cases))
        contenders: list[tuple[str, Optional[str], Callable, bool]] = [
            (e.info.id, e.info.model_id, (lambda c, e=e, k=kind: score(k, e, c)), False) for e in experts[kind]]
        if kind == "noise":
            ffdnet = next((e for e in experts[kind] if e.info.model_id == "ffdnet-color"), None)
            if ffdnet is not None:
                contenders.append((f"{ffdnet.info.id} told the true σ", ffdnet.info.model_id,
                                   lambda c, f=ffdnet: score("noise", f, c, c.sigma) if c.sigma else None, True))
            try:
                import bm3d

                def cbm3d(c: Case):
                    if c.sigma is None or abs(c.sigma * 255 - 25) > 0.5:  # σ 25 only: CBM3D is slow
                        return None
                    out = np.clip(bm3d.bm3d_rgb(c.degraded, sigma_psd=c.sigma), 0, 1).astype(np.float32)
                    return psnr(c.degraded, c.clean), psnr(out, c.clean), ssim(c.degraded, c.clean), ssim(out, c.clean)

                contenders.append(("CBM3D told the true σ (benchmark only)", None, cbm3d, True))
            except ImportError:
                print("bm3d not installed: CBM3D skipped", file=sys.stderr)
        for name, model, fn, reference in contenders:
            for s in sets:
                row = Row(kind, name, model, s, any(c.real for c in kind_cases if c.set == s), reference=reference,
                          trained_on=any(c.trained_on for c in kind_cases if c.set == s))
                for c in (c for c in kind_cases if c.set == s):
                    got = fn(c)
                    if got is None:
                        break
                    for lst, v in zip((row.psnr_in, row.psnr_out, row.ssim_in, row.ssim_out), got, strict=True):
                        lst.append(v)
                if row.psnr_in:
                    rows.append(row)
                    r = row.summary()
                    print(f"{kind:8s} {name:48s} {s:48s} {r['psnr_in']:6.2f} → {r['psnr_out']:6.2f} "
                          f"({r['psnr_gain']:+.2f}, worst {r['psnr_gain_worst']:+.2f})", flush=True)
    return rows


def torch_twin(expert):
    """The same expert on the bundled safetensors (torch), or ``None``."""
    from engine.experts.neural import NeuralExpert

    path = getattr(expert, "path", None)
    if path is None or path.suffix != ".onnx" or not path.with_suffix(".safetensors").is_file():
        return None
    st = path.with_suffix(".safetensors")
    if isinstance(expert, NeuralExpert):
        return NeuralExpert.from_file(st, expert_id=expert.info.id, tasks=expert.info.tasks,
                                      model_id=expert.info.model_id, scale=expert.info.scale,
                                      architecture="DnCNN")
    kwargs = {"model_id": expert.info.model_id}
    if getattr(expert, "out_scale", 4) != 4:
        return None
    return type(expert)(st, **kwargs)


def seconds_per_mp(expert, threads: int, side: int) -> tuple[float, float]:
    """``(wall seconds, process CPU seconds)`` per input megapixel of one run after a warm-up."""
    import torch

    from engine.experts.base import ExpertContext

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    expert.threads = threads
    if hasattr(expert, "_runner"):
        expert._runner = None  # a new session with this thread count
    rng = np.random.default_rng(1)
    x = np.clip(cv2.GaussianBlur(rng.random((side, side, 3), dtype=np.float32), (0, 0), 3) * 0.6 + 0.2
                + rng.normal(0, 0.04, (side, side, 3)), 0, 1).astype(np.float32)
    ctx = lambda: ExpertContext(noise_sigma=np.float32(0.04))  # noqa: E731 - a denoiser must not skip the work
    expert.run(x, ctx())  # warm-up: loads the model
    t0, c0 = time.perf_counter(), time.process_time()
    expert.run(x, ctx())
    mp = side * side / 1e6
    return (time.perf_counter() - t0) / mp, (time.process_time() - c0) / mp


def speed(experts: dict[str, list]) -> list[dict]:
    out = []
    for kind, kind_experts in experts.items():
        side = 128 if kind == "upscale" else 256
        for e in kind_experts:
            variants = [(e.info.backend.value, e)]
            twin = torch_twin(e)
            if twin is not None:
                variants.append(("torch", twin))
            for backend, expert in variants:
                rec = {"kind": kind, "expert": e.info.id, "backend": backend}
                for threads in (1, 2):
                    rec[f"s_per_mp_{threads}t"], rec[f"cpu_s_per_mp_{threads}t"] = seconds_per_mp(expert, threads, side)
                rec["load_average"] = os.getloadavg()[0]
                print(f"speed {kind:8s} {e.info.id:36s} {backend:9s} 1t {rec['s_per_mp_1t']:.2f}  "
                      f"2t {rec['s_per_mp_2t']:.2f} s/MP (CPU {rec['cpu_s_per_mp_1t']:.2f} / "
                      f"{rec['cpu_s_per_mp_2t']:.2f}, load {rec['load_average']:.1f})", flush=True)
                out.append(rec)
    return out


_MEMORY_CHILD = r"""
import resource, sys, numpy as np
sys.path.insert(0, sys.argv[1])
from engine.experts.default import build_registry
from engine.experts.base import ExpertContext
e = build_registry().get(sys.argv[2])
e.threads = 2
side = int(sys.argv[3])
x = np.clip(np.random.default_rng(0).normal(0.4, 0.04, (side, side, 3)), 0, 1).astype(np.float32)
e.run(np.full((64, 64, 3), 0.4, np.float32), ExpertContext())
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
e.run(x, ExpertContext())
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024)
"""


def memory(experts: dict[str, list]) -> list[dict]:
    out = []
    for kind, kind_experts in experts.items():
        sides = (154, 218) if kind == "upscale" else (354, 500)  # 0.024/0.048 MP; 0.125/0.25 MP
        target = 12e6 / 16 if kind == "upscale" else 12e6
        for e in kind_experts:
            if e.info.id.startswith("neural.dncnn3"):
                continue  # not in the app's registry without a download
            peaks = []
            for side in sides:
                res = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(ROOT), e.info.id, str(side)],
                                     capture_output=True, text=True, timeout=600)
                peaks.append(float(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else float("nan"))
            mp = [s * s / 1e6 for s in sides]
            slope = (peaks[1] - peaks[0]) / (mp[1] - mp[0])
            at12 = peaks[1] + slope * (target / 1e6 - mp[1])
            out.append({"kind": kind, "expert": e.info.id, "peak_bytes": peaks, "input_mp": mp,
                        "peak_12mp_bytes_extrapolated": at12})
            print(f"memory {kind:8s} {e.info.id:36s} {[round(p / 2**20) for p in peaks]} MiB → "
                  f"{at12 / 2**20:.0f} MiB at 12 MP (extrapolated)", flush=True)
    return out


def ranking(summaries: list[dict]) -> dict[str, list[dict]]:
    """Per kind: app experts best first. Where every candidate was measured on real pairs, the
    mean PSNR gain on those real pairs decides (a photo app is judged on real photos: a denoiser
    that wins on synthetic white noise can still lose on camera noise), the mean over all cases
    breaking ties; otherwise the mean over cases of their mean PSNR gain decides. Cases an expert
    was trained on are left out of the ranking."""
    by_kind: dict[str, dict[str, list[dict]]] = {}
    for r in summaries:
        if not r["reference"] and not r["trained_on"]:
            by_kind.setdefault(r["kind"], {}).setdefault(r["expert"], []).append(r)
    out = {}
    for kind, experts in by_kind.items():
        entries = []
        for expert, summaries in experts.items():
            mean_gain = float(np.mean([s["psnr_gain"] for s in summaries]))
            real = [s for s in summaries if s["real"]]
            entries.append({"expert": expert, "model": summaries[0]["model"], "mean_psnr_gain": round(mean_gain, 2),
                            "worst_psnr_gain": round(min(s["psnr_gain_worst"] for s in summaries), 2),
                            "real_psnr_gain": (round(float(np.mean([s["psnr_gain"] for s in real])), 2)
                                               if real else None),
                            "cases": [s["case"] for s in summaries]})
        if all(e["real_psnr_gain"] is not None for e in entries):
            out[kind] = sorted(entries, key=lambda e: (-e["real_psnr_gain"], -e["mean_psnr_gain"]))
        else:
            out[kind] = sorted(entries, key=lambda e: -e["mean_psnr_gain"])
    return out


def write(summaries: list[dict], speeds: list[dict], memories: list[dict], ranks: dict, args,
          kept: tuple[str, ...] = ()) -> None:
    mach = machine()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "expert-ranking.json").write_text(json.dumps(
        {"machine": mach, "rows": summaries, "speed": speeds, "memory": memories, "ranking": ranks},
        indent=1, ensure_ascii=False) + "\n")
    RANKING.write_text(json.dumps({"source": "benchmarks/expert_ranking.py → benchmarks/results/expert-ranking.md",
                                   "machine": mach, "ranking": ranks}, indent=1, ensure_ascii=False) + "\n")
    lines = ["# Experts per kind, ranked by measured quality", "",
             f"Command: `.venv/bin/python benchmarks/expert_ranking.py --photos {args.photos} --crop {args.crop} "
             f"--real {args.real}` (here run as `--part quality` and `--part speed` in parallel, then `--part write`)",
             "",
             f"Machine: {mach}", "",
             "Data: the first validation photos of `shared/data/clean` (`training.data.load_split`; never "
             f"trained on), centre {args.crop}-px crops, damaged synthetically (AWGN σ 15/25/50 clipped to 8 bits; "
             "JPEG q10/20/40 with Pillow; `engine.degrade` low light 0.5/0.8; bicubic ×1/4 with antialiasing), "
             "and the real pairs in `shared/data/pairs` (PolyU camera-noise crops, centre crops; LOL low-light "
             "pairs — IAT-LOL was trained on LOL, so those pairs are reported but left out of the ranking). "
             "Gains are PSNR/SSIM "
             "of the output minus the input's (for ×4 upscaling: minus bicubic's). The app's experts run as the "
             "app runs them: a one-stage plan through `RestorationSession` with the default analysis (severity, "
             "measurements and the analysed noise map come from it); CBM3D is run at σ 25 only (it is slow); "
             "rows marked *reference* are not app experts.", "",
             *([f"Kinds not re-measured in this run ({', '.join(kept)}): their rows, speeds and memory are kept "
                "from the previous run of this benchmark.", ""] if kept else []),
             "## Ranking (what `ExpertRegistry.for_task` uses, `models/expert-ranking.json`)", "",
             "Where every candidate of a kind was measured on real pairs, the mean gain on the real pairs "
             "decides the order (ties: the mean over all cases); otherwise the mean over all cases does.", "",
             "| kind | rank | expert | mean PSNR gain over the cases | worst single image | real pairs |",
             "|---|---|---|---|---|---|"]
    for kind, entries in ranks.items():
        for i, e in enumerate(entries):
            real = "—" if e["real_psnr_gain"] is None else f"{e['real_psnr_gain']:+.2f}"
            lines.append(f"| {kind} | {i + 1} | `{e['expert']}` | {e['mean_psnr_gain']:+.2f} | "
                         f"{e['worst_psnr_gain']:+.2f} | {real} |")
    lines += ["", "## Quality per case", "",
              "| kind | expert | case | n | PSNR in | PSNR out | gain (mean) | worst | SSIM gain |",
              "|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        name = f"`{s['expert']}`" + (" *reference*" if s["reference"] else "")
        lines.append(f"| {s['kind']} | {name} | {s['case']} | {s['n']} | {s['psnr_in']:.2f} | {s['psnr_out']:.2f} | "
                     f"{s['psnr_gain']:+.2f} | {s['psnr_gain_worst']:+.2f} | {s['ssim_gain']:+.3f} |")
    lines += ["", "## Speed (seconds per input megapixel, one run after a warm-up)", "",
              "Wall time and process CPU time (all threads). The machine was shared with other work while this "
              "ran (the 1-minute load average is in the last column; the machine has 2 cores), so wall times "
              "are inflated by waiting; the 1-thread CPU time is the better estimate of an idle machine's wall "
              "time, and ratios within one row or one kind are the meaningful comparison.", "",
              "| kind | expert | backend | wall, 1 thread | wall, 2 threads | CPU, 1 thread | CPU, 2 threads | load |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {s['kind']} | `{s['expert']}` | {s['backend']} | {s['s_per_mp_1t']:.2f} | {s['s_per_mp_2t']:.2f} | "
              f"{s['cpu_s_per_mp_1t']:.2f} | {s['cpu_s_per_mp_2t']:.2f} | {s['load_average']:.1f} |" for s in speeds]
    if not memories:
        lines += ["", "## Peak memory at 12 MP", "",
                  "Not measured in this run. The measurement (peak RSS of a fresh process at two small sizes) "
                  "returned no growth over the process's earlier peak (imports and model loading) at the sizes "
                  "the shared, heavily loaded machine allowed in time, so nothing could be extrapolated; "
                  "`benchmarks/results/runtime.md` has the tiler's memory bound for tiled networks."]
    if memories:
        lines += ["", "## Peak memory at 12 MP (extrapolated)", "",
                  "Peak resident memory added by one run in a fresh process (ONNX Runtime or NumPy, 2 threads) at two "
                  "sizes, extrapolated linearly to a 12 MP photo (×4: to a 12 MP output). Tiled experts grow only by "
                  "their input and output arrays, so the extrapolation is close; it is not a measurement at 12 MP.", "",
                  "| kind | expert | measured (input MP → MiB) | 12 MP (extrapolated) |", "|---|---|---|---|"]
        for m in memories:
            measured = ", ".join(f"{mp:.2f} → {p / 2**20:.0f}"
                                 for mp, p in zip(m["input_mp"], m["peak_bytes"], strict=True))
            at_12mp = m["peak_12mp_bytes_extrapolated"] / 2**20
            lines.append(f"| {m['kind']} | `{m['expert']}` | {measured} | {at_12mp:.0f} MiB |")
    (RESULTS / "expert-ranking.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS / 'expert-ranking.md'} and {RANKING}", file=sys.stderr)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--part", choices=("all", "quality", "speed", "write"), default="all",
                        help="run one part (quality → expert-ranking.quality.json, speed and memory → "
                             "expert-ranking.speed.json; they may run in parallel), or write the results "
                             "from those two files")
    parser.add_argument("--real", type=int, default=12, help="real pairs per set")
    parser.add_argument("--kinds", default="noise,jpeg,lowlight,upscale",
                        help="kinds for --part quality (parts with different kinds may run in parallel)")
    args = parser.parse_args(argv)
    if not CLEAN.is_dir():
        print(f"{CLEAN} not found (set RESTORA_SHARED)", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(2)
    experts = experts_by_kind(threads=2)
    speed_file = RESULTS / "expert-ranking.speed.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.part in ("all", "quality"):
        kinds = [k for k in args.kinds.split(",") if k]
        cases = {k: v for k, v in build_cases(args.photos, args.crop, args.real).items() if k in kinds}
        rows = quality(cases, experts)
        part = RESULTS / f"expert-ranking.quality.{'-'.join(kinds)}.json"
        part.write_text(json.dumps([r.__dict__ for r in rows]) + "\n")
    if args.part in ("all", "speed"):
        speed_file.write_text(json.dumps({"speed": speed(experts), "memory": memory(experts)}) + "\n")
    if args.part in ("all", "write"):
        parts = sorted(RESULTS.glob("expert-ranking.quality.*.json"))
        summaries = [Row(**r).summary() for p in parts for r in json.loads(p.read_text())]
        previous_file = RESULTS / "expert-ranking.json"
        previous = json.loads(previous_file.read_text()) if previous_file.is_file() else {}
        measured = {s["kind"] for s in summaries}
        kept = tuple(dict.fromkeys(s["kind"] for s in previous.get("rows", []) if s["kind"] not in measured))
        summaries = [s for s in previous.get("rows", []) if s["kind"] in kept] + summaries
        if speed_file.is_file():
            timing = json.loads(speed_file.read_text())
        else:  # re-measured quality only: the previous run's speed and memory figures stay
            timing = {"speed": previous.get("speed", []), "memory": previous.get("memory", [])}
        write(summaries, timing["speed"], timing["memory"], ranking(summaries), args, kept)
        for p in parts:
            p.unlink()
        speed_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
