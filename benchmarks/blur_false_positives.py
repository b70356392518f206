"""Blur false positives: soft, noisy photos that the default plan deblurs although nothing is blurred.

The deblur stage (:class:`engine.experts.pnp_deblur.PnPDeblur`) runs after the deblocking and
denoising stages, on their output; their smoothing reads as blur to the kernel estimator. The rule
measured here: when stages ran before it, the kernel must also be found, with at least
``DROP_CONFIDENCE``, on the photo as loaded (``ExpertContext.original``), else the photo is left
as it is and the stage says why. ``before`` = the same code with that check switched off (the
expert not told the original), ``after`` = as shipped. Both run in one process, on one machine;
where the check passes the code path is the one without it, so ``before`` is then that same run.

Sets (``--sets``, comma-separated):

- ``train``: TRAINING photos (every ``--step``-th of ``shared/data/clean``) degraded with the
  camera-realistic pipeline (:func:`engine.degrade.camera.camera_noise`, strength U(0.15, 0.8))
  and saved as a camera JPEG (quality 85–96, 4:2:0), as the real noisy crops are, so the JPEG
  stage runs before the deblur. Negatives (must not be deblurred, target = the photo before
  noise): ``noise`` (noise only), ``soft`` (a 100 % crop of the photo upscaled 2–4x, so the
  softness is in the target too), ``out-of-focus`` (a defocus disc of radius 2–4 px, also in the
  target). Positives (target = the sharp photo): ``shake`` (a camera-shake trajectory of 11–21 px,
  :func:`engine.degrade.blur.shake_kernel`) and ``defocus`` (a disc of radius 3–6 px), in linear
  light before the noise. Only photos whose plan has a blur stage are restored (the others cannot
  change).
- ``polyu``: VALIDATION, ``pairs/noise_real_polyu_crops``: the crops whose default plan has a blur stage.
- ``real``: VALIDATION, ``shared/data/real/blurry_*`` (no ground truth: the stage's verdict and
  the mean absolute change are reported; look at the pictures).

Gains are PSNR of the 8-bit output against the target minus that of the input. Per-row JSON lines
are cached in ``--cache`` (rerun to resume). Writes ``--out`` (markdown).

Run: ``.venv/bin/python benchmarks/blur_false_positives.py --sets train,polyu,real [--step 25]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _host import cpu_model, load_rgb, q8  # noqa: E402

SHARED = Path(os.environ.get("RESTORA_SHARED", ROOT.parent / "shared"))
POLYU = SHARED / "data" / "pairs" / "noise_real_polyu_crops"


@contextmanager
def original_check(enabled: bool):
    """The deblurrer with (``True``, as shipped) or without the check on the photo as loaded."""
    from engine.experts.pnp_deblur import PnPDeblur

    shipped = PnPDeblur.run

    def run(self, image, ctx=None):
        if ctx is not None:
            ctx.original = None
        return shipped(self, image, ctx)

    if not enabled:
        PnPDeblur.run = run
    try:
        yield
    finally:
        PnPDeblur.run = shipped


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(float(np.mean((q8(a) - b) ** 2)), 1e-12)))


def plan_has_blur(restorer, photo) -> bool:
    """Whether the default plan for ``photo`` has a blur stage (analysis and plan only)."""
    from engine.pipeline.job import RestoreOptions

    session = restorer.session(photo.pixels, jpeg=photo.jpeg, metadata=photo.metadata)
    session.analyse()
    return any(s.name == "blur" for s in restorer.plan_for(session, RestoreOptions()).stages)


def restore(restorer, photo, enabled: bool) -> tuple[np.ndarray, dict]:
    from engine.pipeline.job import RestoreOptions

    with original_check(enabled):
        c0 = time.process_time()
        restored, result = restorer.restore_photo(photo, RestoreOptions())
    blur = [s for s in result.stages if s["stage"] == "blur"]
    info = {"kept": [s["stage"] for s in result.stages if not s.get("dropped")],
            "blur_kept": bool(blur and not blur[0].get("dropped")),
            "blur_reason": blur[0].get("reason", "")[:400] if blur else "",
            "blur_severity": float(result.report.severities().get("blur", 0.0)),
            "cpu_s": time.process_time() - c0}
    return restored.pixels, info


def training_samples(step: int):
    """(name, group, degraded float32 HxWx3, target, JPEG quality) for the training photos."""
    import cv2

    from engine.degrade.blur import convolve_linear, disk_kernel, shake_kernel
    from engine.degrade.camera import camera_noise

    files = sorted((SHARED / "data" / "clean").iterdir())[::step]
    groups = ("noise", "soft", "out-of-focus", "shake", "defocus")
    for i, f in enumerate(files):
        rng = np.random.default_rng([i, 4242])
        img = load_rgb(f)
        group = groups[i % len(groups)]
        strength, seed = float(rng.uniform(0.15, 0.8)), int(rng.integers(1 << 30))
        target = blurred = img
        if group == "soft":
            up = float(rng.uniform(2.0, 4.0))
            h, w = img.shape[:2]
            target = blurred = np.clip(cv2.resize(img, None, fx=up, fy=up, interpolation=cv2.INTER_CUBIC)[:h, :w], 0, 1)
        elif group == "out-of-focus":
            target = blurred = convolve_linear(img, disk_kernel(float(rng.uniform(2.0, 4.0))))
        elif group == "shake":
            blurred = convolve_linear(img, shake_kernel(float(rng.uniform(11, 21)), rng,
                                                        anxiety=float(rng.uniform(0.05, 0.6))))
        elif group == "defocus":
            blurred = convolve_linear(img, disk_kernel(float(rng.uniform(3, 6))))
        noisy = camera_noise(blurred, strength, seed, jpeg=False)[0]
        yield f.name, group, noisy.astype(np.float32), target.astype(np.float32), int(rng.integers(85, 97))


def as_photo(pixels: np.ndarray, quality: int):
    """The photo saved as a camera would (a JPEG file at ``quality``, 4:2:0) and loaded as the app
    loads it (its quantisation tables included)."""
    import tempfile

    from PIL import Image

    from engine.imageio import load_photo

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.jpg"
        Image.fromarray((q8(pixels) * 255).astype(np.uint8)).save(p, quality=quality, subsampling=2)
        return load_photo(p)


def run_set(name: str, restorer, cache: Path, step: int, names: Optional[list[str]] = None) -> list[dict]:
    from engine.imageio import load_photo

    done = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            r = json.loads(line)
            done[(r["set"], r["name"])] = r
    if name == "train":
        items = ((n, g, (lambda x=x, q=q: as_photo(x, q)), t) for n, g, x, t, q in training_samples(step))
    elif name == "polyu":
        items = ((p.name, "polyu", (lambda p=p: load_photo(p)), load_rgb(POLYU / "gt" / p.name))
                 for p in sorted((POLYU / "lq").iterdir()))
    else:
        items = ((p.name, "real", (lambda p=p: load_photo(p)), None)
                 for p in sorted((SHARED / "data" / "real").glob("blurry_*")))
    rows = []
    for n, group, get, target in items:
        if names and not any(x in n for x in names):
            continue
        if (name, n) in done:
            rows.append(done[(name, n)])
            continue
        photo = get()
        row = {"set": name, "name": n, "group": group}
        if not plan_has_blur(restorer, photo):
            row["blur_planned"] = False
        else:
            row["blur_planned"] = True
            lq = photo.pixels
            for variant, enabled in (("after", True), ("before", False)):
                if variant == "before" and row["after"]["blur_kept"]:
                    # the check passed, so the code ran exactly as without it: the same output
                    row["before"] = dict(row["after"], same_as_after=True)
                    break
                out, info = restore(restorer, photo, enabled)
                row[variant] = info
                if target is not None:
                    info["gain_db"] = psnr(out, target) - psnr(lq, target)
                else:
                    info["mean_abs_change_255"] = float(np.abs(q8(out) - q8(lq)).mean() * 255)
        rows.append(row)
        with cache.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"{name} {n} {group}: {json.dumps({k: row.get(k) for k in ('blur_planned', 'before', 'after')})[:300]}",
              file=sys.stderr, flush=True)
    return rows


def summary(rows: list[dict], label: str) -> list[str]:
    out = [f"### {label}", "", "| group | photos | blur planned | kept before | kept after | gain before: mean / worst "
           "| gain after: mean / worst | worse than input before / after |", "|---|---|---|---|---|---|---|---|"]
    for group in sorted({r["group"] for r in rows}):
        rs = [r for r in rows if r["group"] == group]
        pl = [r for r in rs if r["blur_planned"]]
        line = f"| {group} | {len(rs)} | {len(pl)} | {sum(r['before']['blur_kept'] for r in pl)} | " \
               f"{sum(r['after']['blur_kept'] for r in pl)} | "
        if pl and "gain_db" in pl[0]["before"]:
            b = np.array([r["before"]["gain_db"] for r in pl])
            a = np.array([r["after"]["gain_db"] for r in pl])
            line += f"{b.mean():+.2f} / {b.min():+.2f} | {a.mean():+.2f} / {a.min():+.2f} | " \
                    f"{int((b < -0.05).sum())} / {int((a < -0.05).sum())} |"
        else:
            line += "– | – | – |"
        out.append(line)
    out.append("")
    return out


def details(rows: list[dict]) -> list[str]:
    out = ["| photo | group | blur kept before → after | gain before | gain after | after: the stage's reason |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        if not r["blur_planned"]:
            continue
        b, a = r["before"], r["after"]
        gb = f"{b['gain_db']:+.2f}" if "gain_db" in b else f"Δ {b['mean_abs_change_255']:.2f}"
        ga = f"{a['gain_db']:+.2f}" if "gain_db" in a else f"Δ {a['mean_abs_change_255']:.2f}"
        reason = a["blur_reason"].replace("|", "/")[:220]
        out.append(f"| {r['name']} | {r['group']} | {b['blur_kept']} → {a['blur_kept']} | {gb} | {ga} | {reason} |")
    return out + [""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="train,polyu,real")
    ap.add_argument("--step", type=int, default=25, help="every N-th clean photo for the training set")
    ap.add_argument("--cache", type=Path, default=Path("blur_false_positives.jsonl"))
    ap.add_argument("--names", default=None, help="only photos whose name contains one of these (comma-separated)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "blur-false-positives-data.md")
    args = ap.parse_args(argv)
    from engine.experts.default import build_registry
    from engine.pipeline.job import Restorer

    restorer = Restorer(build_registry())
    lines = [f"Machine: {cpu_model()}, {os.cpu_count()} cores, shared and loaded; CPU only.", ""]
    for name in args.sets.split(","):
        rows = run_set(name, restorer, args.cache, args.step, args.names.split(",") if args.names else None)
        lines += summary(rows, name) + details(rows)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
