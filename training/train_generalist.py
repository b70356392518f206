"""Train Restora's fast generalist (engine.nets.generalist) on synthetic degradations, on the CPU.

One command, resumable: ``python -m training.train_generalist --out training/runs/generalist``.
Re-running the same command continues from ``OUT/last.pt``. Every ``--val-every`` steps it
evaluates a fixed validation set (centre 128-px crops of the validation photos, each with two
recipes) and appends a row to ``OUT/log.csv``; the best validation PSNR is kept as ``OUT/best.pt``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from engine.degrade import degrade_chain
from engine.kinds import KINDS
from engine.nets.generalist import GeneralistConfig, RestoraGeneralist, init_from, restore

from .common import (append_csv, charbonnier, cosine_lr, limit_threads, load_checkpoint, psnr, run_progress,
                     save_checkpoint, seed_everything)
from .data import DEFAULT_DATA, EVAL_MIXTURES, CropPool, labels, load_split, load_uint8, to_float

VAL_CROP = 128


def validation_set(paths: list[Path], seed: int = 7,
                   analysed: bool = False) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Fixed ``(degraded, clean, severity, told)`` cases: float32 3xHxW images, the recipe's per-kind
    strengths and (``analysed``) what the analysis of the whole degraded photo tells the
    generalist, else the true strengths again (vectors of 6, :data:`KINDS` order): each photo gets
    two recipes (single kinds at 0.5 and the evaluation mixtures at 0.4 each, cycled), degraded
    whole, centre crop of VAL_CROP px."""
    recipes = [[(k, 0.5)] for k in KINDS] + [[(k, 0.4) for k in m] for m in EVAL_MIXTURES]
    from .data import physical_order
    rng = np.random.default_rng(seed)
    out = []
    for i, path in enumerate(paths):
        clean = to_float(load_uint8(path))
        h, w = clean.shape[:2]
        y, x = (h - VAL_CROP) // 2, (w - VAL_CROP) // 2
        for j in (i, i + 7):
            recipe = recipes[j % len(recipes)]
            ordered = dict(recipe)
            recipe = [(k, ordered[k]) for k in physical_order([k for k, _ in recipe], rng)]
            deg = degrade_chain(clean, recipe, seed=seed + 31 * i + j)
            out.append((deg[y:y + VAL_CROP, x:x + VAL_CROP].transpose(2, 0, 1).copy(),
                        clean[y:y + VAL_CROP, x:x + VAL_CROP].transpose(2, 0, 1).copy(), labels(recipe)[1],
                        analysed_strengths(deg) if analysed else labels(recipe)[1]))
    return out


def analysed_strengths(image: np.ndarray) -> np.ndarray:
    """What the app tells the generalist about a whole photo on the ``--auto`` path: the severity
    of every kind the analysis finds (``engine.analysis.learned.analyse_default``), 0 for the rest
    (float32 vector of 6 in :data:`KINDS` order)."""
    from engine.analysis.learned import analyse_default

    report = analyse_default(image)
    found = set(report.present())
    return np.array([round(report.severity(k), 2) if k in found else 0.0 for k in KINDS], np.float32)


def training_condition(severity: np.ndarray, rng: np.random.Generator, jitter: float = 0.08,
                       spurious: float = 0.05) -> np.ndarray:
    """The strengths a conditioned generalist is told during training: the recipe's true per-kind
    strengths (N x 6) with Gaussian jitter of ``jitter`` on present kinds (the analyser's estimates
    are never exact) and, with probability ``spurious`` per absent kind, a small false alarm in
    [0, 0.3] (the analyser's false positives; the target stays the clean photo)."""
    present = severity > 0
    cond = severity + present * rng.normal(0.0, jitter, severity.shape)
    alarms = (~present) & (rng.random(severity.shape) < spurious)
    cond = np.where(alarms, rng.uniform(0.0, 0.3, severity.shape), cond)
    return np.clip(cond, 0.0, 1.0).astype(np.float32)


@torch.no_grad()
def validate(model: RestoraGeneralist, cases: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
             told: int = 2) -> tuple[float, float]:
    """Mean PSNR (dB) of the degraded inputs and of the model's outputs over ``cases``; a
    conditioned model is told column ``told`` of each case (2: the truth, 3: the analysis)."""
    model.eval()
    before, after = [], []
    for i in range(0, len(cases), 16):
        deg = torch.from_numpy(np.stack([c[0] for c in cases[i:i + 16]]))
        cln = np.stack([c[1] for c in cases[i:i + 16]])
        cond = torch.from_numpy(np.stack([c[told] for c in cases[i:i + 16]])) if model.config.cond_dim else None
        out = restore(model, deg, cond).numpy()
        for d, o, c in zip(deg.numpy(), out, cln, strict=True):
            before.append(psnr(d, c))
            after.append(psnr(o, c))
    model.train()
    return float(np.mean(before)), float(np.mean(after))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of clean photos")
    p.add_argument("--out", type=Path, default=Path("training/runs/generalist"), help="run folder")
    p.add_argument("--steps", type=int, default=8000, help="total optimiser steps (cosine schedule length)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=96, help="training crop edge in px (multiple of 8)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--pool", type=int, default=2048, help="degraded crops kept in memory")
    p.add_argument("--refresh-every", type=int, default=400, help="steps between pool regenerations")
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--width", type=int, default=GeneralistConfig.width)
    p.add_argument("--condition", action="store_true",
                   help="condition the network on the per-kind strengths (v2: FiLM on a 6-vector)")
    p.add_argument("--p-analysed", type=float, default=0.0,
                   help="fraction of samples told what the app's analysis finds on the whole degraded photo "
                        "(its real errors: missed kinds, false alarms, misjudged strengths) instead of the "
                        "jittered truth")
    p.add_argument("--init", type=Path, default=None,
                   help="start from these .safetensors weights (matching names and shapes) instead of scratch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, default=None, help="use only N train and N val photos (smoke tests)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="total training minutes (over all resumed runs): the cosine schedule follows the "
                        "clock and training ends when either the steps or this budget is used up")
    p.add_argument("--max-minutes", type=float, default=None, help="stop (after checkpointing) after this long")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limit_threads(args.threads)
    seed_everything(args.seed)
    train_paths, val_paths = load_split(args.data, args.limit)
    config = GeneralistConfig(width=args.width, cond_dim=len(KINDS) if args.condition else 0)
    model = RestoraGeneralist(config)
    if args.init is not None:
        init_from(model, args.init)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.99))
    step, best, elapsed_before = 0, -1.0, 0.0
    ckpt = load_checkpoint(args.out / "last.pt")
    if ckpt is not None:
        config = GeneralistConfig.from_dict(ckpt["config"])
        model = RestoraGeneralist(config)
        model.load_state_dict(ckpt["model"])
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.99))
        opt.load_state_dict(ckpt["optimizer"])
        step, best, elapsed_before = ckpt["step"], ckpt["best_psnr"], ckpt.get("elapsed_s", 0.0)
        print(f"resumed at step {step} (best val PSNR {best:.2f} dB)", flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"generalist {config} params={n_params} train={len(train_paths)} val={len(val_paths)}", flush=True)

    describe = analysed_strengths if config.cond_dim and args.p_analysed > 0 else None
    pool = CropPool([load_uint8(p) for p in train_paths], args.pool, args.crop,
                    crops_per_image=8 if describe else 4, describe=describe)
    val_cases = validation_set(val_paths, analysed=describe is not None)
    t0 = time.time()
    pool.refresh(args.seed * 1000 + step // args.refresh_every)
    rng = np.random.default_rng([args.seed, step])
    losses: list[float] = []

    def checkpoint(path: Path) -> None:
        save_checkpoint(path, {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                               "best_psnr": best, "config": config.to_dict(), "args": vars(args) | {
                                   "data": str(args.data), "out": str(args.out)},
                               "elapsed_s": elapsed_before + time.time() - t0})

    while True:
        progress = run_progress(step, args.steps, elapsed_before + time.time() - t0, args.time_budget)
        if progress >= 1.0:
            break
        if step % args.refresh_every == 0 and step > 0:
            pool.refresh(args.seed * 1000 + step // args.refresh_every)
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, args.steps, args.lr, progress=progress)
        idx = rng.integers(0, args.pool, args.batch)
        deg, cln, _, severity = pool.batch(idx, rng)
        deg_t, cln_t = torch.from_numpy(deg), torch.from_numpy(cln)
        if config.cond_dim:
            cond = training_condition(severity, rng)
            if describe is not None:
                analysed = rng.random(len(idx)) < args.p_analysed
                cond[analysed] = pool.described[idx][analysed]
            out = model(deg_t, torch.from_numpy(cond))
        else:
            out = model(deg_t)
        loss = charbonnier(out, cln_t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        last = run_progress(step, args.steps, elapsed_before + time.time() - t0, args.time_budget) >= 1.0
        if step % args.val_every == 0 or last:
            before, after = validate(model, val_cases)
            row = {"step": step, "train_loss": round(float(np.mean(losses)), 5),
                   "val_psnr_input": round(before, 3), "val_psnr": round(after, 3)}
            score = after
            if describe is not None:
                score = validate(model, val_cases, told=3)[1]
                row["val_psnr_analysed"] = round(score, 3)
            elapsed = elapsed_before + time.time() - t0
            append_csv(args.out / "log.csv", row | {"lr": round(opt.param_groups[0]["lr"], 7),
                                                    "elapsed_s": round(elapsed, 1)})
            print(f"step {step} loss {np.mean(losses):.4f} val {before:.2f} -> {after:.2f} dB told the truth, "
                  f"{score:.2f} dB told the analysis ({elapsed / 60:.1f} min)", flush=True)
            losses = []
            if score > best:
                best = score
                checkpoint(args.out / "best.pt")
        if step % args.ckpt_every == 0 or last:
            checkpoint(args.out / "last.pt")
        if args.max_minutes is not None and time.time() - t0 > args.max_minutes * 60:
            checkpoint(args.out / "last.pt")
            print(f"stopping after {args.max_minutes} min at step {step}", flush=True)
            break
    checkpoint(args.out / "last.pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
