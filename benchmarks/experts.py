"""Benchmark the classical experts: PSNR/SSIM before → after on synthetically degraded clean
photos, and CPU seconds per megapixel.

Run from the repository root:  .venv/bin/python benchmarks/experts.py [--images 12] [--kinds noise,blur]
Writes benchmarks/results/experts.md (and prints the same table).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from _host import cpu_model  # benchmarks/_host.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.degrade import degrade  # noqa: E402
from engine.experts.classical import classical_experts  # noqa: E402
from engine.kinds import KINDS  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "clean"
STRENGTHS = (0.3, 0.6, 0.9)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two float images in [0, 1]."""
    mse = float(np.mean((np.clip(a, 0, 1).astype(np.float64) - b) ** 2))
    return 100.0 if mse == 0 else 10.0 * np.log10(1.0 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al., Gaussian window sigma 1.5) over RGB channels, images in [0, 1]."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    a = np.clip(a, 0, 1).astype(np.float64)
    b = b.astype(np.float64)

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5)

    mu_a, mu_b = blur(a), blur(b)
    va = blur(a * a) - mu_a ** 2
    vb = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (va + vb + c2))
    return float(s[5:-5, 5:-5].mean())


def subset(count: int) -> list[Path]:
    """A deterministic spread of ``count`` clean photos (every k-th of the sorted list)."""
    files = sorted(p for p in DATA.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    step = max(len(files) // count, 1)
    return files[::step][:count]


def load(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(bgr[:, :, ::-1], dtype=np.float32) / 255.0


def machine() -> str:
    cpu = cpu_model()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cpu}, {cores} cores available, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, numpy {np.__version__}, OpenCV {cv2.__version__}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "experts.md")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    images = [(p.name, load(p)) for p in subset(args.images)]
    experts = {e.info.tasks[0]: e for e in classical_experts()}

    rows = []
    for kind in kinds:
        expert = experts[kind]
        for strength in STRENGTHS:
            pin, pout, sin, sout, cpu, mp = [], [], [], [], 0.0, 0.0
            for seed, (_, clean) in enumerate(images):
                degraded = degrade(clean, kind, strength, seed=seed)
                t0 = time.process_time()
                restored = expert.run(degraded)
                cpu += time.process_time() - t0
                mp += clean.shape[0] * clean.shape[1] / 1e6
                pin.append(psnr(degraded, clean))
                pout.append(psnr(restored, clean))
                sin.append(ssim(degraded, clean))
                sout.append(ssim(restored, clean))
            gains = np.array(pout) - np.array(pin)
            row = (kind, expert.info.id, strength, np.mean(pin), np.mean(pout), float(gains.min()),
                   int((gains > 0).sum()), np.mean(sin), np.mean(sout), cpu / mp)
            rows.append(row)
            print(f"{kind:9s} s={strength:.1f} PSNR {row[3]:6.2f} → {row[4]:6.2f} dB "
                  f"(worst gain {row[5]:+.2f}, {row[6]}/{len(images)} improved)  "
                  f"SSIM {row[7]:.3f} → {row[8]:.3f}  {row[9]:5.2f} CPU s/MP", flush=True)

    lines = [
        "# Classical experts — synthetic benchmark",
        "",
        f"Command: `.venv/bin/python benchmarks/experts.py --images {args.images}`",
        "",
        f"Machine: {machine()}",
        "",
        f"Data: {len(images)} photos of `shared/data/clean` (every k-th of the sorted list: "
        f"{', '.join(n for n, _ in images)}), degraded with `engine.degrade.degrade(image, kind, "
        "strength, seed=index)`. PSNR/SSIM against the clean photo, mean over photos. "
        "CPU s/MP = process CPU time (all threads) per megapixel of input.",
        "",
        "Experts:",
        "",
        *[f"- `{experts[k].info.id}` ({k}): {experts[k].info.description}" for k in kinds],
        "",
        "| kind | expert | strength | PSNR in | PSNR out | gain | worst gain | improved | SSIM in | SSIM out "
        "| CPU s/MP |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r[0]} | `{r[1]}` | {r[2]:.1f} | {r[3]:.2f} | {r[4]:.2f} | {r[4] - r[3]:+.2f} | "
                     f"{r[5]:+.2f} | {r[6]}/{len(images)} | {r[7]:.3f} | {r[8]:.3f} | {r[9]:.2f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
