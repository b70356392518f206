"""Does the spatial coherence of a JPEG's quantised AC coefficients tell faint sensor grain from clean
smooth content? (issue 11; ``jpeg-grain-coherence.md``)

Four earlier readings of a camera JPEG (the DCT band noise against the stage's prior, the learned
analyser, the hand-made noise index, the non-zero shares of the quantised bands) did not separate the
weak grain of the real PolyU crops from clean, smooth (enlarged) content re-saved at q75. This script
tries a new one. Smooth content makes low-frequency AC coefficients that vary smoothly from block to
block: neighbouring blocks' (0,1), (1,0), (1,1)… agree in sign and size. Sensor grain makes non-zero
quantised coefficients whose signs are independent from block to block.

Per case: :func:`engine.analysis.jpeg_grain.grain_features` (the coefficient coherence per frequency group,
the quiet-block readings, the grain σ implied by the non-zero shares at the table's steps, the analysis'
still-area readings, the quality), read on the decoded re-save with the IJG tables of its quality.

Training cases (``../shared/data/clean`` training split; up to 512 px; final save IJG quality U{60..89},
4:2:0, the qualities a camera's save is read as):
- negatives: ``clean`` (the photo, its centre ≤ 512 px, re-saved), ``clean_big`` (its smoothest window
  enlarged log-U(2, 10) times to 512 px, as ``real_noise_learned.make_cases`` does), ``cleancam`` /
  ``cleancam_big`` (``engine.degrade.camera`` without noise, in-camera JPEG U{88..97}, re-saved);
- positives: ``noisy`` / ``noisy_big`` (the camera with noise strength U(0.15, 0.7), in-camera luma noise
  reduction as the pipeline draws it but off for half the cases), ``raw_big`` (as ``noisy_raw_big`` of
  ``jpeg_after_sigma.py``: strength U(0.2, 0.6), no in-camera luma noise reduction).

Phases:
- ``--photos N``: the cases (resumable, one ``.npz`` per photo); ``--shipped MIN``: the shipped analysis'
  noise verdict on every case (``shipped.json``; the rule only changes the cases it calls clean);
- ``--separate``: per statistic, each kind's median and each noisy kind's detection at the threshold that keeps
  every clean kind at ≤ 2 % (both directions tried);
- ``--fit-detector PATH``: the 2-layer network of :mod:`engine.analysis.jpeg_grain` fitted on the FIT photos'
  cases the shipped analysis calls clean, its threshold the highest score of the CALIBRATE photos' negatives;
- ``--gains MIN`` / ``--report MODEL``: on the CALIBRATE and CHECK cases it fires on, the noise stage (FFDNet told
  the analysis' σ) and FFDNet σ 8 against the shipped JPEG stage, and the detection and gain tables.

No ground truth of a real photo is read here (``polyu_cli.py`` validates).

Run: ``nice -n 10 OMP_NUM_THREADS=1 python benchmarks/jpeg_grain_coherence.py --cache DIR --photos 460 --shipped 30``,
then ``--separate``, ``--fit-detector models/jpeg-grain-detector.json``, ``--gains 30 --report MODEL``
(``benchmarks/results/jpeg-grain-coherence.md``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SIDE = 512
SEED = 2026
KINDS = ("clean", "clean_big", "cleancam", "cleancam_big", "noisy", "noisy_big", "raw_big")
NEGATIVE = ("clean", "clean_big", "cleancam", "cleancam_big")
POSITIVE = ("noisy", "noisy_big", "raw_big")
QUALITIES = (60, 90)
BIG = (2.0, 10.0)
FP_BUDGET = 0.02

from engine.analysis.jpeg_grain import coherence_features, still_features  # noqa: E402


def smoothest_window(photo: np.ndarray, s: int) -> tuple[int, int]:
    from real_noise_learned import smoothest_window as sw

    return sw(photo, s)


def make_cases(index: int, photo: np.ndarray) -> dict[str, np.ndarray]:
    """The kinds of one training photo: ``<kind>`` (the decoded re-save, float32 RGB in [0, 1]),
    ``ref_<kind>`` (its clean reference) and ``quality`` (the re-save's IJG quality per kind)."""
    import cv2

    from engine.degrade.camera import camera_pipeline, jpeg_round_trip, sample_camera_params

    rng = np.random.default_rng([SEED, index])
    f = float(np.exp(rng.uniform(np.log(BIG[0]), np.log(BIG[1]))))
    h, w = photo.shape[:2]
    s = max(8, int(round(SIDE / f)))
    y0, x0 = smoothest_window(photo, min(s, h, w))
    big = np.clip(cv2.resize(photo[y0:y0 + s, x0:x0 + s], (SIDE, SIDE), interpolation=cv2.INTER_CUBIC), 0, 1)
    ny, nx = min(h, SIDE) // 8 * 8, min(w, SIDE) // 8 * 8
    y0, x0 = (h - ny) // 2 // 8 * 8, (w - nx) // 2 // 8 * 8
    native = np.ascontiguousarray(photo[y0:y0 + ny, x0:x0 + nx])
    out: dict[str, np.ndarray] = {}
    qs = []
    for j, kind in enumerate(KINDS):
        im = big if kind.endswith("_big") else native
        q = int(rng.integers(*QUALITIES))
        qs.append(q)
        if kind in ("clean", "clean_big"):
            out[kind], out[f"ref_{kind}"] = jpeg_round_trip(im, q), im
            continue
        strength = {"noisy": (0.15, 0.7), "noisy_big": (0.15, 0.7), "raw_big": (0.2, 0.6)}.get(kind)
        st = float(rng.uniform(*strength)) if strength else 0.0
        cam = replace(sample_camera_params(np.random.default_rng([SEED, index, j]), noise_strength=max(st, 1e-9),
                                           jpeg=False, second_order=False), jpeg_quality=None)
        if st == 0.0:
            cam = replace(cam, shot=0.0, read=0.0)
        elif kind == "raw_big" or rng.random() < 0.5:
            cam = replace(cam, luma_nr=0.0)
        seed = 11000 + index * 8 + j
        shot, _ = camera_pipeline(im, seed, cam, noise=st > 0)
        out[kind] = jpeg_round_trip(jpeg_round_trip(shot, int(rng.integers(88, 98))), q)
        out[f"ref_{kind}"] = camera_pipeline(im, seed, replace(cam, shot=0.0, read=0.0), noise=False)[0]
    out["quality"] = np.array(qs)
    return out


def u8(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def build(cache: Path, photos: int) -> None:
    """Makes (resumably) ``cache/NNNN.npz`` per training photo: the cases and references as uint8."""
    from _host import shuffled_training_photos
    from training.data import load_uint8, to_float

    cache.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(shuffled_training_photos(photos, SEED)):
        path = cache / f"{i:04d}.npz"
        if path.is_file():
            continue
        cases = make_cases(i, to_float(load_uint8(p)))
        arrays = {k: u8(v) for k, v in cases.items() if k != "quality"}
        np.savez_compressed(path, name=p.name, quality=cases["quality"], **arrays)
        print(f"  {i} {p.name}", file=sys.stderr, flush=True)


def load_features(cache: Path) -> tuple[list[dict], list[str]]:
    """Per case ``{"photo", "kind", "quality", feature...}``, features cached in ``features.json``."""
    import json

    from engine.analysis.jpeg_tables import STD_LUMA, ijg_table

    fpath = cache / "features3.json"
    done = json.loads(fpath.read_text()) if fpath.is_file() else {}
    rows = []
    for path in sorted(cache.glob("[0-9]*.npz")):
        if path.stem not in done:
            d = np.load(path)
            done[path.stem] = {}
            for k, kind in enumerate(KINDS):
                q = int(d["quality"][k])
                im = d[kind].astype(np.float32) / 255.0
                feats = coherence_features(im, ijg_table(STD_LUMA, q)) | still_features(im, q)
                done[path.stem][kind] = {"quality": q, **feats}
            fpath.write_text(json.dumps(done))
        for kind, row in done[path.stem].items():
            rows.append({"photo": int(path.stem), "kind": kind, **row})
    names = [k for k in rows[0] if k not in ("photo", "kind", "quality", "flat_n")] if rows else []
    return rows, names


def separation(rows: list[dict], names: list[str]) -> str:
    lines = ["| feature | direction | threshold | " + " | ".join(f"{k} (median)" for k in KINDS)
             + " | " + " | ".join(f"{k} found" for k in POSITIVE) + " |",
             "|---|---|---|" + "---|" * (len(KINDS) + len(POSITIVE))]
    for f in names:
        vals = {k: np.array([r[f] for r in rows if r["kind"] == k], np.float64) for k in KINDS}
        neg = np.concatenate([np.nan_to_num(vals[k], nan=np.nan) for k in NEGATIVE])
        best = None
        for direction in (1, -1):
            sneg = direction * neg[np.isfinite(neg)]
            # the threshold every negative kind keeps ≤ FP_BUDGET above (strict)
            t = max(np.quantile(direction * vals[k][np.isfinite(vals[k])], 1 - FP_BUDGET, method="higher")
                    for k in NEGATIVE if np.isfinite(vals[k]).any()) if sneg.size else np.inf
            found = {k: float(np.mean(np.nan_to_num(direction * vals[k], nan=-np.inf) > t)) for k in POSITIVE}
            if best is None or sum(found.values()) > sum(best[2].values()):
                best = (direction, t * direction, found)
        d, t, found = best
        lines.append(f"| {f} | {'>' if d > 0 else '<'} | {t:.3f} | "
                     + " | ".join(f"{np.nanmedian(vals[k]):.3f}" for k in KINDS) + " | "
                     + " | ".join(f"{100 * found[k]:.0f} %" for k in POSITIVE) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--photos", type=int, default=0)
    ap.add_argument("--separate", action="store_true")
    ap.add_argument("--shipped", type=float, default=0.0, help="minutes of the shipped analysis on every case")
    ap.add_argument("--fit-detector", type=Path, default=None, help="write the fitted detector's JSON here")
    ap.add_argument("--gains", type=float, default=0.0,
                    help="minutes of gain measurements on the fired CALIBRATE and CHECK cases")
    ap.add_argument("--report", type=Path, default=None, help="the detector whose tables to print")
    args = ap.parse_args(argv)
    if args.photos:
        build(args.cache, args.photos)
    if args.shipped:
        run_shipped(args.cache, lambda r: True, args.shipped)
    if args.fit_detector:
        m = fit_detector(args.cache, args.fit_detector)
        print(f"threshold {m['threshold']:.3f}; {m['fitted']}")
    if args.gains or args.report:
        import json

        model = args.report or ROOT / "models" / "jpeg-grain-detector.json"
        rows = scored(args.cache, model)
        keys = {f"{r['photo']:04d}/{r['kind']}" for r in rows if r["fires"] and r["split"] != "fit"}
        if args.gains:
            run_gains(args.cache, lambda r: f"{r['photo']:04d}/{r['kind']}" in keys, args.gains)
        gpath = args.cache / "gains.json"
        gains = json.loads(gpath.read_text()) if gpath.is_file() else {}
        print(detection_table(rows))
        print()
        print(gains_table(rows, gains))
    if args.separate:
        rows, names = load_features(args.cache)
        print(f"{len(rows)} cases, {len({r['photo'] for r in rows})} photos")
        print(separation(rows, names))
    return 0



def measure_gains(noisy: np.ndarray, ref: np.ndarray, quality: int, jpeg, ffd) -> dict[str, float]:
    """PSNR gains over the file (dB, 8-bit outputs) of the shipped JPEG stage and of the noise stage that
    would replace it (the registry's FFDNet told the analysis' ``sigma_told_255`` for this file's quality,
    as the plan's noise stage is, and told a fixed σ 8), and that σ."""
    from engine.analysis.jpeg_tables import STD_CHROMA, STD_LUMA, JpegQuantisation, JpegSource, ijg_table
    from engine.analysis.noise_level import nlf_measurements
    from engine.experts.base import ExpertContext
    from training.metrics import psnr
    from _host import q8

    quant = JpegQuantisation((ijg_table(STD_LUMA, quality), ijg_table(STD_CHROMA, quality),
                              ijg_table(STD_CHROMA, quality)), ((2, 2), (1, 1), (1, 1)))
    source = JpegSource(quant, noisy)
    base = psnr(noisy, ref)
    told = nlf_measurements([noisy], jpeg_quality=quality)["sigma_told_255"]
    row = {"input": base, "told": told, "jpeg": psnr(q8(jpeg.run(noisy, ExpertContext(jpeg=source))), ref) - base}
    for name, s in (("noise", told), ("ffd8", 8.0)):
        out = ffd.run(noisy, ExpertContext(noise_sigma=np.float32(s / 255), jpeg=source))
        row[name] = psnr(q8(out), ref) - base
    return row


def run_gains(cache: Path, select, minutes: float) -> dict:
    """Adds (resumably, for at most ``minutes``) :func:`measure_gains` to ``gains.json`` for the cases
    ``select(row)`` (a feature row) picks."""
    import json
    import time

    from engine.experts.default import build_registry
    from engine.experts.jpeg_restore import JpegQcpRestorer
    from real_noise import ffdnet_expert

    rows, _ = load_features(cache)
    gpath = cache / "gains.json"
    done = json.loads(gpath.read_text()) if gpath.is_file() else {}
    jpeg = next(e for e in build_registry().for_task("jpeg") if isinstance(e, JpegQcpRestorer))
    ffd = ffdnet_expert()
    t0 = time.time()
    for r in rows:
        key = f"{r['photo']:04d}/{r['kind']}"
        if key in done or not select(r):
            continue
        if time.time() - t0 > minutes * 60:
            break
        d = np.load(cache / f"{r['photo']:04d}.npz")
        noisy = d[r["kind"]].astype(np.float32) / 255.0
        ref = d[f"ref_{r['kind']}"].astype(np.float32) / 255.0
        done[key] = measure_gains(noisy, ref, int(r["quality"]), jpeg, ffd)
        gpath.write_text(json.dumps(done))
        g = done[key]
        print(f"  {key} q{r['quality']} jpeg {g['jpeg']:+.2f} noise(σ{g['told']:.1f}) {g['noise'] - g['jpeg']:+.2f} "
              f"ffd8 {g['ffd8'] - g['jpeg']:+.2f}", file=sys.stderr, flush=True)
    return done


def shipped_noise(noisy: np.ndarray, quality: int) -> dict[str, float]:
    """What the shipped analysis (``analyse_default`` with the file's quality) says of noise: its severity,
    presence (severity ≥ the plan's threshold) and ``sigma_told_255``."""
    from engine.analysis.learned import analyse_default
    from engine.analysis.report import DEFAULT_PRESENCE_THRESHOLD
    from engine.kinds import NOISE

    a = analyse_default(noisy, jpeg_quality=quality).kinds[NOISE]
    return {"severity": float(a.severity), "present": float(a.severity >= DEFAULT_PRESENCE_THRESHOLD),
            "told": float(a.measurements.get("sigma_told_255", np.nan))}


def run_shipped(cache: Path, select, minutes: float) -> dict:
    """Adds (resumably) :func:`shipped_noise` to ``shipped.json`` for the cases ``select(row)`` picks."""
    import json
    import time

    rows, _ = load_features(cache)
    spath = cache / "shipped.json"
    done = json.loads(spath.read_text()) if spath.is_file() else {}
    t0 = time.time()
    for r in rows:
        key = f"{r['photo']:04d}/{r['kind']}"
        if key in done or not select(r):
            continue
        if time.time() - t0 > minutes * 60:
            break
        d = np.load(cache / f"{r['photo']:04d}.npz")
        done[key] = shipped_noise(d[r["kind"]].astype(np.float32) / 255.0, int(r["quality"]))
        spath.write_text(json.dumps(done))
        print(f"  shipped {key} {done[key]}", file=sys.stderr, flush=True)
    return done


#: Photo index ranges (of the seeded training-split order): the detector is fitted on FIT, its threshold
#: read off CALIBRATE (every negative kind below it), and both checked on CHECK.
FIT, CALIBRATE, CHECK = range(0, 240), range(240, 360), range(360, 460)
DETECTOR_POSITIVE = ("noisy_big", "raw_big")
HIDDEN = 16
NEGATIVE_WEIGHT = 4.0


def labelled(cache: Path) -> tuple[list[dict], list[str]]:
    """The feature rows joined with the shipped analysis' verdict (``present``), and the feature names."""
    import json

    rows, names = load_features(cache)
    shipped = json.loads((cache / "shipped.json").read_text())
    out = []
    for r in rows:
        s = shipped.get(f"{r['photo']:04d}/{r['kind']}")
        if s is not None:
            out.append(r | {"present": s["present"], "shipped_told": s["told"]})
    return out, names


def fit_detector(cache: Path, out: Path) -> dict:
    """Fits the grain detector (a 2-layer MLP on :data:`engine.analysis.jpeg_grain.FEATURES`) on the FIT
    photos' cases the shipped analysis calls clean, negatives weighted :data:`NEGATIVE_WEIGHT`; its
    threshold is the highest score of any negative case of the CALIBRATE photos. Writes the model JSON."""
    import json

    import torch

    from engine.analysis.jpeg_grain import FEATURES

    rows, _ = labelled(cache)
    x = np.array([[np.nan_to_num(r[f], nan=-1.0) for f in FEATURES] for r in rows], np.float64)
    kind = np.array([r["kind"] for r in rows])
    photo = np.array([r["photo"] for r in rows])
    missed = np.array([not r["present"] for r in rows])
    y = np.isin(kind, DETECTOR_POSITIVE).astype(np.float32)
    train = np.isin(photo, FIT) & missed & np.isin(kind, NEGATIVE + DETECTOR_POSITIVE)
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-3)
    xt = torch.tensor((x[train] - mu) / sd, dtype=torch.float32)
    yt = torch.tensor(y[train])
    w = torch.where(yt > 0, 1.0, NEGATIVE_WEIGHT)
    for _ in range(800):
        opt.zero_grad()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(net(xt)[:, 0], yt, reduction="none") * w).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        score = net(torch.tensor((x - mu) / sd, dtype=torch.float32))[:, 0].numpy().astype(np.float64)
    calib = np.isin(photo, CALIBRATE) & np.isin(kind, NEGATIVE)
    threshold = float(score[calib].max())
    model = {"features": list(FEATURES), "mean": mu.tolist(), "std": sd.tolist(),
             "w1": net[0].weight.detach().numpy().astype(np.float64).tolist(),
             "b1": net[0].bias.detach().numpy().astype(np.float64).tolist(),
             "w2": net[2].weight.detach().numpy()[0].astype(np.float64).tolist(),
             "b2": float(net[2].bias.detach().numpy()[0]), "threshold": threshold,
             "fitted": f"benchmarks/jpeg_grain_coherence.py --fit-detector: {int(train.sum())} cases of "
                       f"{len(FIT)} training photos, threshold from {int(calib.sum())} negative cases of "
                       f"{len(CALIBRATE)} others"}
    out.write_text(json.dumps(model, indent=1) + "\n")
    return model



def scored(cache: Path, model: Path) -> list[dict]:
    """:func:`labelled` rows with the detector's ``score`` and ``fires`` (on a case the shipped analysis
    calls clean: only there does the rule change the plan) and the ``split`` of the photo."""
    from engine.analysis.jpeg_grain import GrainDetector

    det = GrainDetector.load(model)
    rows, _ = labelled(cache)
    for r in rows:
        r["score"] = det.score(r)
        r["fires"] = bool(r["score"] > det.threshold and not r["present"])
        r["split"] = "fit" if r["photo"] in FIT else "calibrate" if r["photo"] in CALIBRATE else "check"
    return rows


def detection_table(rows: list[dict]) -> str:
    lines = ["| split | " + " | ".join(KINDS) + " |", "|---|" + "---|" * len(KINDS)]
    for split in ("fit", "calibrate", "check"):
        cells = []
        for k in KINDS:
            sel = [r for r in rows if r["split"] == split and r["kind"] == k]
            missed = [r for r in sel if not r["present"]]
            cells.append(f"{sum(r['fires'] for r in missed)} / {len(missed)} (of {len(sel)})")
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gains_table(rows: list[dict], gains: dict) -> str:
    """Per split and kind, on the cases the detector fires on (the shipped analysis calls them clean): the
    noise stage's gain over the shipped JPEG stage (dB: mean / worst / cases losing), FFDNet σ 8's, the σ
    told, and the change averaged over every case the shipped analysis calls clean (0 where not fired)."""
    lines = ["| split | kind | fired / called clean | noise stage − JPEG stage: mean / worst / losing | "
             "FFDNet σ 8 − JPEG stage: mean / worst | σ told (mean) | over all called clean |",
             "|---|---|---|---|---|---|---|"]
    for split in ("calibrate", "check"):
        for k in KINDS:
            missed = [r for r in rows if r["split"] == split and r["kind"] == k and not r["present"]]
            fired = [r for r in missed if r["fires"]]
            if not fired:
                lines.append(f"| {split} | {k} | 0 / {len(missed)} | – | – | – | +0.000 |")
                continue
            g = [gains.get(f"{r['photo']:04d}/{k}") for r in fired]
            if any(x is None for x in g):
                lines.append(f"| {split} | {k} | {len(fired)} / {len(missed)} | (not all measured) | | | |")
                continue
            d = np.array([x["noise"] - x["jpeg"] for x in g])
            d8 = np.array([x["ffd8"] - x["jpeg"] for x in g])
            lines.append(f"| {split} | {k} | {len(fired)} / {len(missed)} | {d.mean():+.2f} / {d.min():+.2f} / "
                         f"{int((d < 0).sum())} | {d8.mean():+.2f} / {d8.min():+.2f} | "
                         f"{np.mean([x['told'] for x in g]):.1f} | {d.sum() / len(missed):+.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
