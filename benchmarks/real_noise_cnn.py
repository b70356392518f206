"""A small CNN noise detector for camera grain behind a q75 JPEG, fitted on training photos only
(issue 11; ``real-noise-learned-detector.md``). Companion of ``real_noise_learned.py``, whose case
cache (``--cache``, images included) it trains on, with the same 70 / 30 split by photo.

Input: 64x64 patches on the JPEG's 8-px grid, four channels (0..255 scale / 16): luma minus its 5x5
Gaussian blur, Cb and Cr minus theirs, and the luma itself / 255 (brightness, for signal-dependent
noise). Network: four 3x3 conv layers (16, 32, 32, 64 channels; the last three stride 2) with ReLU,
global mean pooling, one linear output: the noise logit. Photo score: the mean logit over its
non-overlapping 64-px patches. Trained with Adam (lr 2e-3), batches of 64 patches drawn at random
from the training photos' six cases (positives: the two noisy kinds), for ``--steps`` steps;
resumable (``--state``).

``--eval`` reports the held-out photos' detection rate at ≤ 2 % false positives over their four clean
kinds and, with ``--real``, the same threshold on the 60 PolyU crops and their ground truths
(validation only) plus the what-if of ``real_noise_learned.real``.

Run: ``nice -n 10 OMP_NUM_THREADS=1 python benchmarks/real_noise_cnn.py --cache DIR --state FILE
[--steps N] [--eval] [--real]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import real_noise_learned as rl  # noqa: E402

PATCH = 64


def channels(rgb_u8: np.ndarray) -> np.ndarray:
    """(4, H, W) float32 network input of a decoded photo (uint8 RGB)."""
    import cv2

    y, cb, cr = rl._ycc(rgb_u8.astype(np.float64))
    planes = []
    for p in (y, cb, cr):
        p = p.astype(np.float32)
        planes.append((p - cv2.GaussianBlur(p, (5, 5), 1.0)) / 16.0)
    planes.append(y.astype(np.float32) / 255.0)
    return np.stack(planes)


def net():
    from torch import nn

    return nn.Sequential(nn.Conv2d(4, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1))


def load(cache: Path):
    """(inputs [n_photos, 6, 4, S, S] float16, photo ids [n_photos]) from the cache's images."""
    xs, ids = [], []
    for path in sorted(cache.glob("*.npz")):
        d = np.load(path)
        if "images" not in d:
            continue
        xs.append(np.stack([channels(im) for im in d["images"]]).astype(np.float16))
        ids.append(int(path.stem))
    return np.stack(xs), np.asarray(ids)


def split(ids: np.ndarray) -> np.ndarray:
    """True where the photo is held out (the split of ``real_noise_learned.evaluate``)."""
    held = set(np.random.default_rng(rl.SEED + 1).permutation(ids)[: int(round(0.3 * len(ids)))].tolist())
    return np.array([i in held for i in ids])


def photo_scores(model, x: np.ndarray) -> np.ndarray:
    """Mean patch logit of each (4, H, W) input in ``x`` (non-overlapping 64-px patches)."""
    import torch

    out = []
    with torch.no_grad():
        for im in x:
            c, h, w = im.shape
            h, w = h // PATCH * PATCH, w // PATCH * PATCH
            p = torch.tensor(np.asarray(im[:, :h, :w], np.float32))
            p = p.reshape(c, h // PATCH, PATCH, w // PATCH, PATCH).permute(1, 3, 0, 2, 4).reshape(-1, c, PATCH, PATCH)
            out.append(float(model(p).mean()))
    return np.asarray(out)


def train(x: np.ndarray, held: np.ndarray, state: Path, steps: int) -> None:
    import torch

    torch.manual_seed(0)
    model = net()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    done = 0
    if state.is_file():
        ck = torch.load(state, weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        done = int(ck["step"])
    tr = np.flatnonzero(~held)
    rng = np.random.default_rng(done)
    side = x.shape[-1]
    t0 = time.time()
    run = 0.0
    for step in range(done, steps):
        ph = rng.choice(tr, 64)
        kind = rng.integers(0, len(rl.KINDS), 64)
        oy = rng.integers(0, (side - PATCH) // 8 + 1, 64) * 8
        ox = rng.integers(0, (side - PATCH) // 8 + 1, 64) * 8
        batch = np.stack([x[a, k, :, y0:y0 + PATCH, x0:x0 + PATCH]
                          for a, k, y0, x0 in zip(ph, kind, oy, ox, strict=True)])
        label = torch.tensor([rl.KINDS[k] in rl.POSITIVE for k in kind], dtype=torch.float32)
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(torch.tensor(batch.astype(np.float32)))[:, 0],
                                                                    label)
        loss.backward()
        opt.step()
        run = 0.98 * run + 0.02 * float(loss)
        if (step + 1) % 200 == 0 or step + 1 == steps:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step + 1}, state)
            print(f"step {step + 1} loss {run:.3f} {time.time() - t0:.0f}s", file=sys.stderr, flush=True)


def evaluate(x: np.ndarray, held: np.ndarray, state: Path) -> tuple[object, float, dict]:
    import torch

    model = net()
    model.load_state_dict(torch.load(state, weights_only=True)["model"])
    model.eval()
    xs = x[held]
    s = np.stack([photo_scores(model, xs[:, k]) for k in range(len(rl.KINDS))], 1)
    pos_k = [rl.KINDS.index(k) for k in rl.POSITIVE]
    neg_k = [i for i in range(len(rl.KINDS)) if i not in pos_k]
    neg, pos = s[:, neg_k].ravel(), s[:, pos_k].ravel()
    t = rl.threshold_at(neg)
    row = {"held_photos": int(held.sum()), "threshold": t, "fp_held": float((neg > t).mean()),
           "tpr_held": float((pos > t).mean()),
           "per_kind": {k: float((s[:, i] > t).mean()) for i, k in enumerate(rl.KINDS)},
           "tpr_at_fp": {str(b): float((pos > rl.threshold_at(neg, b)).mean()) for b in (0.005, 0.01, 0.02, 0.05, 0.1)}}
    print(json.dumps(row), flush=True)
    return model, t, row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--state", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--eval", action="store_true")
    ap.add_argument("--real", action="store_true")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    x, ids = load(args.cache)
    held = split(ids)
    print(f"{len(ids)} photos, {int(held.sum())} held out", file=sys.stderr, flush=True)
    if not args.eval:
        train(x, held, args.state, args.steps)
        return 0
    model, t, row = evaluate(x, held, args.state)
    if args.real:
        row["real"] = real(model, t)
    args.state.with_suffix(".eval.json").write_text(json.dumps(row, indent=1))
    return 0


def real(model, t: float) -> dict:
    """Validation only: the held-out threshold on the 60 PolyU crops and ground truths."""
    from PIL import Image

    kept = {}
    for run in rl.PLAN_RUNS:
        for line in run.read_text().splitlines():
            d = json.loads(line)
            kept[Path(d["input"]).name] = [s["stage"] for s in d["stages"] if not s["dropped"]]
    names = sorted(kept)

    def score(folder: str) -> np.ndarray:
        xs = []
        for n in names:
            with Image.open(rl.POLYU / folder / n) as im:
                xs.append(channels(np.asarray(im.convert("RGB"))))
        return photo_scores(model, xs)

    sn, sg = score("lq"), score("gt")
    head = {}
    if rl.HEADROOM.is_file():
        for line in rl.HEADROOM.read_text().splitlines():
            d = json.loads(line)
            head[d["name"]] = d
    jpeg_only = {n for n in names if "noise" not in kept[n]}
    found = [n for n, v in zip(names, sn, strict=False) if v > t]
    out = {"noisy_flagged": len(found), "gt_flagged": int((sg > t).sum()),
           "noise_stage_flagged": sum(1 for n in found if n not in jpeg_only),
           "jpeg_only_flagged": [n for n in found if n in jpeg_only],
           "scores": dict(zip(names, map(float, sn), strict=True)),
           "gt_scores": dict(zip(names, map(float, sg), strict=True))}
    out["whatif_on_60_mean"] = {sig: sum(head[n]["ffdnet"][sig] - head[n]["jpeg"]
                                         for n in found if n in jpeg_only and n in head) / len(names)
                                for sig in ("6.0", "8.0", "10.0")}
    print({k: v for k, v in out.items() if "scores" not in k}, flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
