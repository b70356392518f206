"""Should the JPEG stage, on a camera's save, finish with FFDNet told a small σ? Fitted on training
photos only.

Background (``real-noise-headroom.md``): on the real PolyU crops that the default plan gives only the
JPEG stage, that stage followed by FFDNet at a per-crop best small σ gains more than the stage alone;
the stage's exact luma projection puts back the faint sensor noise its prior removed. This script
measures, on training cases, the JPEG stage as shipped (:class:`engine.experts.jpeg_restore.JpegQcpRestorer`
with FFDNet) and the same followed by the registry's FFDNet expert (chroma pass included) told σ in
:data:`AFTER_SIGMAS`, and two readings of the noise the file holds, then fits the rule

    σ_after = min(SIGMA_MAX, gain · max(feature − offset, 0))      (0..255 levels; 0: no extra run)

(and the constant rule, σ_after = c) for the most mean gain on the noisy cases among the rules
whose clean re-saves gain on average no less than without it and lose at most :data:`CLEAN_LOSS_DB`
each, and that fire on at most :data:`CLEAN_BUDGET` of the clean re-saves where they lose at all.
Gains between measured σ are interpolated linearly (σ 0: the stage alone).

Features, read off the case as the expert / the analysis would:
- ``band``: the luma noise the file holds, √(mean over DCT frequencies u+v in 1..5 of
  :func:`engine.experts.classical.jpeg_qcp.band_noise_255`²) against the stage's prior estimate
  (0..255 levels; about the per-pixel σ of white noise at those frequencies);
- ``still``: the analysis' ``still_luma_255`` (median luma std at 0.7–2 px over still blocks), NaN
  where the case has too little still area.

Training cases (``../shared/data/clean`` training split, centre 256 px; JPEG re-save at IJG quality
U{70..80}, 4:2:0):
- ``clean``: the photo re-saved (reference: the photo);
- ``cleancam``: the camera pipeline (``engine.degrade.camera``) without noise, its in-camera JPEG at
  U{88..97}, re-saved (reference: the camera output before its JPEG);
- ``noisy``: the same camera with weak noise (strength U(0.05, 0.4): ISO 1600–6400 on a large sensor
  after in-camera noise reduction), in-camera JPEG, re-saved (reference as ``cleancam``);
- ``clean_big`` / ``noisy_big``: as ``clean`` / ``noisy`` on a centre crop enlarged U(2, 5) times
  (content as smooth per pixel as a crop of a full-resolution DSLR photo). The enlarged sets follow
  ``jpeg-luma-free.md``, where they were added after seeing that the real crops behave like smooth
  content: a choice informed by validation statistics, said here and in the results file.

``--alone N`` (FFDNet told :data:`ALONE_SIGMAS` in place of the stage) and ``--prior-scale N`` (the stage with
its priors told :data:`PRIOR_SCALES` times their σ) were added after ``real_noise_headroom.py`` showed FFDNet
alone at σ 6–8 beating the stage on the real crops: chosen after seeing validation numbers. The fitted rule is
not used by the engine (``real-noise-headroom.md``: +0.025 dB on the noisy training cases).

Run: ``nice -n 10 OMP_NUM_THREADS=1 python benchmarks/jpeg_after_sigma.py --cache DIR [--count 20]
[--fit] [--out benchmarks/results/jpeg-after-sigma.md]`` (resumable per case).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from real_noise import ffdnet_expert, grid_crop, machine  # noqa: E402

AFTER_SIGMAS = (1.0, 2.0, 3.0, 4.0, 6.0)
CLEAN_LOSS_DB = 0.1
CLEAN_BUDGET = 0.02
SIGMA_MAX = 6.0
SIDE = 256
#: set -> (seed, noise strength range or None, enlargement range or None, in-camera JPEG)
SETS = {"clean": (611, None, None, False), "cleancam": (612, (0.0, 0.0), None, True),
        "noisy": (613, (0.05, 0.4), None, True), "clean_big": (614, None, (2.0, 5.0), False),
        "noisy_big": (615, (0.05, 0.4), (2.0, 5.0), True)}
CLEAN_SETS = ("clean", "cleancam", "clean_big")
#: A diagnostic set, not fitted on (added after the real crops' headroom was seen): smooth content, stronger
#: noise (U(0.2, 0.6)) and no in-camera luma noise reduction, so that fine grain survives the re-save.
SETS["noisy_raw_big"] = (616, (0.2, 0.6), (2.0, 5.0), True)
DIAGNOSTIC_SETS = ("noisy_raw_big",)


def band_feature(estimate: np.ndarray, cons) -> float:
    """√(mean of the luma :func:`band_noise_255`² over frequencies u+v in 1..5), 0..255 levels."""
    from engine.experts.classical.jpeg_qcp import band_noise_255

    u, v = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    mask = (u + v >= 1) & (u + v <= 5)
    y = band_noise_255(estimate, cons, components=(0,))[0]
    return float(np.sqrt((y[mask].astype(np.float64) ** 2).mean()))


def measure_case(noisy: np.ndarray, ref: np.ndarray, quality: int, jpeg, ffd) -> dict:
    from engine.analysis.jpeg_tables import STD_CHROMA, STD_LUMA, JpegQuantisation, JpegSource, ijg_table
    from engine.analysis.noise_level import still_evidence
    from engine.experts import jpeg_restore as jr
    from engine.experts.base import ExpertContext
    from engine.experts.classical.jpeg_qcp import constraints
    from training.metrics import psnr
    from _host import q8

    quant = JpegQuantisation((ijg_table(STD_LUMA, quality), ijg_table(STD_CHROMA, quality),
                              ijg_table(STD_CHROMA, quality)), ((2, 2), (1, 1), (1, 1)))
    source = JpegSource(quant, noisy)
    base = psnr(q8(noisy), ref)
    j = jpeg.run(noisy, ExpertContext(jpeg=source))
    est = jr.luma_from(ffd.run_plain(noisy, ExpertContext(noise_sigma=np.float32(jr.luma_sigma_255(quant) / 255))),
                       ffd.run_plain(noisy, ExpertContext(noise_sigma=np.float32(jr.chroma_sigma_255(quant) / 255))))
    row = {"input": base, "jpeg": psnr(q8(j), ref) - base, "quality": quality,
           "band": band_feature(est, constraints(noisy, quant)),
           "still": float(still_evidence([noisy], quality).get("still_luma_255", float("nan")))}
    for s in AFTER_SIGMAS:
        row[str(s)] = psnr(q8(ffd.run(j, ExpertContext(noise_sigma=np.float32(s / 255)))), ref) - base
    return row


def cases(kind: str, count: int, skip: dict):
    """The set's cases not in ``skip``: ``(name, noisy, reference, quality, strength)`` (float32 RGB in [0, 1])."""
    import cv2

    from engine.degrade.camera import camera_pipeline, jpeg_round_trip, sample_camera_params
    from jpeg_noise_widen import pending_photos

    seed, strength, enlarge, in_camera = SETS[kind]
    for i, name, im in pending_photos(seed, count, skip):
        rng = np.random.default_rng([seed, i])
        if enlarge:
            f = float(rng.uniform(*enlarge))
            small = grid_crop(im, int(round(SIDE / f)))
            im = np.clip(cv2.resize(small, (SIDE, SIDE), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
        im = grid_crop(im, SIDE)
        q = int(rng.integers(70, 81))
        s = 0.0
        if strength is None:
            ref, noisy = im, jpeg_round_trip(im, q)
        else:
            s = float(rng.uniform(*strength))
            cam = replace(sample_camera_params(np.random.default_rng([seed, i, 1]), noise_strength=max(s, 1e-9),
                                               jpeg=False, second_order=False), jpeg_quality=None)
            if s == 0.0:
                cam = replace(cam, shot=0.0, read=0.0)
            if kind in DIAGNOSTIC_SETS:
                cam = replace(cam, luma_nr=0.0)
            ref, _ = camera_pipeline(im, 7000 + i, replace(cam, shot=0.0, read=0.0), noise=False)
            shot, _ = camera_pipeline(im, 7000 + i, cam)
            q_cam = int(rng.integers(88, 98))
            noisy = jpeg_round_trip(jpeg_round_trip(shot, q_cam) if in_camera else shot, q)
        yield name, noisy, ref, q, s


def run_set(kind: str, count: int, cache: Path) -> dict:
    from engine.experts.default import build_registry
    from engine.experts.jpeg_restore import JpegQcpRestorer

    path = cache / f"{kind}.json"
    done = json.loads(path.read_text()) if path.is_file() else {}
    jpeg = next(e for e in build_registry().for_task("jpeg") if isinstance(e, JpegQcpRestorer))
    ffd = ffdnet_expert()
    for name, noisy, ref, q, s in cases(kind, count, done):
        row = measure_case(noisy, ref, q, jpeg, ffd)
        row["strength"] = s
        done[name] = row
        path.write_text(json.dumps(done))
        print(f"  {kind} {name} q{q} s{s:.2f} jpeg {row['jpeg']:+.2f} band {row['band']:.2f} still "
              f"{row['still']:.2f} after " + " ".join(f"{row[str(a)] - row['jpeg']:+.2f}" for a in AFTER_SIGMAS),
              file=sys.stderr, flush=True)
    return done


#: ``--alone``: FFDNet (chroma pass) on the file told these σ, in place of the JPEG stage.
ALONE_SIGMAS = (4.0, 6.0, 8.0)


def run_alone(kind: str, count: int, limit: int, cache: Path) -> None:
    """Adds ``alone<σ>`` (gain over the file, dB) to the first ``limit`` cached cases of the set."""
    from engine.experts.base import ExpertContext
    from training.metrics import psnr
    from _host import q8

    path = cache / f"{kind}.json"
    done = json.loads(path.read_text()) if path.is_file() else {}
    todo = [n for n in list(done)[:limit] if "alone6.0" not in done[n]]
    skip = {n: None for n in done if n not in todo}
    ffd = ffdnet_expert()
    for name, noisy, ref, _q, _s in cases(kind, count, skip):
        if name not in todo:
            continue
        for sg in ALONE_SIGMAS:
            out = ffd.run(noisy, ExpertContext(noise_sigma=np.float32(sg / 255)))
            done[name][f"alone{sg}"] = psnr(q8(out), ref) - done[name]["input"]
        path.write_text(json.dumps(done))
        print(f"  alone {kind} {name}: jpeg {done[name]['jpeg']:+.2f} " + " ".join(
            f"σ{sg:g} {done[name][f'alone{sg}']:+.2f}" for sg in ALONE_SIGMAS), file=sys.stderr, flush=True)


#: ``--prior-scale``: the JPEG stage with its camera-save priors told these multiples of their σ.
PRIOR_SCALES = (0.5, 0.75)


def run_prior_scale(kind: str, count: int, limit: int, cache: Path) -> None:
    """Writes ``<set>.prior.json``: for the first ``limit`` cached cases, the JPEG stage's gain over
    the file (dB) with its camera-save priors (``CAMERA_LUMA_SIGMA_75``, ``CAMERA_CHROMA_SIGMA_GAIN``)
    scaled by each of :data:`PRIOR_SCALES`."""
    from engine.analysis.jpeg_tables import STD_CHROMA, STD_LUMA, JpegQuantisation, JpegSource, ijg_table
    from engine.experts import jpeg_restore as jr
    from engine.experts.base import ExpertContext
    from engine.experts.default import build_registry
    from training.metrics import psnr
    from _host import q8

    cached = json.loads((cache / f"{kind}.json").read_text())
    path = cache / f"{kind}.prior.json"
    done = json.loads(path.read_text()) if path.is_file() else {}
    todo = [n for n in list(cached)[:limit] if n not in done]
    jpeg = next(e for e in build_registry().for_task("jpeg") if isinstance(e, jr.JpegQcpRestorer))
    luma, chroma = jr.CAMERA_LUMA_SIGMA_75, jr.CAMERA_CHROMA_SIGMA_GAIN
    for name, noisy, ref, q, _s in cases(kind, count, {n: None for n in cached if n not in todo}):
        if name not in todo:
            continue
        quant = JpegQuantisation((ijg_table(STD_LUMA, q), ijg_table(STD_CHROMA, q), ijg_table(STD_CHROMA, q)),
                                 ((2, 2), (1, 1), (1, 1)))
        row = {}
        try:
            for m in PRIOR_SCALES:
                jr.CAMERA_LUMA_SIGMA_75, jr.CAMERA_CHROMA_SIGMA_GAIN = luma * m, chroma * m
                out = jpeg.run(noisy, ExpertContext(jpeg=JpegSource(quant, noisy)))
                row[str(m)] = psnr(q8(out), ref) - cached[name]["input"]
        finally:
            jr.CAMERA_LUMA_SIGMA_75, jr.CAMERA_CHROMA_SIGMA_GAIN = luma, chroma
        done[name] = row
        path.write_text(json.dumps(done))
        print(f"  prior {kind} {name}: jpeg {cached[name]['jpeg']:+.2f} "
              + " ".join(f"x{m:g} {row[str(m)]:+.2f}" for m in PRIOR_SCALES), file=sys.stderr, flush=True)


def gain_at(row: dict, sigma: float) -> float:
    """The case's gain over the stage alone with FFDNet told ``sigma`` after it (linear in σ between
    the measured ones; 0 at σ 0)."""
    xs = (0.0,) + AFTER_SIGMAS
    ys = [0.0] + [row[str(s)] - row["jpeg"] for s in AFTER_SIGMAS]
    return float(np.interp(min(sigma, AFTER_SIGMAS[-1]), xs, ys))


def rule_sigma(feature: float, gain: float, offset: float) -> float:
    if not np.isfinite(feature):
        return 0.0
    return float(min(SIGMA_MAX, gain * max(feature - offset, 0.0)))


def evaluate(rows_clean, rows_noisy, sig) -> tuple[float, float, float, float, float]:
    """(noisy mean, noisy worst, clean mean, clean worst, share of clean fired-and-losing)."""
    gc = np.array([gain_at(r, sig(r)) for r in rows_clean])
    gn = np.array([gain_at(r, sig(r)) for r in rows_noisy])
    fired_losing = np.mean([(sig(r) > 0) and gain_at(r, sig(r)) < 0 for r in rows_clean])
    return gn.mean(), gn.min(), gc.mean(), gc.min(), float(fired_losing)


def fit(cache: Path, out: Path | None, with_diagnostic: bool = False) -> int:
    rows = {k: list(json.loads((cache / f"{k}.json").read_text()).values()) for k in SETS
            if (cache / f"{k}.json").is_file()}
    clean = [r for k in CLEAN_SETS for r in rows.get(k, [])]
    skip = CLEAN_SETS + (() if with_diagnostic else DIAGNOSTIC_SETS)
    noisy = [r for k in SETS if k not in skip for r in rows.get(k, [])]
    lines = [f"Machine: {machine()} (loaded: other engineers' jobs; `nice 10`, `OMP_NUM_THREADS=1`).", "",
             f"Cases: {len(clean)} clean re-saves, {len(noisy)} noisy camera JPEGs re-saved (q70–80, {SIDE} px).", "",
             "Per set: the JPEG stage's gain over the file, and what FFDNet after it adds at each σ "
             "(dB, mean / worst):", "",
             "| set | n | JPEG stage | " + " | ".join(f"+FFDNet σ {s:g}" for s in AFTER_SIGMAS) + " | band | still |",
             "|---|---|---|" + "---|" * len(AFTER_SIGMAS) + "---|---|"]
    for k, rs in rows.items():
        d = [np.array([r[str(s)] - r["jpeg"] for r in rs]) for s in AFTER_SIGMAS]
        st = np.array([r["still"] for r in rs])
        still = float(np.nanmedian(st)) if np.isfinite(st).any() else float("nan")
        lines.append(f"| {k} | {len(rs)} | {np.mean([r['jpeg'] for r in rs]):+.2f} | "
                     + " | ".join(f"{x.mean():+.2f} / {x.min():+.2f}" for x in d)
                     + f" | {np.median([r['band'] for r in rs]):.2f} | {still:.2f} |")
    cands = [("constant", c, 0.0, (lambda r, c=c: c)) for c in np.arange(0.0, SIGMA_MAX + 0.01, 0.25)]
    for feat in ("band", "still"):
        for g in (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0):
            for t in np.arange(0.0, 4.01, 0.1):
                cands.append((feat, g, t, (lambda r, f=feat, g=g, t=t: rule_sigma(r[f], g, t))))
    results = []
    for feat, g, t, sig in cands:
        nm, nw, cm, cw, fl = evaluate(clean, noisy, sig)
        ok = cm >= -1e-9 and cw >= -CLEAN_LOSS_DB and fl <= CLEAN_BUDGET
        results.append((ok, nm, nw, cm, cw, fl, feat, g, t))
    lines += ["", "Rules (σ_after = min(6, gain · max(feature − offset, 0)); constant: σ_after = gain), "
              "best noisy mean first; ok = clean mean ≥ 0, clean worst ≥ −0.1 dB, clean fired-and-losing ≤ 2 %:", "",
              "| rule | gain | offset | noisy mean | noisy worst | clean mean | clean worst | clean losing | ok |",
              "|---|---|---|---|---|---|---|---|---|"]
    ranked = sorted(results, key=lambda z: -z[1])
    shown = [z for z in ranked if z[0]][:8] + [z for z in ranked if not z[0]][:5]
    for ok, nm, nw, cm, cw, fl, feat, g, t in shown:
        lines.append(f"| {feat} | {g:g} | {t:.1f} | {nm:+.3f} | {nw:+.2f} | {cm:+.3f} | {cw:+.2f} | {fl:.1%} | "
                     f"{'yes' if ok else 'no'} |")
    lines += ["", "Instead of the stage (``--alone``, ``--prior-scale``, on the first cases of a set): "
              "change against the "
              "JPEG stage as shipped, dB, mean / worst (n):", "",
              "| set | " + " | ".join(f"FFDNet alone σ {a:g}" for a in ALONE_SIGMAS) + " | "
              + " | ".join(f"stage, priors × {m:g}" for m in PRIOR_SCALES) + " |",
              "|---|" + "---|" * (len(ALONE_SIGMAS) + len(PRIOR_SCALES))]
    for k, rs in rows.items():
        prior_path = cache / f"{k}.prior.json"
        pr = json.loads(prior_path.read_text()) if prior_path.is_file() else {}
        named = json.loads((cache / f"{k}.json").read_text())
        cells = []
        for a in ALONE_SIGMAS:
            d = np.array([r[f"alone{a}"] - r["jpeg"] for r in rs if f"alone{a}" in r])
            cells.append(f"{d.mean():+.2f} / {d.min():+.2f} ({len(d)})" if len(d) else "–")
        for m in PRIOR_SCALES:
            d = np.array([v[str(m)] - named[n]["jpeg"] for n, v in pr.items()])
            cells.append(f"{d.mean():+.2f} / {d.min():+.2f} ({len(d)})" if len(d) else "–")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    best = next((z for z in ranked if z[0]), None)
    if best:
        lines += ["", f"Chosen: {best[6]}, gain {best[7]:g}, offset {best[8]:.1f} (noisy mean {best[1]:+.3f} dB)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        out.write_text(text)
    return 0


def real_band(plan_files: list[Path], headroom: Path, cache: Path, gain: float, offset: float) -> list[str]:
    """Validation only: the ``band`` feature of the real PolyU crops whose plan kept only the JPEG
    stage, the σ the rule (``gain``, ``offset``) would tell, and its gain over the stage alone
    interpolated from ``real_noise_headroom.py``'s measurements (``headroom``: its cache, FFDNet after
    the stage at σ 2, 3, 4; linear from σ 0)."""
    from engine.experts import jpeg_restore as jr
    from engine.experts.base import ExpertContext
    from engine.experts.classical.jpeg_qcp import constraints, to_stored
    from engine.imageio import load_photo
    from real_noise_headroom import jpeg_only

    ffd = ffdnet_expert()
    done = json.loads(cache.read_text()) if cache.is_file() else {}
    for lq, _ in jpeg_only(plan_files):
        if lq.name in done:
            continue
        photo = load_photo(lq)
        img = np.ascontiguousarray(photo.pixels[..., :3], dtype=np.float32)
        quant = photo.jpeg
        est = jr.luma_from(ffd.run_plain(img, ExpertContext(noise_sigma=np.float32(jr.luma_sigma_255(quant) / 255))),
                           ffd.run_plain(img, ExpertContext(noise_sigma=np.float32(jr.chroma_sigma_255(quant) / 255))))
        cons = constraints(to_stored(img, quant.orientation), quant)
        done[lq.name] = band_feature(to_stored(est, quant.orientation), cons)
        cache.write_text(json.dumps(done))
    head = {}
    for line in headroom.read_text().splitlines():
        d = json.loads(line)
        head[d["name"]] = d
    out = ["| crop | band | σ told | gain over the JPEG stage (interpolated) | best measured |",
           "|---|---|---|---|---|"]
    gains = []
    for name, band in sorted(done.items(), key=lambda z: z[1]):
        sig = rule_sigma(band, gain, offset)
        g = float("nan")
        if name in head:
            xs = [0.0] + [float(k) for k in head[name]["after"]]
            ys = [0.0] + [v - head[name]["jpeg"] for v in head[name]["after"].values()]
            order = np.argsort(xs)
            g = float(np.interp(sig, np.array(xs)[order], np.array(ys)[order]))
            gains.append(g)
        best = max(head[name]["after"].values()) - head[name]["jpeg"] if name in head else float("nan")
        out.append(f"| {name} | {band:.2f} | {sig:.2f} | {g:+.2f} | {best:+.2f} |")
    if gains:
        out.append(f"| **mean (n={len(gains)})** | | | {np.mean(gains):+.3f} (worst {np.min(gains):+.2f}; "
                   f"{np.mean(gains) * len(gains) / 60:+.3f} on the 60-crop mean) | |")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--with-diagnostic", action="store_true", help="--fit with DIAGNOSTIC_SETS among the noisy cases")
    ap.add_argument("--prior-scale", type=int, default=0, help="the JPEG stage with PRIOR_SCALES x its priors' σ "
                                                                 "on the first N cached cases of each set")
    ap.add_argument("--alone", type=int, default=0, help="measure FFDNet alone (ALONE_SIGMAS) on the first N "
                                                           "cached cases of each set")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--real", nargs="*", type=Path, help="validation: the plan files (JSON lines) of the real crops")
    ap.add_argument("--headroom", type=Path, help="with --real: real_noise_headroom.py's cache")
    ap.add_argument("--rule", default="8,3.8", help="with --real: gain,offset of the band rule")
    args = ap.parse_args(argv)
    if args.real:
        g, t = (float(v) for v in args.rule.split(","))
        args.cache.mkdir(parents=True, exist_ok=True)
        text = "\n".join(real_band(args.real, args.headroom, args.cache / "real_band.json", g, t)) + "\n"
        print(text)
        return 0
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.fit:
        return fit(args.cache, args.out, args.with_diagnostic)
    if args.prior_scale:
        for kind in args.sets.split(","):
            run_prior_scale(kind, args.count, args.prior_scale, args.cache)
        return 0
    if args.alone:
        for kind in args.sets.split(","):
            run_alone(kind, args.count, args.alone, args.cache)
        return 0
    for kind in args.sets.split(","):
        run_set(kind, args.count, args.cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
