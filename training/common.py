"""Helpers shared by the training scripts: threads, seeds, checkpoints, CSV logs, LR schedule."""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.imageio.atomic import atomic_output


def limit_threads(threads: int) -> None:
    """Use ``threads`` CPU threads in torch (the CPU is shared: the scripts default to 1; launch
    them with ``OMP_NUM_THREADS=1`` too, so that OpenMP in numpy/OpenCV stays on one thread)."""
    torch.set_num_threads(max(int(threads), 1))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def cosine_lr(step: int, total: int, base: float, warmup: int = 100, floor: float = 0.02,
              progress: float | None = None) -> float:
    """Linear warm-up for ``warmup`` steps, then cosine decay to ``floor``·``base`` at ``total``.

    ``progress`` in [0, 1], if given, replaces ``step / total`` after the warm-up (time-budgeted
    runs on a shared CPU anneal by the clock, since the step rate is not predictable)."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(total - warmup, 1) if progress is None else progress
    t = min(max(t, 0.0), 1.0)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def run_progress(step: int, total: int, elapsed_s: float, budget_min: float | None) -> float:
    """Fraction of the run done: steps, or the time budget if that is further along."""
    done = step / max(total, 1)
    if budget_min:
        done = max(done, elapsed_s / (budget_min * 60.0))
    return min(done, 1.0)


def charbonnier(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Mean Charbonnier loss sqrt((a − b)² + eps²), a smooth L1 (images in [0, 1])."""
    return torch.sqrt((a - b) ** 2 + eps * eps).mean()


def _plain(value: Any) -> Any:
    """``value`` with paths as strings and numpy scalars as Python numbers, so that the checkpoint
    holds only what torch's restricted loader accepts (tensors, containers, str, numbers)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically (temp file, then rename) so an interrupted run never leaves a broken file."""
    with atomic_output(path, overwrite=True) as tmp:
        torch.save(_plain(state), tmp)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None when there is none. Read with torch's restricted
    unpickler (``weights_only=True``): a file that would run code is refused, not executed."""
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def append_csv(path: Path, row: dict[str, Any]) -> None:
    """Append ``row`` to a CSV file, writing the header first if the file is new."""
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two arrays in [0, 1] (peak 1)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 100.0 if mse <= 1e-12 else 10.0 * math.log10(1.0 / mse)
