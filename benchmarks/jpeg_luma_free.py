"""When may the JPEG stage leave a camera save's luma unprojected? Features, gains and a small
logistic classifier fitted on training photos; the real PolyU crops measured with it.

Background (``jpeg-noise-widen.md``): on a camera's save (IJG quality 60–89) the JPEG stage's prior
(FFDNet) removes sensor noise the file still holds, and the exact luma projection puts it back.
Leaving the luma unprojected helps a noisy file and costs a clean re-save (texture the prior
smooths is put back by the projection). This script measures, per case, the gain of the shipped
projection (luma exact, chroma widened by 1.0 x the file's noise) and of the same with the luma
intervals widened by k x the file's luma noise (k in :data:`LUMA_K`, ``inf`` = luma free), and the
features :func:`luma_noise_features` reads off the file and the prior's
estimate. It then fits a logistic classifier on them
(L2-regularised, numpy Newton steps) to say where the luma is better left free, and sets the
threshold so that at most :data:`CLEAN_BUDGET` of the clean re-saves are flagged and none flagged
loses more than :data:`CLEAN_LOSS_DB`.

Training cases (``../shared/data/clean`` training split, centre ``--side`` px, JPEG at an IJG
quality drawn from 60–89 with 4:2:0 chroma):

- ``clean``: the photo re-saved (reference: the photo);
- ``noisy``: through the camera pipeline (``engine.degrade.camera``, strength U(0.05, 0.6), no
  JPEG of its own), then saved (reference: the same camera without noise);
- ``noisy2``: as ``noisy`` on the photo halved first (area average: a smoother reference);
- ``clean3`` / ``noisy3``: as ``clean`` / ``noisy`` on a centre crop enlarged U(2, 3) times
  (content as soft per pixel as a crop of a full-resolution DSLR photo);
- ``jpegref`` (diagnostic, not fitted on): as ``noisy`` with the reference itself re-saved at the
  case's quality, the way the PolyU ground truth is a q75 JPEG;
- ``clean6`` / ``noisy6`` and ``clean6b`` / ``noisy6b`` (other seeds): as ``clean3`` / ``noisy3``
  enlarged U(4, 6) times;
- ``coarse`` (diagnostic, not fitted on): as ``noisy`` with coarser, stronger grain (in-camera luma
  noise reduction σ U(1.5, 2.5) px, strength U(0.4, 0.9)).

The halved, enlarged, ``jpegref``, ``coarse`` and 4–6x sets were added after seeing that the real crops gain from a
loosened luma (measured with ``--real``) while the first two sets do not: an attempt to find a
training population in that regime. Nothing else was chosen after seeing validation numbers.

``--real``: the same measurements on the 60 PolyU crops (validation only; never fitted on).

Run: ``nice -n 10 OMP_NUM_THREADS=1 python benchmarks/jpeg_luma_free.py --cache-dir DIR
[--count 60] [--real] [--out benchmarks/results/jpeg-luma-free.md]`` (resumable per case).
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

from real_noise import PAIRS, ffdnet_expert, grid_crop  # noqa: E402

LUMA_K = (0.0, 1.0, 2.0, 4.0, float("inf"))
CLEAN_BUDGET = 0.02
CLEAN_LOSS_DB = 0.1
SETS = {"clean": (511, 0.0, 0.0), "noisy": (512, 0.05, 0.6), "noisy2": (514, 0.05, 0.6)}
#: Sets whose photos are first halved (area average), which averages away most of a photo's own
#: grain and JPEG artefacts, so that the reference is as smooth as a mean of many frames.
HALVED = ("noisy2",)
SETS.update({"clean3": (515, 0.0, 0.0), "noisy3": (516, 0.05, 0.6)})
#: Sets whose photos are a centre crop enlarged U(2, 3) times (bicubic): content as soft per pixel
#: as a crop of a full-resolution DSLR photo (lens and anti-aliasing filter), noise still per pixel.
ENLARGED = {"clean3": (2.0, 3.0), "noisy3": (2.0, 3.0)}
#: Enlarged U(4, 6) times (content smoother still, as smooth as the real DSLR crops' features read).
SETS.update({"clean6": (519, 0.0, 0.0), "noisy6": (520, 0.05, 0.6), "clean6b": (521, 0.0, 0.0),
             "noisy6b": (522, 0.05, 0.6)})
ENLARGED.update({k: (4.0, 6.0) for k in ("clean6", "noisy6", "clean6b", "noisy6b")})
#: A diagnostic set, never fitted on: as ``noisy`` but the reference is itself re-saved at the
#: case's quality, the way the PolyU crops' ground truth (a mean of frames) is a q75 JPEG.
SETS["jpegref"] = (517, 0.05, 0.6)
#: A diagnostic set, never fitted on: as ``noisy`` with coarser grain (the in-camera luma noise
#: reduction at σ U(1.5, 2.5) px instead of the pipeline's own draw) and stronger noise.
SETS["coarse"] = (518, 0.4, 0.9)
FITTED = ("clean", "noisy", "noisy2", "clean3", "noisy3", "clean6", "noisy6", "clean6b", "noisy6b")


FEATURE_BANDS = ((1, 2), (3, 5), (6, 14))
#: Quantile bins of blocks by the estimate's AC energy (flattest first) for the luma features;
#: the chroma features use the first bin only.
FEATURE_BINS = ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75))


def luma_noise_features(estimate_stored: np.ndarray, cons, quant) -> np.ndarray:
    """What a camera save holds besides its content, in quantisation steps: for every
    :data:`FEATURE_BINS` bin of luma blocks (by the estimate's AC energy) and every
    :data:`FEATURE_BANDS` group of frequencies, log of the RMS of (stored coefficient − the
    estimate's) divided by the table's step; then the same for the chroma's flattest bin (Cb and Cr
    averaged). ``estimate_stored``: the prior's estimate, float32 H x W x 3 in [0, 1], the file's
    stored orientation; ``cons``: the file's constraints (:func:`constraints`). Returns 12 floats
    (9 luma, 3 chroma; −7 where a bin has fewer than 16 constrained blocks or the file is grey).
    The file's constraints must be exact (not :func:`widened`): their centres are the stored values."""
    from engine.experts.classical.jpeg_qcp import _planes, _ycc255
    from engine.experts.classical.jpeg_quantisation import block_dct

    u, v = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    radius = u + v
    masks = [(radius >= lo) & (radius <= hi) for lo, hi in FEATURE_BANDS]
    planes = _planes(_ycc255(estimate_stored), cons)
    feats: list[float] = []
    chroma = np.zeros((2, len(masks)))
    for c, plane in enumerate(planes):
        lo, hi, free = cons.low[c], cons.high[c], cons.free[c]
        a, b = lo.shape[:2]
        coefs = block_dct(np.ascontiguousarray(plane[:a * 8, :b * 8]))
        ok = ~free
        ac = (coefs ** 2).sum(axis=(2, 3)) - coefs[:, :, 0, 0] ** 2
        rel = ((lo + hi) * np.float32(0.5) - coefs) / np.asarray(quant.tables[c], np.float32)
        bins = FEATURE_BINS if c == 0 else FEATURE_BINS[:1]
        for q0, q1 in bins:
            if ok.sum() < 16:
                vals = [-7.0] * len(masks)
            else:
                e0, e1 = np.quantile(ac[ok], [q0, q1])
                sel = ok & (ac >= e0) & (ac <= e1)
                rms = np.sqrt((rel[sel].astype(np.float64) ** 2).mean(axis=0))
                vals = [float(np.log(max(rms[m].mean(), 1e-3))) for m in masks]
            if c == 0:
                feats += vals
            else:
                chroma[c - 1] = vals
    feats += list(chroma.mean(axis=0)) if cons.colour else [-7.0] * len(masks)
    return np.asarray(feats, np.float64)


def _gains(noisy, ref, quant, noise, cons_source=None) -> dict:
    from engine.experts.base import ExpertContext
    from engine.experts.classical.jpeg_qcp import band_noise_255, constraints, project, widened
    from engine.experts.jpeg_restore import chroma_sigma_255, luma_from, luma_sigma_255
    from training.metrics import psnr
    from _host import q8

    base = psnr(q8(noisy), ref)
    est = luma_from(noise.run_plain(noisy, ExpertContext(noise_sigma=np.float32(luma_sigma_255(quant) / 255))),
                    noise.run_plain(noisy, ExpertContext(noise_sigma=np.float32(chroma_sigma_255(quant) / 255))))
    cons = constraints(noisy, quant)
    band = band_noise_255(est, cons)
    row = {"input": base, "features": [float(f) for f in luma_noise_features(est, cons, quant)]}
    for kl in LUMA_K:
        margins = [np.full((8, 8), 1e6, np.float32) if not np.isfinite(kl) else np.float32(kl) * band[0],
                   band[1], band[2]]
        row[str(kl)] = psnr(q8(np.clip(project(est, widened(cons, margins)), 0, 1)), ref) - base
    return row


def run_cases(kind: str, count: int, cache: Path, side: int) -> dict:
    import cv2

    from engine.analysis.jpeg_tables import STD_CHROMA, STD_LUMA, JpegQuantisation, ijg_table
    from engine.degrade.camera import camera_pipeline, jpeg_round_trip, sample_camera_params
    from jpeg_noise_widen import pending_photos

    seed, lo_s, hi_s = SETS[kind]
    noise = ffdnet_expert()
    done = json.loads(cache.read_text()) if cache.is_file() else {}
    for i, name, im in pending_photos(seed, count, done):
        if kind in HALVED:
            im = cv2.resize(im, (im.shape[1] // 2, im.shape[0] // 2), interpolation=cv2.INTER_AREA)
        if kind in ENLARGED:
            f = float(np.random.default_rng([seed, i, 2]).uniform(*ENLARGED[kind]))
            small = grid_crop(im, int(round(side / f)))
            im = np.clip(cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
        im = grid_crop(im, side)
        case_rng = np.random.default_rng([seed, i])
        q = int(case_rng.integers(60, 90))
        strength = 0.0
        if kind.startswith("clean"):
            ref, noisy = im, jpeg_round_trip(im, q)
        else:
            strength = float(case_rng.uniform(lo_s, hi_s))
            cam = replace(sample_camera_params(np.random.default_rng([seed, i, 1]), noise_strength=strength,
                                               jpeg=False, second_order=False), jpeg_quality=None)
            if kind == "coarse":
                cam = replace(cam, luma_nr=float(np.random.default_rng([seed, i, 3]).uniform(1.5, 2.5)))
            ref, _ = camera_pipeline(im, 5000 + i, replace(cam, shot=0.0, read=0.0), noise=False)
            noisy = jpeg_round_trip(camera_pipeline(im, 5000 + i, cam)[0], q)
            if kind == "jpegref":
                ref = jpeg_round_trip(ref, q)
        quant = JpegQuantisation((ijg_table(STD_LUMA, q), ijg_table(STD_CHROMA, q), ijg_table(STD_CHROMA, q)),
                                 ((2, 2), (1, 1), (1, 1)))
        row = _gains(noisy, ref, quant, noise)
        row.update(quality=q, strength=strength)
        done[name] = row
        cache.write_text(json.dumps(done))
        print(f"  {kind} {name} q{q} s{strength:.2f} exact {row['0.0']:+.2f} free {row['inf']:+.2f}",
              file=sys.stderr, flush=True)
    return done


def run_real(cache: Path, names: list[str] | None = None) -> dict:
    from engine.imageio import load_photo
    from training.data import load_uint8, to_float

    noise = ffdnet_expert()
    folder = PAIRS / "noise_real_polyu_crops"
    done = json.loads(cache.read_text()) if cache.is_file() else {}
    for lq in sorted((folder / "lq").iterdir()):
        if lq.name in done or (names and lq.name not in names):
            continue
        photo = load_photo(lq)
        ref = to_float(load_uint8(folder / "gt" / lq.name))
        row = _gains(photo.pixels, ref, photo.jpeg, noise)
        done[lq.name] = row
        cache.write_text(json.dumps(done))
        print(f"  real {lq.name} exact {row['0.0']:+.2f} free {row['inf']:+.2f}", file=sys.stderr, flush=True)
    return done


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, steps: int = 50) -> np.ndarray:
    """Weights (bias last) of an L2-regularised logistic regression on standardised ``x``, by Newton steps."""
    a = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(a.shape[1])
    reg = np.full(a.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-a @ w))
        g = a.T @ (p - y) + reg * w
        h = (a * (p * (1 - p))[:, None]).T @ a + np.diag(reg) + 1e-9 * np.eye(a.shape[1])
        w -= np.linalg.solve(h, g)
    return w


def _rows(path: Path) -> list[dict]:
    return list(json.loads(path.read_text()).values()) if path.is_file() else []


def _choose(x_clean, loss_clean, x_noisy, gain_noisy, l2: float):
    """Standardisation, weights and threshold fitted on the given training cases: label = the
    loosened luma gains over the shipped projection (``gain_noisy`` > 0 for noisy cases, 0 for
    clean); threshold = the smallest that flags at most :data:`CLEAN_BUDGET` of the clean cases and
    no clean case losing more than :data:`CLEAN_LOSS_DB`."""
    x = np.vstack([x_clean, x_noisy])
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    y = np.concatenate([np.zeros(len(x_clean)), (gain_noisy > 0.0).astype(float)])
    w = fit_logistic((x - mean) / scale, y, l2)
    score = lambda z: ((z - mean) / scale) @ w[:-1] + w[-1]  # noqa: E731
    sc = score(x_clean)
    t = float(np.quantile(sc, 1.0 - CLEAN_BUDGET)) if len(sc) else 0.0
    bad = sc[loss_clean < -CLEAN_LOSS_DB]
    if len(bad):
        t = max(t, float(bad.max()))
    return mean, scale, w, t + 1e-6, score


def fit(cache: Path, out: Path | None, k: str, l2: float) -> int:
    from _host import cpu_model, report

    clean = [r for kind in FITTED if kind.startswith("clean") for r in _rows(cache / f"{kind}.json")]
    noisy = [r for kind in FITTED if kind.startswith("noisy") for r in _rows(cache / f"{kind}.json")]
    xc = np.array([r["features"] for r in clean])
    xn = np.array([r["features"] for r in noisy])
    lc = np.array([r[k] - r["0.0"] for r in clean])
    gn = np.array([r[k] - r["0.0"] for r in noisy])
    # 5-fold cross-validation of the whole fit (weights and threshold)
    rng = np.random.default_rng(0)
    fc, fn = rng.integers(0, 5, len(xc)), rng.integers(0, 5, len(xn))
    cv_flag_c, cv_loss_c, cv_gain_n, cv_flag_n = [], [], [], []
    for f in range(5):
        *_, t, score = _choose(xc[fc != f], lc[fc != f], xn[fn != f], gn[fn != f], l2)
        hc, hn = score(xc[fc == f]) > t, score(xn[fn == f]) > t
        cv_flag_c += list(hc)
        cv_loss_c += list(np.where(hc, lc[fc == f], 0.0))
        cv_flag_n += list(hn)
        cv_gain_n += list(np.where(hn, gn[fn == f], 0.0))
    mean, scale, w, t, score = _choose(xc, lc, xn, gn, l2)
    lines = [f"Machine: {cpu_model()}, loaded (other engineers' jobs); `nice 10`, `OMP_NUM_THREADS=1`.", "",
             f"Training: {len(clean)} clean re-saves and {len(noisy)} camera-pipeline JPEGs (q60–89, 256 px). "
             f"Action when flagged: luma intervals widened by k = {k} x the file's luma noise (inf: luma free), "
             "chroma as shipped (1.0 x). Gains in dB against the shipped projection (luma exact).", "",
             "| luma k | clean mean / worst | noisy mean / best / worst | noisy share better |",
             "|---|---|---|---|"]
    for kk in LUMA_K[1:]:
        a = np.array([r[str(kk)] - r["0.0"] for r in clean])
        b = np.array([r[str(kk)] - r["0.0"] for r in noisy])
        lines.append(f"| {kk} | {a.mean():+.3f} / {a.min():+.2f} | {b.mean():+.3f} / {b.max():+.2f} / {b.min():+.2f} "
                     f"| {np.mean(b > 0):.0%} |")
    cf, nf = np.array(cv_flag_c), np.array(cv_flag_n)
    flagged_n = score(xn) > t
    lines += ["", f"5-fold cross-validation (weights and threshold refitted per fold, l2 {l2}): clean flagged "
              f"{cf.sum()} of {len(cf)} ({cf.mean():.1%}), worst clean change {min(cv_loss_c):+.3f} dB; noisy flagged "
              f"{nf.sum()} of {len(nf)}, mean change over all noisy {np.mean(cv_gain_n):+.3f} dB, "
              f"worst {min(cv_gain_n):+.3f}.", "",
              f"Fitted on all: threshold {t:.4f}; clean flagged {(score(xc) > t).sum()}, noisy flagged "
              f"{flagged_n.sum()} (their mean change {gn[flagged_n].mean() if flagged_n.any() else 0:+.3f}).", "",
              "```", f"LUMA_FREE_K = float({k!r})", f"FEATURE_MEAN = np.array({np.round(mean, 4).tolist()})",
              f"FEATURE_SCALE = np.array({np.round(scale, 4).tolist()})",
              f"FEATURE_WEIGHTS = np.array({np.round(w[:-1], 4).tolist()})", f"FEATURE_BIAS = {w[-1]:.4f}",
              f"LUMA_FREE_THRESHOLD = {t:.4f}", "```"]
    data, names = _real(cache)
    if names:
        xr = np.array([data[n]["features"] for n in names])
        sr = score(xr)
        gr = np.array([data[n][k] - data[n]["0.0"] for n in names])
        hit = sr > t
        lines += ["", "Real PolyU crops (validation, measured only; JPEG stage alone, not the default plan): "
                  f"flagged {hit.sum()} of {len(names)}; change on the flagged "
                  f"{gr[hit].mean() if hit.any() else 0:+.3f} dB "
                  f"mean, worst {gr[hit].min() if hit.any() else 0:+.3f}; would-be change if all were loosened: "
                  f"mean {gr.mean():+.3f}, worst {gr.min():+.3f}.", "",
                  "| crop | exact gain | loosened gain | score |", "|---|---|---|---|"]
        for n, s_ in sorted(zip(names, sr, strict=True), key=lambda z: -z[1]):
            mark = " flagged" if s_ > t else ""
            lines.append(f"| {n} | {data[n]['0.0']:+.2f} | {data[n][k]:+.2f} | {s_:+.2f}{mark} |")
    lines += _diagnostics(cache, clean + noisy, k)
    report("\n".join(lines), out)
    return 0


def _real(cache: Path) -> tuple[dict, list[str]]:
    """The real crops' measurements and the names to report: those listed in ``r/names.txt`` (the
    crops whose default plan reaches the JPEG stage), else all measured."""
    path = cache / "r" / "real.json"
    real = json.loads(path.read_text()) if path.is_file() else {}
    listed = cache / "r" / "names.txt"
    names = sorted(real)
    if listed.is_file():
        names = sorted(n for n in listed.read_text().split() if n in real)
    return real, names


def _diagnostics(cache: Path, training: list[dict], k: str) -> list[str]:
    """Per training set, what loosening the luma changes; for the real crops the JPEG stage reaches
    (``--real-names``, else all measured), the same change against that of their 8 nearest
    training cases in standardised feature space."""
    lines = ["", f"Per set (luma k = {k} against exact, dB): mean / worst / share better.", "",
             "| set | n | exact gain | change |", "|---|---|---|---|"]
    for kind in SETS:
        rows = _rows(cache / f"{kind}.json")
        if rows:
            g = np.array([r[k] - r["0.0"] for r in rows])
            lines.append(f"| {kind}{'' if kind in FITTED else ' (not fitted on)'} | {len(rows)} | "
                         f"{np.mean([r['0.0'] for r in rows]):+.3f} | {g.mean():+.3f} / {g.min():+.2f} / "
                         f"{np.mean(g > 0):.0%} |")
    real, names = _real(cache)
    if not names:
        return lines
    x = np.array([r["features"] for r in training])
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / scale
    g = np.array([r[k] - r["0.0"] for r in training])
    near, dist = [], []
    for n in names:
        d = np.sqrt((((np.array(real[n]["features"]) - mean) / scale - z) ** 2).sum(axis=1))
        i = np.argsort(d)[:8]
        near.append(g[i].mean())
        dist.append(d[i].mean())
    own = []
    for j in range(len(z)):
        d = np.sqrt(((z - z[j]) ** 2).sum(axis=1))
        d[j] = np.inf
        own.append(np.sort(d)[:8].mean())
    gr = np.array([real[n][k] - real[n]["0.0"] for n in names])
    lines += ["", f"Real crops the JPEG stage reaches ({len(names)}; validation, measured only): exact "
              f"{np.mean([real[n]['0.0'] for n in names]):+.3f} dB, loosened "
              f"{np.mean([real[n][k] for n in names]):+.3f}; "
              f"change {gr.mean():+.3f} mean, worst {gr.min():+.3f}, better on {np.mean(gr > 0):.0%}. "
              f"Their 8 nearest training cases change by {np.mean(near):+.3f} on average; mean distance to them "
              f"{np.mean(dist):.2f} (a training case's to its own 8 nearest: {np.mean(own):.2f})."]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", type=Path, required=True)
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--sets", nargs="*", default=list(SETS), help="training sets to compute (none: only --real/--fit)")
    ap.add_argument("--count2", type=int, default=40, help="cases per other set")
    ap.add_argument("--real", action="store_true")
    ap.add_argument("--real-names", type=Path, help="a file listing the crops to measure (one a line)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--fit", action="store_true", help="fit and report from the caches")
    ap.add_argument("--k", default="inf", help="the luma widening to fit for (a LUMA_K value)")
    ap.add_argument("--l2", type=float, default=1.0)
    args = ap.parse_args(argv)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    for kind in args.sets:
        count = args.count if kind in ("clean", "noisy") else args.count2
        run_cases(kind, count, args.cache_dir / f"{kind}.json", args.side)
    if args.real:
        names = args.real_names.read_text().split() if args.real_names else None
        run_real(args.cache_dir / "real.json", names)
    if args.fit:
        return fit(args.cache_dir, args.out, args.k, args.l2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
