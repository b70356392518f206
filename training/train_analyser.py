"""Train Restora's learned degradation analyser (engine.nets.analyser) on synthetic degradations.

One command, resumable: ``python -m training.train_analyser --out training/runs/analyser``.
Targets per kind: presence (binary cross-entropy on the presence logit) and strength (soft-target
cross-entropy on the severity logit; 0 for absent kinds). Every ``--val-every`` steps it scores a fixed
validation set (128-px crops of the validation photos: clean ones and degraded ones) and appends
per-kind F1 and severity MAE to ``OUT/log.csv``; the best mean F1 is kept as ``OUT/best.pt``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from engine.degrade import degrade_chain
from engine.kinds import KINDS
from engine.nets.analyser import CROP, RestoraAnalyser

from .common import (append_csv, cosine_lr, limit_threads, load_checkpoint, run_progress, save_checkpoint,
                     seed_everything)
from .data import (DEFAULT_DATA, CropPool, RecipeSampler, degrade_realistic, labels, load_split, load_uint8,
                   random_crops, to_float)

#: Analyser training draws more clean samples (false alarms on clean photos are costly) and only
#: strengths the report would call present (≥ 0.15, engine.analysis.report.DEFAULT_PRESENCE_THRESHOLD).
ANALYSER_SAMPLER = RecipeSampler(p_clean=0.15, p_single=0.4, p_pair=0.3, min_strength=0.15)
#: Crops start on multiples of 8 px, as in engine.analysis.learned.crop_grid: a JPEG block grid
#: then always sits at the same phase, which makes JPEG artefacts far easier to learn.
ALIGN = 8


def validation_set(paths: list[Path], per_image: int = 6, seed: int = 11,
                   p_camera: float = 0.0) -> dict[str, np.ndarray]:
    """Fixed validation crops: per photo ``per_image`` recipes (one of them clean), one random
    CROP-px crop each; with ``p_camera`` > 0 that share goes through the camera pipeline
    (:func:`training.data.degrade_realistic`). Returns arrays ``x`` (N x 3 x CROP x CROP float32),
    ``presence``, ``severity``."""
    rng = np.random.default_rng(seed)
    xs, ps, ss = [], [], []
    for path in paths:
        clean = to_float(load_uint8(path))
        for j in range(per_image):
            recipe = [] if j == 0 else ANALYSER_SAMPLER.sample(rng)
            case_seed = int(rng.integers(2 ** 31))
            if p_camera > 0:
                deg, p, s = degrade_realistic(clean, recipe, case_seed, p_camera)
            else:
                deg = degrade_chain(clean, recipe, seed=case_seed)
                p, s = labels(recipe)
            (y, x), = random_crops(clean.shape[:2], CROP, 1, rng, align=ALIGN)
            xs.append(deg[y:y + CROP, x:x + CROP].transpose(2, 0, 1))
            ps.append(p)
            ss.append(s)
    return {"x": np.stack(xs), "presence": np.stack(ps), "severity": np.stack(ss)}


def f1_scores(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-column F1 of boolean N x K arrays (1.0 where a kind is neither predicted nor present)."""
    tp = (pred & truth).sum(0)
    fp = (pred & ~truth).sum(0)
    fn = (~pred & truth).sum(0)
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 1.0)


@torch.no_grad()
def predict(model: torch.nn.Module, x: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``(presence probability, severity)`` for N x 3 x H x W crops, each N x 6."""
    model.eval()
    out = torch.cat([model(torch.from_numpy(x[i:i + batch])) for i in range(0, len(x), batch)])
    model.train()
    n = len(KINDS)
    return torch.sigmoid(out[:, :n]).numpy(), torch.sigmoid(out[:, n:]).numpy()


def loss_fn(out: torch.Tensor, presence: torch.Tensor, severity: torch.Tensor) -> torch.Tensor:
    """Presence: binary cross-entropy. Severity: cross-entropy against the soft target in [0, 1]
    (an L1 on the sigmoid, used for the first 500 steps, saturated for some kinds: its gradient
    vanishes once the sigmoid is pinned at 0)."""
    n = len(KINDS)
    return (F.binary_cross_entropy_with_logits(out[:, :n], presence)
            + F.binary_cross_entropy_with_logits(out[:, n:], severity))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of clean photos")
    p.add_argument("--out", type=Path, default=Path("training/runs/analyser"), help="run folder")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--pool", type=int, default=2048)
    p.add_argument("--refresh-every", type=int, default=150)
    p.add_argument("--crops-per-image", type=int, default=4,
                   help="crops cut from each degraded photo when the pool is refreshed (more = cheaper refreshes)")
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--ckpt-every", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, default=None, help="use only N train and N val photos (smoke tests)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="total training minutes (over all resumed runs): the cosine schedule follows the "
                        "clock and training ends when either the steps or this budget is used up")
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--realistic", type=float, default=0.0,
                   help="share of samples (train and validation) that go through the camera pipeline "
                        "(engine.degrade.camera via training.data.degrade_realistic)")
    p.add_argument("--init", type=Path, default=None, help="start from these weights (safetensors)")
    p.add_argument("--freeze", type=int, default=0,
                   help="keep the first N feature layers of the --init weights frozen and train only the rest: "
                        "the frozen layers' output is computed once for a fixed pool of crops (saved in the run "
                        "folder), so a step costs a fraction of a full one (for a loaded shared CPU); 0 = train all")
    p.add_argument("--val-per-image", type=int, default=6, help="validation crops per validation photo")
    p.add_argument("--shard", default=None,
                   help="with --freeze: only build part K/N of the cached crops (trunk-shard-K.npz) and exit")
    return p.parse_args(argv)


def _input_stats(x: torch.Tensor) -> torch.Tensor:
    """Per-channel mean and std of N x 3 x H x W crops, as RestoraAnalyser.forward computes them."""
    xm = x.mean(dim=(2, 3))
    xs = (x - x.mean(dim=(2, 3), keepdim=True)).pow(2).mean(dim=(2, 3)).add(1e-6).sqrt()
    return torch.cat([xm, xs], dim=1)


def _tail(model: RestoraAnalyser, freeze: int, feats: torch.Tensor, xstats: torch.Tensor) -> torch.Tensor:
    """RestoraAnalyser.forward from the output of its first ``freeze`` feature layers."""
    f = model.features[freeze:](feats)
    mean = f.mean(dim=(2, 3))
    std = (f - f.mean(dim=(2, 3), keepdim=True)).pow(2).mean(dim=(2, 3)).add(1e-6).sqrt()
    return model.head(torch.cat([mean, std, xstats], dim=1))


@torch.no_grad()
def _trunk_cache(model: RestoraAnalyser, freeze: int, x: np.ndarray, batch: int = 64) -> dict[str, np.ndarray]:
    trunk = model.features[:freeze].eval()
    feats, stats = [], []
    for i in range(0, len(x), batch):
        xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch]))
        feats.append(trunk(xb).half().numpy())
        stats.append(_input_stats(xb).numpy())
    return {"feats": np.concatenate(feats), "xstats": np.concatenate(stats)}


def _write_shard(args: argparse.Namespace, model: RestoraAnalyser, train_paths: list[Path],
                 val_paths: list[Path]) -> int:
    """``--shard K/N``: build the K-th of N parts of the cached pool (and of the validation crops) in
    this process, so that N processes can share the costly degrading; the training run then
    concatenates ``trunk-shard-*.npz``."""
    k, n = (int(v) for v in args.shard.split("/"))
    realistic = (lambda image, recipe, seed: degrade_realistic(image, recipe, seed, args.realistic)) \
        if args.realistic > 0 else None
    size = args.pool // n
    pool = CropPool([load_uint8(p) for p in train_paths], size, CROP, ANALYSER_SAMPLER, align=ALIGN,
                    degrade=realistic, crops_per_image=args.crops_per_image)
    pool.refresh(args.seed * 1000 + 17 * k)
    x, _, presence, severity = pool.batch(np.arange(size), np.random.default_rng(args.seed), flip=False)
    tr = _trunk_cache(model, args.freeze, x)
    val = validation_set(val_paths[k::n], per_image=args.val_per_image, p_camera=args.realistic, seed=11 + k)
    va = _trunk_cache(model, args.freeze, val["x"])
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = args.out / f"trunk-shard-{k:02d}.tmp.npz"
    np.savez(tmp, feats=tr["feats"], xstats=tr["xstats"], presence=presence, severity=severity,
             val_feats=va["feats"], val_xstats=va["xstats"], val_presence=val["presence"], val_severity=val["severity"])
    tmp.replace(args.out / f"trunk-shard-{k:02d}.npz")
    print(f"shard {k}/{n}: {size} train and {len(val['presence'])} validation crops", flush=True)
    return 0


def _after_step(args: argparse.Namespace, step: int, losses: list[float], best: float, elapsed_s: float,
                session_s: float, validate: Callable[[], tuple[np.ndarray, np.ndarray]], val_presence: np.ndarray,
                val_severity: np.ndarray, checkpoint: Callable[[Path], None]) -> tuple[float, bool]:
    """What follows a training step in both loops: validate and log every ``args.val_every`` steps
    (and at the end; ``losses`` is emptied then), keep ``best.pt`` on a better mean F1, ``last.pt``
    every ``args.ckpt_every`` steps. ``elapsed_s``: training seconds over all runs; ``session_s``:
    this run's, which ``args.max_minutes`` bounds. Returns (best mean F1, whether to stop)."""
    last = run_progress(step, args.steps, elapsed_s, args.time_budget) >= 1.0
    if step % args.val_every == 0 or last:
        prob, sev = validate()
        f1 = f1_scores(prob >= 0.5, val_presence > 0.5)
        mae = np.abs(sev - val_severity).mean(0)
        row = {"step": step, "train_loss": round(float(np.mean(losses)), 5), "mean_f1": round(float(f1.mean()), 4)}
        row |= {f"f1_{k}": round(float(v), 4) for k, v in zip(KINDS, f1, strict=True)}
        row |= {f"mae_{k}": round(float(v), 4) for k, v in zip(KINDS, mae, strict=True)}
        row["elapsed_s"] = round(elapsed_s, 1)
        append_csv(args.out / "log.csv", row)
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        losses.clear()
        if f1.mean() > best:
            best = float(f1.mean())
            checkpoint(args.out / "best.pt")
    if step % args.ckpt_every == 0 or last:
        checkpoint(args.out / "last.pt")
    stop = args.max_minutes is not None and session_s > args.max_minutes * 60
    if stop:
        print(f"stopping after {args.max_minutes} min at step {step}", flush=True)
    return best, stop


def train_frozen(args: argparse.Namespace, train_paths: list[Path], val_paths: list[Path]) -> int:
    """``--freeze N``: fine-tune the layers after the first N (and the head) on cached trunk outputs."""
    from safetensors.torch import load_file

    if args.init is None:
        raise SystemExit("--freeze needs --init (the frozen layers come from those weights)")
    model = RestoraAnalyser()
    model.load_state_dict(load_file(str(args.init)))
    for prm in model.features[:args.freeze].parameters():
        prm.requires_grad_(False)
    trainable = [prm for prm in model.parameters() if prm.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=1e-4)
    step, best, elapsed_before = 0, -1.0, 0.0
    ckpt = load_checkpoint(args.out / "last.pt")
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, best, elapsed_before = ckpt["step"], ckpt["best_f1"], ckpt.get("elapsed_s", 0.0)
        print(f"resumed at step {step} (best mean F1 {best:.3f})", flush=True)
    cache_path = args.out / "trunk-cache.npz"
    if args.shard is not None:
        return _write_shard(args, model, train_paths, val_paths)
    shards = sorted(args.out.glob("trunk-shard-*.npz"))
    if not cache_path.exists() and shards:
        parts = [dict(np.load(p)) for p in shards]
        data = {k: np.concatenate([p[k] for p in parts if k in p]) for k in
                ("feats", "xstats", "presence", "severity", "val_feats", "val_xstats", "val_presence", "val_severity")}
        print(f"loaded {len(data['presence'])} train and {len(data['val_presence'])} validation crops from "
              f"{len(shards)} shards", flush=True)
    elif cache_path.exists():
        data = dict(np.load(cache_path))
        print(f"loaded {len(data['presence'])} cached crops", flush=True)
    else:
        t = time.time()
        realistic = (lambda image, recipe, seed: degrade_realistic(image, recipe, seed, args.realistic)) \
            if args.realistic > 0 else None
        pool = CropPool([load_uint8(p) for p in train_paths], args.pool, CROP, ANALYSER_SAMPLER, align=ALIGN,
                        degrade=realistic, crops_per_image=args.crops_per_image)
        pool.refresh(args.seed * 1000)
        x, _, presence, severity = pool.batch(np.arange(args.pool), np.random.default_rng(args.seed), flip=False)
        val = validation_set(val_paths, per_image=args.val_per_image, p_camera=args.realistic)
        tr, va = _trunk_cache(model, args.freeze, x), _trunk_cache(model, args.freeze, val["x"])
        data = {"feats": tr["feats"], "xstats": tr["xstats"], "presence": presence, "severity": severity,
                "val_feats": va["feats"], "val_xstats": va["xstats"], "val_presence": val["presence"],
                "val_severity": val["severity"]}
        args.out.mkdir(parents=True, exist_ok=True)
        tmp = args.out / "trunk-cache.tmp.npz"
        np.savez(tmp, **data)
        tmp.replace(cache_path)
        print(f"cached {len(presence)} train and {len(val['presence'])} validation crops in {time.time() - t:.0f} s",
              flush=True)
    model.features[:args.freeze].eval()
    n_train = len(data["presence"])
    t0 = time.time()
    rng = np.random.default_rng([args.seed, step])
    losses: list[float] = []

    def checkpoint(path: Path) -> None:
        save_checkpoint(path, {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                               "best_f1": best, "elapsed_s": elapsed_before + time.time() - t0,
                               "args": vars(args) | {"data": str(args.data), "out": str(args.out),
                                                     "init": str(args.init)}})

    @torch.no_grad()
    def validate() -> tuple[np.ndarray, np.ndarray]:
        model.eval()
        out = torch.cat([_tail(model, args.freeze, torch.from_numpy(data["val_feats"][i:i + 128]).float(),
                               torch.from_numpy(data["val_xstats"][i:i + 128]))
                         for i in range(0, len(data["val_presence"]), 128)])
        model.train()
        model.features[:args.freeze].eval()
        n = len(KINDS)
        return torch.sigmoid(out[:, :n]).numpy(), torch.sigmoid(out[:, n:]).numpy()

    model.train()
    model.features[:args.freeze].eval()
    while True:
        progress = run_progress(step, args.steps, elapsed_before + time.time() - t0, args.time_budget)
        if progress >= 1.0:
            break
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, args.steps, args.lr, warmup=30, progress=progress)
        idx = rng.integers(0, n_train, args.batch)
        feats = torch.from_numpy(data["feats"][idx]).float()
        if rng.random() < 0.5:
            feats = torch.flip(feats, dims=[3])  # a horizontal flip of the crop, approximately, at this depth
        out = _tail(model, args.freeze, feats, torch.from_numpy(data["xstats"][idx]))
        loss = loss_fn(out, torch.from_numpy(data["presence"][idx]), torch.from_numpy(data["severity"][idx]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        best, stop = _after_step(args, step, losses, best, elapsed_before + time.time() - t0, time.time() - t0,
                                 validate, data["val_presence"], data["val_severity"], checkpoint)
        if stop:
            break
    checkpoint(args.out / "last.pt")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limit_threads(args.threads)
    seed_everything(args.seed)
    train_paths, val_paths = load_split(args.data, args.limit)
    if args.freeze > 0:
        return train_frozen(args, train_paths, val_paths)
    model = RestoraAnalyser()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    step, best, elapsed_before = 0, -1.0, 0.0
    if args.init is not None:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(args.init)))
        print(f"initialised from {args.init}", flush=True)
    ckpt = load_checkpoint(args.out / "last.pt")
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, best, elapsed_before = ckpt["step"], ckpt["best_f1"], ckpt.get("elapsed_s", 0.0)
        print(f"resumed at step {step} (best mean F1 {best:.3f})", flush=True)
    print(f"analyser params={sum(p.numel() for p in model.parameters())} "
          f"train={len(train_paths)} val={len(val_paths)}", flush=True)
    realistic = (lambda image, recipe, seed: degrade_realistic(image, recipe, seed, args.realistic)) \
        if args.realistic > 0 else None
    pool = CropPool([load_uint8(p) for p in train_paths], args.pool, CROP, ANALYSER_SAMPLER, align=ALIGN,
                    degrade=realistic, crops_per_image=args.crops_per_image)
    val = validation_set(val_paths, per_image=args.val_per_image, p_camera=args.realistic)
    t0 = time.time()
    pool.refresh(args.seed * 1000 + step // args.refresh_every)
    rng = np.random.default_rng([args.seed, step])
    losses: list[float] = []

    def checkpoint(path: Path) -> None:
        save_checkpoint(path, {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                               "best_f1": best, "elapsed_s": elapsed_before + time.time() - t0,
                               "args": vars(args) | {"data": str(args.data), "out": str(args.out)}})

    while True:
        progress = run_progress(step, args.steps, elapsed_before + time.time() - t0, args.time_budget)
        if progress >= 1.0:
            break
        if step % args.refresh_every == 0 and step > 0:
            pool.refresh(args.seed * 1000 + step // args.refresh_every)
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, args.steps, args.lr, warmup=50, progress=progress)
        x, _, p, s = pool.batch(rng.integers(0, args.pool, args.batch), rng)
        loss = loss_fn(model(torch.from_numpy(x)), torch.from_numpy(p), torch.from_numpy(s))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        best, stop = _after_step(args, step, losses, best, elapsed_before + time.time() - t0, time.time() - t0,
                                 lambda: predict(model, val["x"]), val["presence"], val["severity"], checkpoint)
        if stop:
            break
    checkpoint(args.out / "last.pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
