"""What the benchmark scripts beside this file share: the machine they ran on (for the results
file), and reading a photo and rounding a result to 8 bits as the saved file would be."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Optional

import numpy as np

#: Where the fit scripts keep what they re-make at will (degraded cases, intermediate outputs): outside the
#: repository, ``$RESTORA_BENCH_SCRATCH`` or this project's machines' scratch folder.
SCRATCH = Path(os.environ.get("RESTORA_BENCH_SCRATCH", "/work/scratch"))


def cpu_model() -> str:
    """The CPU's model name (``lscpu``, else ``/proc/cpuinfo``, else the platform's word)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_rgb(path: Path) -> np.ndarray:
    """The photo at ``path`` as float32 HxWx3 RGB in [0, 1]."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), np.float32) / 255.0


def q8(x: np.ndarray) -> np.ndarray:
    """``x`` (float, [0, 1] units) clipped and rounded to 8-bit levels, as a saved 8-bit file holds it."""
    return np.round(np.clip(x, 0.0, 1.0) * 255.0) / 255.0


def psnr_8bit(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two images in [0, 1] units on 8-bit levels (``q8`` or ``load_rgb``); inf if equal."""
    m = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if m == 0 else float(10 * np.log10(1.0 / m))


def report(text: str, out: Optional[Path]) -> None:
    """Print a results file's ``text`` and write it to ``out`` (its folder made if needed) unless ``None``."""
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


def shuffled_training_photos(count: int, seed: int) -> list[Path]:
    """The first ``count`` photos of the training split in a seeded random order (the same
    ``seed`` gives the same photos on every run, so a fit's rows can be resumed)."""
    from training.data import DEFAULT_DATA, load_split

    train, _ = load_split(DEFAULT_DATA)
    order = np.random.default_rng(seed).permutation(len(train))
    return [train[i] for i in order[:count]]


def append_rows(rows: Path, photos: list[Path], minutes: float, make_row, shown: int = 300) -> None:
    """Appends ``make_row(path, index)`` (a dict with an ``"index"``) as one JSON line per photo
    to ``rows``, skipping indices already there and stopping after ``minutes`` (run again to
    resume)."""
    import json
    import sys
    import time

    rows.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(x)["index"] for x in rows.read_text().splitlines()} if rows.exists() else set()
    t0 = time.time()
    with rows.open("a") as fh:
        for i, path in enumerate(photos):
            if i in done:
                continue
            if time.time() - t0 > minutes * 60:
                print(f"stopped after {minutes} min; run again to resume", file=sys.stderr)
                break
            row = make_row(path, i)
            fh.write(json.dumps(row, default=float) + "\n")
            fh.flush()
            print(json.dumps(row, default=float)[:shown], flush=True)
