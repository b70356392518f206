"""Fine-tune the bundled conditioned generalist on realistic mixtures (:mod:`training.realistic`),
resumably across sessions on a shared CPU.

One command starts and resumes (re-run it unchanged to continue)::

    OMP_NUM_THREADS=1 nice -n 10 python -m training.finetune_generalist \\
        --out training/runs/generalist-v3 --max-minutes 60

State lives in ``OUT``:

- ``last.safetensors``: model weights (``model/…``), AdamW moments (``opt/<i>/…``) and, in the
  metadata entry ``"restora"`` (JSON), the step, best score, wall and CPU seconds, config and
  arguments. Written atomically every ``--ckpt-minutes`` minutes and at the end. No pickle.
- ``best.safetensors``: the best model so far by validation told the analysis, in the bundled
  format (:func:`engine.nets.generalist.load_generalist` reads it).
- ``log.csv``: one row per validation: step, train loss, wall and CPU minutes, learning rate, and
  PSNR (dB) per kind on the fixed held-out set, told the truth and told the app's analysis.
  Step 0 is the starting model (the previous release when ``--init`` is the bundled file).

Every random choice is a function of ``(--seed, step)``: the crop pool of block
``step // refresh_every`` and the batch of each step, so a resumed run continues exactly as an
uninterrupted one would (torch on one thread is deterministic on the CPU).

Validation set (fixed, :func:`validation_set`): the validation split of the clean photos
(file-name hash, never trained on), each photo degraded whole by each single kind at strength 0.5
and by one evaluation mixture at 0.4 per kind (cycled), realistically, with fixed seeds; centre
128-px crops.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from engine.imageio.atomic import atomic_output
from engine.kinds import KINDS
from engine.nets.generalist import GeneralistConfig, RestoraGeneralist, init_from, restore

from .common import append_csv, charbonnier, cosine_lr, limit_threads, psnr
from .data import DEFAULT_DATA, EVAL_MIXTURES, CropPool, RecipeSampler, load_split, load_uint8, physical_order, to_float
from .realistic import RealisticSampler, degrade_realistic_mix

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INIT = REPO / "models" / "restora-generalist-v2.safetensors"
VAL_CROP = 128
#: Validation groups, in log order: the six kinds alone, then the mixtures.
VAL_GROUPS: tuple[str, ...] = tuple(KINDS) + ("mix",)


# ------------------------------------------------------------------ checkpoints (safetensors only)
def save_state(path: Path, model: RestoraGeneralist, opt: torch.optim.Optimizer, meta: dict) -> None:
    """Model, optimiser moments and ``meta`` (JSON-able) in one safetensors file, written atomically."""
    from safetensors.torch import save_file

    tensors = {f"model/{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    for i, state in opt.state_dict()["state"].items():
        for name, value in state.items():
            tensors[f"opt/{i}/{name}"] = torch.as_tensor(value).detach().contiguous()
    with atomic_output(path, overwrite=True) as tmp:
        save_file(tensors, str(tmp), metadata={"restora": json.dumps(meta, sort_keys=True)})


def load_state(path: Path) -> tuple[dict, dict[str, torch.Tensor]] | None:
    """``(meta, tensors)`` of a :func:`save_state` file, or ``None`` if it does not exist."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not path.exists():
        return None
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {})["restora"])
    return meta, load_file(str(path))


def restore_state(model: RestoraGeneralist, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("opt/"):
            _, i, name = k.split("/", 2)
            state.setdefault(int(i), {})[name] = v
    sd = opt.state_dict()
    sd["state"] = state
    opt.load_state_dict(sd)


def save_model(path: Path, model: RestoraGeneralist, step: int) -> None:
    """The model alone in the bundled format (``training.export.save_safetensors``), atomically."""
    from .export import save_safetensors

    with atomic_output(path, overwrite=True) as tmp:
        save_safetensors(model, Path(tmp), {"architecture": "RestoraGeneralist", "version": "3",
                                            "config": json.dumps(model.config.to_dict()), "step": str(step),
                                            "size_multiple": "8", "license": "MIT"})


# ------------------------------------------------------------------ validation
def validation_set(paths: list[Path], seed: int = 11) -> list[dict]:
    """Fixed held-out cases: ``{"group", "deg", "clean", "truth"}`` (float32 3xHxW crops and the
    true strength vector); see the module docstring."""
    rng = np.random.default_rng(seed)
    mixtures = [m for m in EVAL_MIXTURES]
    cases = []
    for i, path in enumerate(paths):
        clean = to_float(load_uint8(path))
        h, w = clean.shape[:2]
        y, x = (h - VAL_CROP) // 2, (w - VAL_CROP) // 2
        recipes = [(k, [(k, 0.5)]) for k in KINDS]
        mix = mixtures[i % len(mixtures)]
        recipes.append(("mix", [(k, 0.4) for k in physical_order(mix, rng)]))
        for j, (group, recipe) in enumerate(recipes):
            deg, _, severity = degrade_realistic_mix(clean, recipe, seed * 100003 + i * 101 + j)
            crop = (slice(y, y + VAL_CROP), slice(x, x + VAL_CROP))
            cases.append({"group": group, "whole": deg, "deg": deg[crop].transpose(2, 0, 1).copy(),
                          "clean": clean[crop].transpose(2, 0, 1).copy(), "truth": severity})
    return cases


def add_analysis(cases: list[dict], cache: Path | None = None) -> None:
    """Add ``"told"``: what the app's analysis of the whole degraded photo tells the generalist
    (cached in ``cache``, an .npy file, since it depends only on the fixed cases)."""
    from .train_generalist import analysed_strengths

    if cache is not None and cache.exists():
        told = np.load(cache)
        if len(told) == len(cases):
            for c, t in zip(cases, told, strict=True):
                c["told"] = t
                c.pop("whole", None)
            return
    for c in cases:
        c["told"] = analysed_strengths(c.pop("whole"))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, np.stack([c["told"] for c in cases]))


@torch.no_grad()
def validate(model: RestoraGeneralist, cases: list[dict], told: str) -> dict[str, float]:
    """Mean PSNR (dB) per :data:`VAL_GROUPS` group, plus ``"input"`` per group and ``"mean"``
    over all cases; the model is told ``told`` (``"truth"`` or ``"told"``)."""
    model.eval()
    scores: dict[str, list[float]] = {g: [] for g in VAL_GROUPS}
    inputs: dict[str, list[float]] = {g: [] for g in VAL_GROUPS}
    for i in range(0, len(cases), 16):
        chunk = cases[i:i + 16]
        deg = torch.from_numpy(np.stack([c["deg"] for c in chunk]))
        cond = torch.from_numpy(np.stack([c[told] for c in chunk]).astype(np.float32))
        out = restore(model, deg, cond).numpy()
        for c, o in zip(chunk, out, strict=True):
            scores[c["group"]].append(psnr(o, c["clean"]))
            inputs[c["group"]].append(psnr(c["deg"], c["clean"]))
    model.train()
    result = {g: float(np.mean(v)) for g, v in scores.items()}
    result["mean"] = float(np.mean([s for v in scores.values() for s in v]))
    result |= {f"input_{g}": float(np.mean(v)) for g, v in inputs.items()}
    return result


# ------------------------------------------------------------------ training
def training_condition(severity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from .train_generalist import training_condition as tc

    return tc(severity, rng)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of clean photos")
    p.add_argument("--out", type=Path, default=Path("training/runs/generalist-v3"), help="run folder")
    p.add_argument("--init", type=Path, default=DEFAULT_INIT, help="starting weights (bundled format)")
    p.add_argument("--steps", type=int, default=40000, help="cosine schedule length in steps")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=64, help="training crop edge in px (multiple of 8)")
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--pool", type=int, default=2048, help="degraded crops kept in memory")
    p.add_argument("--crops-per-image", type=int, default=8)
    p.add_argument("--refresh-every", type=int, default=800, help="steps between pool regenerations")
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--ckpt-minutes", type=float, default=5.0, help="checkpoint at least this often")
    p.add_argument("--p-analysed", type=float, default=0.5,
                   help="fraction of samples told what the app's analysis finds on the whole degraded photo")
    p.add_argument("--p-legacy", type=float, default=0.25, help="fraction of samples from the original generators")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, default=None, help="use only N train and N val photos (smoke tests)")
    p.add_argument("--max-steps", type=int, default=None, help="stop at this step (this session)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop (after checkpointing) after this long")
    p.add_argument("--no-analysis", action="store_true", help="tell only the truth (tests; no analyser needed)")
    p.add_argument("--report", type=Path, default=None,
                   help="write the training curve of OUT/log.csv as a Markdown table to this file and exit")
    return p.parse_args(argv)


def curve_table(log: Path) -> str:
    """The validation curve of ``log`` (a ``log.csv`` of this script) as Markdown: per logged step,
    CPU minutes, mean PSNR told the truth / the analysis, and per group told the analysis; the
    first row (step 0) is the starting model."""
    import csv

    with log.open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return "(no validation logged yet)\n"
    head = "| step | CPU min | loss | mean truth | mean told | " + " | ".join(VAL_GROUPS) + " |"
    lines = [head, "|" + "---|" * (5 + len(VAL_GROUPS))]
    lines.append("| input | | | " + f"{np.mean([float(rows[0][f'input_{g}']) for g in VAL_GROUPS]):.2f} | | "
                 + " | ".join(rows[0][f"input_{g}"] for g in VAL_GROUPS) + " |")
    for r in rows:
        lines.append(f"| {r['step']} | {r['cpu_min']} | {r['train_loss']} | {r['val_mean_truth']} | "
                     f"{r['val_mean_told']} | " + " | ".join(r[f"told_{g}"] for g in VAL_GROUPS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report is not None:
        args.report.write_text(curve_table(args.out / "log.csv"))
        return 0
    limit_threads(args.threads)
    torch.manual_seed(args.seed)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    train_paths, val_paths = load_split(args.data, args.limit)
    saved = load_state(out / "last.safetensors")
    if saved is None:
        config = GeneralistConfig.from_dict(_init_config(args.init))
        model = RestoraGeneralist(config)
        init_from(model, args.init)
        meta = {"step": 0, "best": -1.0, "wall_s": 0.0, "cpu_s": 0.0, "config": config.to_dict(),
                "init": str(args.init), "args": {k: str(v) for k, v in vars(args).items()}}
    else:
        meta, tensors = saved
        config = GeneralistConfig.from_dict(meta["config"])
        model = RestoraGeneralist(config)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.99))
    if saved is not None:
        restore_state(model, opt, tensors)
        print(f"resumed at step {meta['step']} (best {meta['best']:.3f} dB)", flush=True)
    model.train()
    step = int(meta["step"])
    analysed = not args.no_analysis and args.p_analysed > 0
    from .train_generalist import analysed_strengths

    sampler = RealisticSampler(recipes=RecipeSampler(), p_legacy=args.p_legacy)
    pool = CropPool([load_uint8(p) for p in train_paths], args.pool, args.crop, sampler=sampler.recipes,
                    crops_per_image=args.crops_per_image, align=8, describe=analysed_strengths if analysed else None,
                    degrade=sampler)
    val_cases = validation_set(val_paths)
    if args.no_analysis:
        for c in val_cases:
            c["told"] = c["truth"]
            c.pop("whole")
    else:
        add_analysis(val_cases, out / f"val-told-{len(val_paths)}.npy")
    t_wall, t_cpu = time.time(), time.process_time()
    wall0, cpu0 = float(meta["wall_s"]), float(meta["cpu_s"])

    def elapsed() -> tuple[float, float]:
        return wall0 + time.time() - t_wall, cpu0 + time.process_time() - t_cpu

    def log_validation(loss: float | None) -> float:
        truth = validate(model, val_cases, "truth")
        told = validate(model, val_cases, "told")
        wall, cpu = elapsed()
        row = {"step": step, "train_loss": "" if loss is None else round(loss, 5),
               "wall_min": round(wall / 60, 2), "cpu_min": round(cpu / 60, 2),
               "lr": round(opt.param_groups[0]["lr"], 7),
               "val_mean_truth": round(truth["mean"], 3), "val_mean_told": round(told["mean"], 3)}
        row |= {f"truth_{g}": round(truth[g], 3) for g in VAL_GROUPS}
        row |= {f"told_{g}": round(told[g], 3) for g in VAL_GROUPS}
        row |= {f"input_{g}": round(truth[f"input_{g}"], 3) for g in VAL_GROUPS}
        append_csv(out / "log.csv", row)
        print(f"step {step} loss {loss} val truth {truth['mean']:.3f} told {told['mean']:.3f} dB "
              f"(cpu {cpu / 60:.1f} min)", flush=True)
        return told["mean"]

    def checkpoint() -> None:
        wall, cpu = elapsed()
        save_state(out / "last.safetensors", model, opt, meta | {"step": step, "wall_s": wall, "cpu_s": cpu})

    if step == 0 and not (out / "log.csv").exists():
        meta["best"] = log_validation(None)
        save_model(out / "best.safetensors", model, step)
    block = -1
    losses: list[float] = []
    last_ckpt = time.time()
    while step < args.steps and (args.max_steps is None or step < args.max_steps):
        if step // args.refresh_every != block:
            block = step // args.refresh_every
            pool.refresh(args.seed * 100000 + block)
        rng = np.random.default_rng([args.seed, step, 0xBA7C])
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, args.steps, args.lr, warmup=args.warmup)
        idx = rng.integers(0, args.pool, args.batch)
        deg, cln, _, severity = pool.batch(idx, rng)
        cond = training_condition(severity, rng)
        if analysed:
            use = rng.random(len(idx)) < args.p_analysed
            cond[use] = pool.described[idx][use]
        pred = model(torch.from_numpy(deg), torch.from_numpy(cond))
        loss = charbonnier(pred, torch.from_numpy(cln))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        if step % args.val_every == 0:
            score = log_validation(float(np.mean(losses)))
            losses = []
            if score > meta["best"]:
                meta["best"] = score
                save_model(out / "best.safetensors", model, step)
            checkpoint()
            last_ckpt = time.time()
        elif time.time() - last_ckpt > args.ckpt_minutes * 60:
            checkpoint()
            last_ckpt = time.time()
        if args.max_minutes is not None and time.time() - t_wall > args.max_minutes * 60:
            print(f"stopping after {args.max_minutes} min at step {step}", flush=True)
            break
    checkpoint()
    return 0


def _init_config(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("restora", "{}"))
    return json.loads(meta["config"]) if "config" in meta else GeneralistConfig().to_dict()


if __name__ == "__main__":
    raise SystemExit(main())
