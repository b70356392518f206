"""Could the automatic plan's depth-of-field veto be looser? (issue 12, item 1; training photos only)

`estimate_kernel` returns no kernel when at least ``DOF_SHARP_SHARE`` (0.25) of a photo's detailed
128 px areas are "sharp": their spectral evidence for the estimated kernel is under ``MIN_EVIDENCE``
(0.8). On `../shared/data/real/blurry_fountain.png` (real camera shake) 2 of 6 areas read 0.60 and
0.76, so the automatic plan leaves it blurred (asked for, it is now deblurred). This measures, on
training photos, whether a lower evidence for "sharp" would tell camera shake from a sharp subject:

- ``shake``: the whole photo shaken (``engine.degrade.blur.shake_kernel``, extent U(10, 35) px, in linear
  light): every area is blurred, so any "sharp" area is a false one and a veto is wrong;
- ``centre``: a sharp centre ellipse, the rest defocused by a disc of U(4, 8) px (a portrait);
- ``side-disc`` / ``side-pan``: the left or right 30-45 % sharp, the rest defocused by a disc or shaken
  (a subject followed by a panning camera): a veto is right;
- ``clean``: the photo as it is (its own depth of field; many training photos have a soft background):
  any confident kernel is wrong, and a veto is what stops it.

Each photo gets Gaussian noise σ U(0.5, 2)/255 and the deblurrer's own estimate
(``PnPDeblur.estimate(..., depth_of_field=False)``: the kernel, not vetoed); for the estimates
confident enough to be deconvolved (≥ ``DROP_CONFIDENCE``), the table counts per threshold how many
would be vetoed. Rows are kept (``--rows``) and resumed.

``--camera``: the same question with a real camera's noise instead of Gaussian noise, for the two
cases the veto has to tell apart on real photos (the PolyU crops it protects, the shaken fountain
it holds back):

- ``shake-camera``: the photo shaken as in ``shake``, then the camera pipeline
  (``engine.degrade.camera.camera_noise``, strength U(0.2, 0.6), the camera's own JPEG) and a
  quality-75 re-save (4:2:0), as the PolyU crops were saved: a veto is wrong;
- ``soft-camera``: the photo enlarged U(2, 3.5)x (bicubic, centre crop of the same size: content as
  soft as a full-resolution DSLR crop, nothing to deblur) through the same camera and re-save: any
  confident kernel is wrong, and a veto is what stops it.

``--camera --plan N``: the first N ``soft-camera`` photos saved as quality-75 JPEG files and restored
by the default plan through the CLI (``restora restore --json``), each output scored against the
camera's own output without noise (PSNR, 8-bit): what the automatic plan does to soft, intact content.

``--camera --ablate N``: why the shake is rarely found through a camera: the first N ``shake-camera``
photos through the same camera with one part left out at a time (its sharpening, its noise, its own
JPEG, its noise reduction), with and without the quality-75 re-save; counted: confident kernels.

The deblurrer is told the σ it would estimate itself (``estimate_sigma``). Besides the areas'
evidence, each estimate records features a better rule could use: the kernel's anisotropy, the
halves' agreement, and per area the band contrast. Rows: ``rows-camera.jsonl``; report:
``blur-dof-veto-camera.md``.

Run: ``python benchmarks/blur_dof_veto.py [--photos 60] [--minutes 30] [--camera] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from _host import append_rows, cpu_model, load_rgb, report, shuffled_training_photos  # noqa: E402

KINDS = ("shake", "centre", "side-disc", "side-pan", "clean")
CAMERA_KINDS = ("shake-camera", "soft-camera")
THRESHOLDS = (0.8, 0.7, 0.6, 0.5, 0.4)


def degraded(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``img`` with the ``kind`` of blur described in the module docs, and noise."""
    from real_blur import shallow_dof

    from engine.degrade.blur import convolve_linear, disk_kernel, shake_kernel

    if kind == "clean":
        x = img
    elif kind == "shake":
        x = convolve_linear(img, shake_kernel(rng.uniform(10, 35), rng))
    elif kind == "centre":
        x = shallow_dof(img, rng.uniform(4, 8))
    else:
        back = convolve_linear(img, disk_kernel(rng.uniform(4, 8)) if kind == "side-disc"
                               else shake_kernel(rng.uniform(10, 35), rng))
        w = img.shape[1]
        cut = int(w * rng.uniform(0.3, 0.45))
        cols = np.arange(w)
        sharp = cols < cut if rng.integers(2) == 0 else cols >= w - cut
        x = np.where(sharp[None, :, None], img, back)
    return x


def make_row(path: Path, index: int) -> dict:
    from engine.analysis.blur_kernel import DOF_TILE, detailed_tile_origins, spectral_evidence
    from engine.color import luminance
    from engine.experts.pnp_deblur import PnPDeblur, downscaled

    img = load_rgb(path)
    rng = np.random.default_rng(1000 + index)
    row: dict = {"index": index, "photo": path.name}
    for kind in KINDS:
        sigma = rng.uniform(0.5, 2.0) / 255.0
        x = np.clip(degraded(img, kind, rng) + rng.normal(0.0, sigma, img.shape), 0, 1).astype(np.float32)
        est, factor = PnPDeblur.estimate(x, None, sigma, depth_of_field=False)
        entry: dict = {"kernel": int(est.kernel.shape[0]), "confidence": round(float(est.confidence), 3)}
        if est.kernel.shape[0] > 1:
            gray = downscaled(luminance(x).astype(np.float32), factor)
            entry["evidence"] = sorted(round(float(spectral_evidence(gray[y:y + DOF_TILE, c:c + DOF_TILE],
                                                                      est.kernel, sigma / factor)), 3)
                                       for y, c in detailed_tile_origins(gray))
        row[kind] = entry
    return row


def camera_degraded(img: np.ndarray, kind: str, rng: np.random.Generator, seed: int) -> np.ndarray:
    """``img`` shaken or made soft, through a camera and a quality-75 re-save (module docs)."""
    from engine.degrade.camera import jpeg_round_trip

    return jpeg_round_trip(camera_reference(img, kind, rng, seed)[0].astype(np.float32) / 255.0, 75)


def camera_reference(img: np.ndarray, kind: str, rng: np.random.Generator, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(the camera's output, 8-bit, as :func:`camera_degraded` re-saves it; the same camera without
    noise, 8-bit): the same draws as :func:`camera_degraded`, so the rows and the files agree."""
    import cv2

    from engine.degrade.blur import convolve_linear, shake_kernel
    from engine.degrade.camera import camera_noise

    if kind == "shake-camera":
        x = convolve_linear(img, shake_kernel(rng.uniform(10, 35), rng))
    else:
        f = rng.uniform(2.0, 3.5)
        h, w = img.shape[:2]
        big = cv2.resize(img, (int(round(w * f)), int(round(h * f))), interpolation=cv2.INTER_CUBIC)
        y0, x0 = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
        x = np.clip(big[y0:y0 + h, x0:x0 + w], 0, 1)
    noisy, ref, _ = camera_noise(np.ascontiguousarray(x, np.float32), float(rng.uniform(0.2, 0.6)), seed, jpeg=True)
    return tuple((np.clip(a, 0, 1) * 255.0 + 0.5).astype(np.uint8) for a in (noisy, ref))


def plan_on_soft(photos: list[Path], count: int) -> str:
    """The default plan through the CLI on the first ``count`` ``soft-camera`` photos (module docs)."""
    import contextlib
    import io
    import tempfile

    from PIL import Image

    from engine.cli import main as cli

    lines = ["", f"## The default plan on {count} `soft-camera` photos (`--plan {count}`)", "",
             "| photo | input dB | gain | stages kept | blur severity |", "|---|---|---|---|---|"]
    gains = []
    with tempfile.TemporaryDirectory() as tmp:
        folder, refs = Path(tmp) / "in", {}
        folder.mkdir()
        for index, path in enumerate(photos[:count]):
            img = load_rgb(path)
            rng = np.random.default_rng(2000 + index)
            for j, kind in enumerate(CAMERA_KINDS):
                noisy, ref = camera_reference(img, kind, rng, 31 * index + j)
                if kind == "soft-camera":
                    name = f"{index:02d}_{path.stem}.jpg"
                    Image.fromarray(noisy).save(folder / name, quality=75, subsampling="4:2:0")
                    refs[name] = ref
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            cli(["restore", str(folder), "-o", str(Path(tmp) / "out"), "--json"])
        for line in out.getvalue().splitlines():
            r = json.loads(line)
            name = Path(r["input"]).name
            lq = np.asarray(Image.open(r["input"]).convert("RGB"))
            restored = np.asarray(Image.open(r["output"]).convert("RGB"))
            before, after = _psnr8(lq, refs[name]), _psnr8(restored, refs[name])
            gains.append(after - before)
            kept = [s["stage"] for s in r["stages"] if not s["dropped"]]
            lines.append(f"| {name} | {before:.2f} | {after - before:+.2f} | {', '.join(kept) or 'none'} "
                         f"| {r['report']['blur']:.2f} |")
    lines += ["", f"Mean gain {np.mean(gains):+.2f} dB, worst {min(gains):+.2f}, "
                  f"{sum(g < 0 for g in gains)} of {len(gains)} below their input."]
    return "\n".join(lines) + "\n"


def ablate_shake(photos: list[Path], count: int) -> str:
    """Confident kernels on the first ``count`` ``shake-camera`` photos, one camera part left out at a
    time (module docs)."""
    from dataclasses import replace

    from engine.degrade.blur import convolve_linear, shake_kernel
    from engine.degrade.camera import camera_noise, camera_pipeline, jpeg_round_trip
    from engine.experts.classical.noise_level import estimate_sigma
    from engine.experts.pnp_deblur import DROP_CONFIDENCE, PnPDeblur

    parts = {"the whole camera": {}, "no sharpening": {"sharpen": 0.0}, "no noise": {"shot": 0.0, "read": 0.0},
             "no in-camera JPEG": {"jpeg_quality": None}, "no noise reduction": {"luma_nr": 0.0, "chroma_nr": 0.0}}
    found = {(name, resave): 0 for name in parts for resave in (True, False)}
    for index, path in enumerate(photos[:count]):
        img = load_rgb(path)
        rng = np.random.default_rng(2000 + index)
        shaken = np.ascontiguousarray(convolve_linear(img, shake_kernel(rng.uniform(10, 35), rng)), np.float32)
        _, _, camera = camera_noise(shaken, float(rng.uniform(0.2, 0.6)), 31 * index, jpeg=True)
        for name, change in parts.items():
            out, _ = camera_pipeline(shaken, 31 * index, replace(camera, **change))
            for resave in (True, False):
                x = jpeg_round_trip(out, 75) if resave else out
                est, _ = PnPDeblur.estimate(x, None, float(estimate_sigma(x)), depth_of_field=False)
                found[(name, resave)] += est.kernel.shape[0] > 1 and est.confidence >= DROP_CONFIDENCE
    lines = ["", f"## Why the shake is rarely found through a camera (`--ablate {count}`)", "",
             f"Confident kernels (≥ {DROP_CONFIDENCE}) on the first {count} `shake-camera` photos:", "",
             "| camera | with the q75 re-save | without |", "|---|---|---|"]
    lines += [f"| {name} | {found[(name, True)]} | {found[(name, False)]} |" for name in parts]
    return "\n".join(lines) + "\n"


def _psnr8(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / max(np.mean((a.astype(np.float64) - b) ** 2), 1e-12)))


def make_camera_row(path: Path, index: int) -> dict:
    from engine.analysis.blur_kernel import DOF_TILE, detailed_tile_origins, spectral_evidence
    from engine.color import luminance
    from engine.experts.classical.noise_level import estimate_sigma
    from engine.experts.pnp_deblur import PnPDeblur, downscaled, kernel_anisotropy

    img = load_rgb(path)
    rng = np.random.default_rng(2000 + index)
    row: dict = {"index": index, "photo": path.name}
    for j, kind in enumerate(CAMERA_KINDS):
        x = camera_degraded(img, kind, rng, 31 * index + j)
        sigma = float(estimate_sigma(x))
        est, factor = PnPDeblur.estimate(x, None, sigma, depth_of_field=False)
        entry: dict = {"kernel": int(est.kernel.shape[0]), "confidence": round(float(est.confidence), 3),
                       "sigma255": round(sigma * 255, 2), "agreement": round(float(est.checks.get("agreement", 0)), 3)}
        if est.kernel.shape[0] > 1:
            gray = downscaled(luminance(x).astype(np.float32), factor)
            band = cv2_band(gray)
            tiles = detailed_tile_origins(gray)
            entry["anisotropy"] = round(float(kernel_anisotropy(est.kernel)), 3)
            entry["evidence"] = [round(float(spectral_evidence(gray[y:y + DOF_TILE, c:c + DOF_TILE], est.kernel,
                                                               sigma / factor)), 3) for y, c in tiles]
            entry["contrast"] = [round(float(band[y:y + DOF_TILE, c:c + DOF_TILE].std()), 4) for y, c in tiles]
        row[kind] = entry
    return row


def cv2_band(gray: np.ndarray) -> np.ndarray:
    """The band :func:`engine.analysis.blur_kernel.detailed_tile_origins` measures contrast in."""
    import cv2

    return cv2.GaussianBlur(gray, (0, 0), 2.0) - cv2.GaussianBlur(gray, (0, 0), 8.0)


def summarise_camera(rows: list[dict], photos: int) -> str:
    from engine.experts.pnp_deblur import DROP_CONFIDENCE

    lines, confident = veto_table(rows, CAMERA_KINDS, "The depth-of-field veto with a real camera's noise (issue 12)",
                                  f"--camera --photos {photos}", "a veto is wrong on `shake-camera` and right on "
                                  "`soft-camera`")
    lines += ["", "Estimates with a kernel (any confidence): " + ", ".join(
        f"{k} {sum(r[k]['kernel'] > 1 for r in rows)}" for k in CAMERA_KINDS) + f" of {len(rows)}; σ told "
        "(levels, median): " + ", ".join(f"{k} {np.median([r[k]['sigma255'] for r in rows]):.2f}"
                                          for k in CAMERA_KINDS) + ".", "",
              "Features of the confident estimates (median [min, max]):", "",
              "| kind | n | confidence | agreement | anisotropy | lowest area evidence | share of areas under 0.8 "
              "| contrast of the areas under 0.8 / of the others |", "|---|---|---|---|---|---|---|---|"]

    def mm(v: list[float]) -> str:
        return f"{np.median(v):.2f} [{min(v):.2f}, {max(v):.2f}]" if v else "–"

    for k in CAMERA_KINDS:
        es = confident[k]
        pairs = [(c, v) for e in es for c, v in zip(e.get("contrast", []), e.get("evidence", []), strict=True)]
        low, high = [c for c, v in pairs if v < 0.8], [c for c, v in pairs if v >= 0.8]
        lines.append(f"| {k} | {len(es)} | {mm([e['confidence'] for e in es])} | {mm([e['agreement'] for e in es])} "
                     f"| {mm([e['anisotropy'] for e in es])} | {mm([min(e['evidence']) for e in es if e['evidence']])} "
                     f"| {mm([np.mean([v < 0.8 for v in e['evidence']]) for e in es if e['evidence']])} "
                     f"| {np.median(low) if low else np.nan:.3f} / {np.median(high) if high else np.nan:.3f} |")
    lines += ["", "Per confident estimate (kind, photo, confidence, agreement, anisotropy, areas' evidence):", ""]
    for k in CAMERA_KINDS:
        for r in rows:
            e = r[k]
            if e["kernel"] > 1 and e["confidence"] >= DROP_CONFIDENCE:
                lines.append(f"- {k} {r['photo']}: {e['confidence']:.2f}, {e['agreement']:.2f}, {e['anisotropy']:.2f}, "
                             f"{sorted(e['evidence'])}")
    return "\n".join(lines) + "\n"


def vetoed(entry: dict, threshold: float) -> bool:
    """Whether the veto (at least ``DOF_SHARP_SHARE`` of ``DOF_MIN_TILES`` or more detailed areas under
    ``threshold``) would hold this estimate back."""
    from engine.analysis.blur_kernel import DOF_MIN_TILES, DOF_SHARP_SHARE

    ev = entry.get("evidence", [])
    return len(ev) >= DOF_MIN_TILES and sum(e < threshold for e in ev) >= DOF_SHARP_SHARE * len(ev)


def veto_table(rows: list[dict], kinds: tuple[str, ...], title: str, flags: str,
               which: str) -> tuple[list[str], dict[str, list[dict]]]:
    """The report's head and its table (per threshold, the confident estimates of each kind the veto
    would hold back), and those estimates per kind."""
    from engine.experts.pnp_deblur import DROP_CONFIDENCE

    lines = [f"# {title}", "",
             f"`python benchmarks/blur_dof_veto.py {flags}` ({len(rows)} training photos; "
             f"machine: {cpu_model()}, {os.cpu_count()} logical cores). Kinds and method: the script's docstring. "
             f"Counted: estimates with a kernel and confidence ≥ {DROP_CONFIDENCE} (what the deblurrer "
             f"would deconvolve); {which}.", "",
             "| area counts as sharp under evidence | " + " | ".join(f"{k}: vetoed" for k in kinds) + " |",
             "|---|" + "---|" * len(kinds)]
    confident = {k: [r[k] for r in rows if r[k]["kernel"] > 1 and r[k]["confidence"] >= DROP_CONFIDENCE]
                 for k in kinds}
    for t in THRESHOLDS:
        cells = [f"{sum(vetoed(e, t) for e in confident[k])} of {len(confident[k])}" for k in kinds]
        lines.append(f"| {t}{' (shipped)' if t == 0.8 else ''} | " + " | ".join(cells) + " |")
    return lines, confident


def summarise(rows: list[dict], photos: int) -> str:
    from engine.experts.pnp_deblur import DROP_CONFIDENCE

    lines, confident = veto_table(rows, KINDS, "The depth-of-field veto on training photos (issue 12)",
                                  f"--photos {photos}", "a veto is wrong on `shake` and right on the others")
    lines += ["", "Estimates with a kernel (any confidence) per kind: " + ", ".join(
        f"{k} {sum(r[k]['kernel'] > 1 for r in rows)}" for k in KINDS) + f" of {len(rows)}.", "",
              "Sharp-subject estimates that a threshold would let through (confident, not vetoed), "
              "with their areas' evidence:", ""]
    for k in KINDS[1:]:
        for r, e in ((r, r[k]) for r in rows):
            if e["kernel"] > 1 and e["confidence"] >= DROP_CONFIDENCE:
                let = [t for t in THRESHOLDS if not vetoed(e, t)]
                if let:
                    lines.append(f"- {k} {r['photo']}: confidence {e['confidence']:.2f}, evidence {e['evidence']}; "
                                 f"let through from threshold {max(let)}")
    lines += ["", "Uniformly shaken photos the shipped veto holds back (wrongly):", ""]
    for r in rows:
        e = r["shake"]
        if e["kernel"] > 1 and e["confidence"] >= DROP_CONFIDENCE and vetoed(e, 0.8):
            lines.append(f"- {r['photo']}: confidence {e['confidence']:.2f}, evidence {e['evidence']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=60)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--minutes", type=float, default=30.0, help="stop after this long; run again to resume")
    ap.add_argument("--rows", type=Path,
                    default=REPO / "benchmarks" / "results" / "blur-dof-veto" / "rows-with-clean.jsonl")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--camera", action="store_true", help="camera noise: shake-camera and soft-camera")
    ap.add_argument("--plan", type=int, default=0, help="with --camera: the default plan on this many soft photos")
    ap.add_argument("--ablate", type=int, default=0, help="with --camera: camera parts left out on this many shaken")
    args = ap.parse_args(argv)
    photos = shuffled_training_photos(args.photos, args.seed)
    results = REPO / "benchmarks" / "results"
    if args.camera:
        rows_path = results / "blur-dof-veto" / "rows-camera.jsonl"
        append_rows(rows_path, photos, args.minutes, make_camera_row)
        rows = [json.loads(x) for x in rows_path.read_text().splitlines()]
        text = (summarise_camera(rows, args.photos) + (plan_on_soft(photos, args.plan) if args.plan else "")
                + (ablate_shake(photos, args.ablate) if args.ablate else ""))
        report(text, args.out or results / "blur-dof-veto-camera.md")
        return 0
    append_rows(args.rows, photos, args.minutes, make_row)
    rows = [json.loads(x) for x in args.rows.read_text().splitlines()]
    report(summarise(rows, args.photos), args.out or results / "blur-dof-veto.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
