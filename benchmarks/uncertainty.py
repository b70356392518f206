"""Calibration of the per-pixel uncertainty map (engine/uncertainty) and the candidates it was
chosen from.

``collect --which train|train2|camera|val|real --cache FILE`` restores photos and keeps, per kept stage and for
the composed result, the feature planes, the actual error (|restored − truth| per pixel, mean over
channels, 8-bit levels) and every candidate's map: ``train`` and ``val`` are disjoint photos
spread over ``../shared/data/clean`` (central crops, one synthetic degradation per kind, strength
0.3–0.8, restored with ``--only KIND`` and with the automatic plan; ``train2`` as many training
photos again, between the first ones; ``camera`` both training sets through the simulated camera,
``engine/degrade/camera.py``, automatic plan); ``real`` the pairs in
``../shared/data/pairs`` (validation only, never fitted on) with the automatic plan.

``fit --cache TRAIN`` fits per kind (a stage's map) and for the composed result the model of
``engine/uncertainty/model.py``: features chosen forward from the change map by the Spearman ρ on
held-out training photos, a least-squares score, a monotone map to mean error; it writes
``models/uncertainty-calibration.json``.

``choose --cache TRAIN... --calibrations A.json B.json`` (what ships) picks, per stage kind and per
composed model, the ranking among those calibrations' models (and a calibrated change map) by
the same Spearman measure on the training rows, then refits its levels on the rows it judges
(score → mean error), so the map's levels, not only its ranks, fit: ``fraction_above`` means
what it says on the photos it was fitted on.

``extend --cache TRAIN...`` adds to the haze, low-light and rain models, where the held-out training
measure says so, terms for errors that scale with the brightness or the haze (:data:`EXTENSIONS`);
``extend --terms ensemble`` the spread of a parameter-perturbation ensemble (:data:`ENSEMBLE_TERMS`,
``engine/uncertainty/ensemble.py``: the stage's global guesses re-made on a small copy).

``noise-stage --cache TRAIN...`` refits the noise stage's model on synthetic and camera noise rows,
judged on each family held out (tried, not shipped: ``benchmarks/results/uncertainty.md``);
``noise-offset --cache TRAIN...`` offers its shipped score a photo-level offset (the photo's noise level,
change, darkness), judged on the held-out levels per training family as well (tried, not shipped);
``noise-left --cache TRAIN...`` refits that score's levels on the rows whose error is the noise stage's to fix
(what ships: ``noise-left --cache trainall.npz train2all.npz camera.npz camiso.npz --base BEFORE.json``, BEFORE
the calibration committed before it, ``git show d67d0b4:models/uncertainty-calibration.json``, writes the
committed file byte for byte).
``left --cache TRAIN... --base CAL`` fits the composed map's term for darkness the plan left unfixed
(``engine/uncertainty/left.py``); ``gate --caches VAL REAL --calibrations BEFORE AFTER --full-json F`` is
the ninth pass's ship rule for the two together (failed: ``benchmarks/results/uncertainty.md``).
``collect --which clean|clean-val`` restores clean photos whole (:func:`clean_split`); ``untouched --cache TRAIN...
CLEAN_TRAIN --base CAL`` fits the model of a result left unchanged where nothing is found
(``engine/uncertainty/model.py``: ``UncertaintyModel.judge``) and ``gate-untouched --caches VAL REAL --calibrations
BEFORE AFTER --full-json F`` is its ship rule (failed, eleventh pass: not shipped). ``collect --which
rain-realistic|rain-heavy`` restores training crops under the realistic rain generator (and that rain laid over
itself); ``rain --cache TRAIN... --base CAL`` refits the rain models judged per rain family (:data:`RAIN_FAMILIES`),
``gate-rain --caches VAL REAL --calibrations BEFORE AFTER`` is its ship rule (failed, twelfth pass: not shipped),
``rain-judge`` tries rain left unfixed judging the composed result, ``streak-width`` the width of a wide-streak
plane, and ``diagnose --diagnose-kind KIND --caches ...`` says where a kind's error lies. Stage rows
are scored on their own kind's photos (:func:`own_kind`), composed rows on every photo.

``eval --caches VAL REAL`` writes the numbers (``benchmarks/results/uncertainty.md``): Spearman ρ
of each candidate with the error per kind (pooled and per photo, per pixel and on 8×8 blocks), the
reliability curve by decile, the plan rule (soften or drop a stage whose uncertain fraction is
high and whose gain is small) by PSNR, and the cost. Candidates: ``model`` (shipped), ``change``
(the viewer's change map before this work), ``change_smooth``, ``texture`` (local gradient of the
result), ``noise`` (the analysed noise map), ``flip_ensemble`` (|restored − flip(restore(flip))|,
one more restoration), ``two_experts`` (|stage output − the second-ranked expert's output|).

Run (a loaded 2-core machine: about 10 min per collection at 128 px):
``OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/uncertainty.py collect --which train
--cache /tmp/train.npz`` (and ``train2``, ``camera``, ``val``, ``real``), then ``... fit --cache
/tmp/train.npz /tmp/train2.npz`` (a calibration with each kind's physics; keep a copy of each
calibration to choose among), ``... choose --cache /tmp/train.npz /tmp/train2.npz /tmp/camera.npz
--calibrations A.json B.json``, ``... extend --cache /tmp/train.npz /tmp/train2.npz /tmp/camera.npz``
(and again with ``--terms ensemble``) and ``... eval --caches /tmp/val.npz /tmp/real.npz``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from _host import cpu_model  # benchmarks/_host.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
#: The calibration the engine ships (engine/uncertainty/model.py reads it): each fit starts from it and,
#: without --calibration, writes over it.
SHIPPED_CALIBRATION = ROOT / "models" / "uncertainty-calibration.json"

SHARED = Path(os.environ.get("RESTORA_SHARED") or ROOT.parent / "shared")
CLEAN = SHARED / "data" / "clean"
PAIRS = SHARED / "data" / "pairs"
#: Real pair sets and the kind each one shows.
REAL_SETS = {"noise_real_polyu_crops": "noise", "blur_real_levin": "blur", "haze_reside": "haze",
             "lowlight_real_lol_train": "lowlight", "rain_synthetic": "rain"}
SYNTH_KINDS = ("noise", "blur", "jpeg", "haze", "lowlight", "rain")
SAMPLES_PER_PHOTO = 5000
CANDIDATES = ("model", "change", "change_smooth", "texture", "noise", "flip_ensemble", "two_experts")


def machine() -> str:
    model = cpu_model()
    return f"{model}, {os.cpu_count()} logical cores, load average {os.getloadavg()[0]:.1f} at start (shared, loaded)"


def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    top, left = max((h - size) // 2 // 16 * 16, 0), max((w - size) // 2 // 16 * 16, 0)
    return np.ascontiguousarray(img[top:top + size, left:left + size])


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def psnr(x: np.ndarray, y: np.ndarray) -> float:
    mse = float(np.mean((np.round(np.clip(x, 0, 1) * 255) / 255 - y) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def block_mean(plane: np.ndarray, block: int = 8) -> np.ndarray:
    h, w = (plane.shape[0] // block) * block, (plane.shape[1] // block) * block
    return plane[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3))


class Collector:
    """Restores photos and keeps, per kept stage and for the composed result, the full-resolution
    feature planes (float16), the actual error and the candidates' maps; and for the plan rule the
    PSNR of every softened / dropped subset of the kept stages."""

    def __init__(self, extra_candidates: bool) -> None:
        from engine.experts.default import build_registry
        from engine.pipeline.job import Restorer

        self.registry = build_registry(device="cpu")
        self.restorer = Restorer(self.registry)
        self.extra = extra_candidates
        self.rows: list[dict] = []
        self.seconds_restore = 0.0
        self.seconds_map = 0.0

    def restore(self, degraded, truth, options, group: str, kind: str, photo: str, jpeg=None,
                metadata=None) -> None:
        from itertools import combinations

        from engine.uncertainty.features import _box, _gradient, _grey, absolute_error, noise_plane
        from engine.uncertainty.session import _noise_sigma

        t0 = time.perf_counter()
        session = self.restorer.session(degraded, options, jpeg=jpeg, metadata=metadata)
        outcome = self.restorer.orchestrator.restore(session, options.choices())
        plan, results = outcome.plan, outcome.results
        strengths = plan.strengths()
        composed = session.compose(strengths)
        self.seconds_restore += time.perf_counter() - t0

        def sev(report) -> dict:
            return {} if report is None else {k: round(float(report.severity(k)), 4) for k in SYNTH_KINDS}

        def row(before, after, name, report, report_after, **extra):
            sigma = _noise_sigma(before, report)
            return {"group": group, "kind": kind, "stage": name, "photo": photo,
                    "sev_in": sev(report), "sev_out": sev(report_after),
                    "before": before.astype(np.float16), "after": after.astype(np.float16),
                    "sigma": noise_plane(sigma, before.shape[:2]).astype(np.float16),
                    "err": absolute_error(after, truth).astype(np.float16),
                    "change": absolute_error(after, before).astype(np.float16), **extra}

        current, report = session.image, session.report
        kept = []
        for r in results:
            if r.dropped or r.delta is None:
                continue
            after = np.clip(current + r.delta, 0.0, 1.0)
            extra = {}
            if self.extra and r.name in SYNTH_KINDS:
                other = self._second_expert(r, current, report)
                if other is not None:
                    extra["two_experts"] = absolute_error(after, other).astype(np.float16)
            self.rows.append(row(current, after, r.name, report, r.output_report, **extra))
            kept.append(r.name)
            current, report = after, r.output_report or report
        extra = {"kept": kept, "psnr_in": psnr(session.image, truth), "psnr": psnr(composed, truth), "variants": {}}
        for n in range(1, len(kept) + 1):
            for subset in combinations(kept, n):
                for action in (0.5, 0.0):
                    s = dict(strengths)
                    for name in subset:
                        s[name] = strengths.get(name, 1.0) * action
                    extra["variants"][f"{'+'.join(subset)}|{action}"] = psnr(session.compose(s), truth)
        if self.extra:
            flipped = self.restorer.session(np.ascontiguousarray(degraded[:, ::-1]), options)
            self.restorer.orchestrator.run(flipped, plan)
            back = flipped.compose(strengths)[:, ::-1]
            extra["flip_ensemble"] = absolute_error(composed, back).astype(np.float16)
        sigma = _noise_sigma(session.image, session.report)
        extra["texture"] = _box(_gradient(_grey(composed))).astype(np.float16)
        extra["noise"] = noise_plane(sigma, composed.shape[:2]).astype(np.float16)
        extra["change_smooth"] = _box(absolute_error(composed, session.image)).astype(np.float16)
        self.rows.append(row(session.image, composed, "composed", session.report,
                             next((r.output_report for r in reversed(results)
                                   if not r.dropped and r.output_report is not None), session.report), **extra))

    def _second_expert(self, r, before, report):
        from engine.experts.base import ExpertContext
        others = [e for e in self.registry.for_task(r.name) if e.info.id != r.expert_id and not e.info.generative]
        if not others:
            return None
        a = report.kinds.get(r.name)
        ctx = ExpertContext(severity=float(a.severity) if a else 0.5, measurements=dict(a.measurements) if a else {})
        try:
            return np.clip(others[0].run(before, ctx).astype(np.float32), 0, 1)
        except Exception:  # noqa: BLE001 - a candidate that cannot run is reported as missing
            return None


ARRAYS = ("before", "after", "sigma", "err", "change", "two_experts", "flip_ensemble", "texture", "noise",
          "change_smooth")


def save_rows(path: Path, col: Collector) -> None:
    arrays, meta = {}, []
    for i, r in enumerate(col.rows):
        meta.append({k: v for k, v in r.items() if k not in ARRAYS})
        for k in ARRAYS:
            if r.get(k) is not None:
                arrays[f"{i}/{k}"] = r[k]
    info = {"rows": meta, "restore_s": col.seconds_restore, "map_s": col.seconds_map}
    np.savez(path, meta=np.frombuffer(json.dumps(info).encode(), np.uint8), **arrays)


def load_rows(path: Path) -> tuple[list[dict], dict]:
    with np.load(path, allow_pickle=False) as z:
        info = json.loads(bytes(z["meta"]).decode())
        rows = []
        for i, m in enumerate(info["rows"]):
            r = dict(m)
            for k in ARRAYS:
                if f"{i}/{k}" in z:
                    r[k] = z[f"{i}/{k}"].astype(np.float32)
            rows.append(r)
    return rows, info


def synthetic(names: list[str], crop: int, options_for, collector: Collector, group: str, kinds=None) -> None:
    """Each photo's central crop degraded once per kind of :data:`SYNTH_KINDS` (``kinds``: only
    those; the seeds stay those of the full collection, so a subset's rows are the same rows)."""
    from engine.degrade import degrade
    from engine.imageio import load_photo
    for i, name in enumerate(names):
        clean = centre_crop(load_photo(CLEAN / name).pixels, crop)
        for j, kind in enumerate(SYNTH_KINDS):
            if kinds and kind not in kinds:
                continue
            seed = 1000 * i + j
            strength = float(np.random.default_rng(seed).uniform(0.3, 0.8))
            degraded = degrade(clean, kind, strength, seed=seed)
            collector.restore(degraded, clean, options_for(kind), group, kind, name)
        print(f"  {group} {i + 1}/{len(names)} {name}", file=sys.stderr, flush=True)


def camera(names: list[str], crop: int, collector: Collector, group: str) -> None:
    """Training photos through the simulated camera (``engine/degrade/camera.py``: sensor noise,
    demosaicing, in-camera noise reduction, sharpening, JPEG), truth = the same camera without the
    sensor noise; the automatic plan. What a real camera photo looks like to the analysis (often
    JPEG and residual noise, as the real PolyU crops), so the composed levels are fitted on it too."""
    from dataclasses import replace

    from engine.degrade.camera import camera_pipeline, sample_camera_params
    from engine.imageio import load_photo
    from engine.pipeline.job import RestoreOptions
    for i, name in enumerate(names):
        clean = centre_crop(load_photo(CLEAN / name).pixels, crop)
        seed = 7000 + i
        p = sample_camera_params(np.random.default_rng([seed, 15]))
        degraded, _ = camera_pipeline(clean, seed, p)
        truth, _ = camera_pipeline(clean, seed, replace(p, shot=0.0, read=0.0), noise=False)
        collector.restore(degraded, truth, RestoreOptions(), group, "noise", name)
        print(f"  {group} {i + 1}/{len(names)} {name}", file=sys.stderr, flush=True)


#: Camera noise levels ``collect --which camera-iso`` spreads each photo's cases over (the strength of
#: ``engine.degrade.camera.camera_noise``, log-linear in the shot level: 0.05 about a base-ISO DSLR, 0.9
#: a dark phone shot), one case in each third.
CAMERA_ISO_RANGE = (0.05, 0.9)


def camera_iso(names: list[str], crop: int, collector: Collector, group: str, cases: int = 3) -> None:
    """Training photos through the simulated camera at noise levels spread from weak to strong
    (:data:`CAMERA_ISO_RANGE`, stratified: case ``j`` of ``cases`` in the ``j``-th part of the range),
    the camera's own JPEG always on, the last case saved again as a JPEG (quality 60–92); truth = the
    same camera without the sensor noise (no re-save). Each case restored with the automatic plan and
    with ``--only noise`` (the noise stage run even where the plan would not keep it). What the
    synthetic noise (strong, white) and the first camera set (few kept noise stages) left out: the
    moderate, correlated noise of a real camera JPEG, whose residual after denoising is a few levels."""
    from engine.degrade.camera import camera_noise, jpeg_round_trip
    from engine.imageio import load_photo
    from engine.pipeline.job import RestoreOptions
    lo, hi = CAMERA_ISO_RANGE
    for i, name in enumerate(names):
        clean = centre_crop(load_photo(CLEAN / name).pixels, crop)
        for j in range(cases):
            seed = 8000 + 10 * i + j
            rng = np.random.default_rng([seed, 15])
            strength = lo + (hi - lo) * (j + float(rng.uniform())) / cases
            noisy, truth, _ = camera_noise(clean, strength, seed, jpeg=True, second_order=False)
            if j == cases - 1:
                noisy = np.clip(jpeg_round_trip(noisy, int(rng.integers(60, 93))), 0.0, 1.0).astype(np.float32)
            for plan, options in (("auto", RestoreOptions()), ("only", RestoreOptions(auto=False, only=("noise",)))):
                collector.restore(noisy, truth, options, f"{group}-{plan}", "noise", name)
        print(f"  {group} {i + 1}/{len(names)} {name}", file=sys.stderr, flush=True)


#: The kinds whose error is mostly one level per photo (haze, low light, rain), which the whole-photo
#: training rows (``collect --which whole``) are made for.
WHOLE_KINDS = ("haze", "lowlight", "rain")


def fit_side(img: np.ndarray, side: int) -> np.ndarray:
    """``img`` area-resized so that its long side is at most ``side`` px (a whole photo the size of the
    real pairs, 320–620 px), unchanged when already smaller."""
    import cv2
    h, w = img.shape[:2]
    f = min(1.0, side / float(max(h, w)))
    if f == 1.0:
        return np.ascontiguousarray(img)
    return np.ascontiguousarray(cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA))


def whole(names: list[str], side: int, collector: Collector, group: str) -> None:
    """Whole training photos (long side at most ``side`` px), each degraded by the realistic
    generators of ``training/realistic.py`` (haze over a varied depth and a tinted airlight; low light
    in linear light with a white-balance cast and camera noise, the camera pipeline; rain in 1–3
    layers with a distant veil), strength 0.3–0.8, restored with the automatic plan; truth = the
    clean photo. The photo-level error of these kinds is decided by the whole photo (its exposure,
    its sky, its airlight), which a 128 px crop misjudges."""
    from engine.imageio import load_photo
    from engine.pipeline.job import RestoreOptions
    from training.realistic import degrade_realistic_mix
    for i, name in enumerate(names):
        clean = fit_side(load_photo(CLEAN / name).pixels, side)
        for j, kind in enumerate(WHOLE_KINDS):
            seed = 9000 + 10 * i + j
            strength = float(np.random.default_rng(seed).uniform(0.3, 0.8))
            degraded, _, _ = degrade_realistic_mix(clean, [(kind, strength)], seed)
            collector.restore(degraded, clean, RestoreOptions(), group, kind, name)
        print(f"  {group} {i + 1}/{len(names)} {name}", file=sys.stderr, flush=True)


#: Strengths of the realistic rain (``engine.degrade.weather.rain_layers``) of ``collect --which rain-realistic``,
#: as ``benchmarks/haze_with_rain_fit.py`` draws them.
RAIN_REALISTIC_RANGE = (0.2, 1.0)


def rain_realistic(names: list[str], crop: int, collector: Collector, group: str) -> None:
    """Training photos' central crops under the realistic rain generator (``engine.degrade.weather.rain_layers``:
    1–3 streak layers at one wind direction, the nearer ones wider and out of focus, tinted, a faint distant
    veil; strength :data:`RAIN_REALISTIC_RANGE`), restored with the automatic plan and with ``--only rain``;
    truth = the clean crop. The table's rain (``engine.degrade``, thin straight streaks) is what the rain
    models were fitted on; this is closer to the published rain sets the real rows hold."""
    from engine.degrade.weather import rain_layers
    from engine.imageio import load_photo
    from engine.pipeline.job import RestoreOptions
    lo, hi = RAIN_REALISTIC_RANGE
    for i, name in enumerate(names):
        clean = centre_crop(load_photo(CLEAN / name).pixels, crop)
        rng = np.random.default_rng([9500 + i, 15])
        degraded = rain_layers(clean, float(rng.uniform(lo, hi)), rng)
        for plan, options in (("auto", RestoreOptions()), ("only", RestoreOptions(auto=False, only=("rain",)))):
            collector.restore(degraded, clean, options, f"{group}-{plan}", "rain", name)
        print(f"  {group} {i + 1}/{len(names)} {name}", file=sys.stderr, flush=True)


#: Strengths and passes of ``collect --which rain-heavy``: the realistic rain laid over itself this many
#: times (each pass its own 1–3 layers and veil), so the streaks cover most of the crop as in the published
#: heavy-rain sets. Added after the validation of the first refit (``benchmarks/results/uncertainty.md``,
#: twelfth pass): the real rain rows' streaks cover 85 % of their pixels, the realistic generator's 29 %.
RAIN_HEAVY_RANGE = (0.6, 1.0)
RAIN_HEAVY_PASSES = (2, 5)


def rain_heavy(names: list[str], crop: int, collector: Collector, group: str) -> None:
    """Training photos' central crops under heavy realistic rain (:func:`engine.degrade.weather.rain_layers`
    applied :data:`RAIN_HEAVY_PASSES` times at a strength of :data:`RAIN_HEAVY_RANGE`), restored with the
    automatic plan and with ``--only rain``; truth = the clean crop."""
    from engine.degrade.weather import rain_layers
    from engine.imageio import load_photo
    from engine.pipeline.job import RestoreOptions
    lo, hi = RAIN_HEAVY_RANGE
    for i, name in enumerate(names):
        clean = centre_crop(load_photo(CLEAN / name).pixels, crop)
        rng = np.random.default_rng([9700 + i, 15])
        degraded, strength = clean, float(rng.uniform(lo, hi))
        for _ in range(int(rng.integers(*RAIN_HEAVY_PASSES))):
            degraded = rain_layers(degraded, strength, rng)
        for plan, options in (("auto", RestoreOptions()), ("only", RestoreOptions(auto=False, only=("rain",)))):
            collector.restore(degraded, clean, options, f"{group}-{plan}", "rain", name)
        print(f"  {group} {i + 1}/{len(names)} {name}", file=sys.stderr, flush=True)


def real(per_set: int, crop: int, collector: Collector, sets=None) -> None:
    from engine.imageio import load_photo
    from engine.pipeline.job import RestoreOptions
    for set_name, kind in REAL_SETS.items():
        folder = PAIRS / set_name
        if not folder.is_dir() or (sets and set_name not in sets):
            continue
        files = sorted(p.name for p in (folder / "lq").iterdir())
        files = files[:: max(1, len(files) // per_set)][:per_set]
        for name in files:
            photo = load_photo(folder / "lq" / name)
            gt = next(p for p in sorted((folder / "gt").iterdir()) if p.stem == Path(name).stem)  # .jpg lq, .png gt
            truth = centre_crop(load_photo(gt).pixels, crop)
            lq = centre_crop(photo.pixels, crop)
            if lq.shape != truth.shape:
                continue
            collector.restore(lq, truth, RestoreOptions(), f"real:{set_name}", kind, name,
                              jpeg=photo.jpeg if lq.shape == photo.pixels.shape else None)
        print(f"  real {set_name} done", file=sys.stderr, flush=True)


#: The full-size PolyU photos (``noise_real_polyu_fullsize``: whole camera JPEGs, ISO 1600–6400, 5–9 MP),
#: smallest first; ``collect --which polyu-full --photos N`` takes the first N.
POLYU_FULL = ("Canon80D_ball.JPG", "Canon5D2_chair.JPG", "SonyA7II_plant.JPG", "Nikon800_class.JPG",
              "Nikon800_flowe.JPG")


def polyu_full(photos: int, collector: Collector) -> None:
    """Whole full-size PolyU photos (validation only), restored with the automatic plan, the file's
    JPEG tables and its EXIF (the ISO the noise analysis reads), as the CLI restores them: the map's
    level on a whole real camera photo (mean, p95, fraction above 8 levels) against the output's
    actual error."""
    from engine.imageio import load_photo
    from engine.pipeline.job import RestoreOptions
    folder = PAIRS / "noise_real_polyu_fullsize"
    for name in POLYU_FULL[:photos]:
        if not (folder / "lq" / name).is_file():
            continue
        photo = load_photo(folder / "lq" / name)
        truth = load_photo(folder / "gt" / name).pixels
        if truth.shape != photo.pixels.shape:
            continue
        collector.restore(photo.pixels, truth, RestoreOptions(), "real-full:noise_real_polyu_fullsize", "noise",
                          name, jpeg=photo.jpeg, metadata=photo.metadata)
        print(f"  polyu-full {name} done", file=sys.stderr, flush=True)


def clean_photos(names: list[str], collector: Collector, group: str) -> None:
    """Clean photos whole, as the CLI restores them (native size, the file's JPEG tables and EXIF, the
    automatic plan); truth = the photo itself, so every level of the map is a false alarm where the plan
    left the photo untouched, and the error of what a kept stage changed where it did not."""
    from engine.imageio import load_photo
    from engine.pipeline.job import RestoreOptions
    for i, name in enumerate(names):
        photo = load_photo(CLEAN / name)
        collector.restore(photo.pixels, photo.pixels, RestoreOptions(), group, CLEAN_KIND, name, jpeg=photo.jpeg,
                          metadata=photo.metadata)
        print(f"  {group} {i + 1}/{len(names)} {name}", file=sys.stderr, flush=True)


#: The ``kind`` of a clean photo's rows (``collect --which clean|clean-val``): no degradation.
CLEAN_KIND = "clean"
#: How many clean photos ``collect --which clean-val`` validates on; ``clean`` takes every
#: :data:`CLEAN_TRAIN_STRIDE`-th of the others (and the training photos of the degraded rows).
CLEAN_VAL_PHOTOS = 24
CLEAN_TRAIN_STRIDE = 4


def clean_split(train: list[str], val: list[str]) -> tuple[list[str], list[str]]:
    """``(training, validation)`` clean photos: validation :data:`CLEAN_VAL_PHOTOS` spread evenly over
    the photos that no training or validation collection holds (``train``, ``val``); training ``train``
    and every :data:`CLEAN_TRAIN_STRIDE`-th of the rest that is not a validation photo (disjoint)."""
    rest = [n for n in sorted(os.listdir(CLEAN)) if n not in train and n not in val]
    held = rest[1::len(rest) // CLEAN_VAL_PHOTOS][:CLEAN_VAL_PHOTOS]
    return list(train) + [n for n in rest[::CLEAN_TRAIN_STRIDE] if n not in held], held


def split_photos(n_train: int, n_val: int) -> tuple[list[str], list[str]]:
    """Disjoint training and validation photos, each spread evenly over the whole clean set (its
    sources differ: BSDS500 landscapes and people, Sun-Hays, Urban100 buildings)."""
    names = sorted(os.listdir(CLEAN))
    step = len(names) // n_train
    train = names[::step][:n_train]
    rest = [n for n in names if n not in train]
    return train, rest[step // 2::len(rest) // n_val][:n_val]


def collect(args) -> None:
    from engine.pipeline.job import RestoreOptions
    col = Collector(extra_candidates=not args.which.startswith(("train", "whole")) and not args.no_extra)
    train, val = split_photos(args.train, args.val)
    only = lambda k: RestoreOptions(auto=False, only=(k,))  # noqa: E731
    if args.which == "train2":  # more training photos: as many again, between the first ones, none of the validation's
        names = sorted(os.listdir(CLEAN))
        step = len(names) // args.train
        train = [n for n in names[step // 4::step] if n not in val and n not in train][:args.train]
    if args.which == "camera":  # the first and second training photos through the simulated camera
        names = sorted(os.listdir(CLEAN))
        step = len(names) // args.train
        train += [n for n in names[step // 4::step] if n not in val and n not in train][:args.train]
        camera(train, args.crop, col, "train-camera")
    elif args.which == "camera-iso":  # both training sets' photos, camera noise from weak to strong
        names = sorted(os.listdir(CLEAN))
        step = len(names) // args.train
        train += [n for n in names[step // 4::step] if n not in val and n not in train][:args.train]
        camera_iso(train[args.first:args.first + args.photos], args.crop, col, "train-camera-iso")
    elif args.which in ("train", "train2"):
        synthetic(train, args.crop, only, col, "train", args.kinds)
        synthetic(train, args.crop, lambda k: RestoreOptions(), col, "train-auto", args.kinds)
    elif args.which == "rain-realistic":  # both training sets' photos, the realistic rain generator
        names = sorted(os.listdir(CLEAN))
        step = len(names) // args.train
        train += [n for n in names[step // 4::step] if n not in val and n not in train][:args.train]
        rain_realistic(train[args.first:args.first + args.photos], args.crop, col, "train-rainreal")
    elif args.which == "rain-heavy":  # both training sets' photos, the realistic rain laid over itself
        names = sorted(os.listdir(CLEAN))
        step = len(names) // args.train
        train += [n for n in names[step // 4::step] if n not in val and n not in train][:args.train]
        rain_heavy(train[args.first:args.first + args.photos], args.crop, col, "train-rainheavy")
    elif args.which == "whole":  # whole training photos, both training sets' photos
        names = sorted(os.listdir(CLEAN))
        step = len(names) // args.train
        second = [n for n in names[step // 4::step] if n not in val and n not in train][:args.train]
        names = [n for pair in zip(train, second, strict=False) for n in pair]
        whole(names[args.first:args.first + args.photos], args.side, col, "train-whole")
    elif args.which == "whole-val":  # held-out photos, whole, the same generators
        whole(val[:args.photos], args.side, col, "synthetic-whole")
    elif args.which in ("clean", "clean-val"):
        names = sorted(os.listdir(CLEAN))
        step = len(names) // args.train
        second = [n for n in names[step // 4::step] if n not in val and n not in train][:args.train]
        fitted, held = clean_split(train + second, val)
        if args.which == "clean":
            clean_photos(fitted, col, "train-clean")
        else:
            clean_photos(held, col, "clean")
    elif args.which == "polyu-full":
        polyu_full(args.photos, col)
    elif args.which == "val":
        synthetic(val, args.crop, only, col, "synthetic", args.kinds)
        synthetic(val, args.crop, lambda k: RestoreOptions(), col, "synthetic-auto", args.kinds)
    else:
        real(args.pairs, args.crop, col, args.sets)
    save_rows(Path(args.cache[0]), col)
    print(f"wrote {args.cache} ({len(col.rows)} rows)", file=sys.stderr)


# -- models over cached rows -------------------------------------------------------------------

def stack_for(r: dict, kind: str) -> np.ndarray:
    """The feature stack of a cached row with the severities of ``kind`` ("": the largest); the
    raw planes are computed from the row's stored input and output once."""
    from engine.uncertainty.features import assemble, photo_stats, raw_planes

    if "raw" not in r:
        r["photo_stats"] = photo_stats(r["before"], r["after"])
        r["raw"] = raw_planes(r["before"], r["after"], noise_sigma=r["sigma"] / np.float32(255.0),
                              airlight=r["photo_stats"].airlight)

    def pick(d):
        return d.get(kind, 0.0) if kind else max(d.values(), default=0.0)
    spreads = r.setdefault("spread", {})
    if kind not in spreads:  # the parameter-perturbation ensemble of the kind judging the row (None: no ensemble)
        from engine.uncertainty.ensemble import parameter_spread
        spreads[kind] = parameter_spread(r["before"], r["after"], kind, severity=pick(r["sev_in"]))
    sp = spreads[kind]
    if sp is not None and sp.shape != r["before"].shape[:2]:  # a crop larger than the ensemble's copy
        from engine.uncertainty.ensemble import spread_rows
        sp = spread_rows(sp, r["before"].shape[:2], 0, r["before"].shape[0])
    return assemble(r["raw"], pick(r["sev_in"]), pick(r["sev_out"]), r["photo_stats"], sp,
                    0.0 if spreads[kind] is None else float(spreads[kind].mean()), float(r["sigma"].mean()))


def dominant(r: dict) -> str:
    """The kind whose composed model judges a composed row, as ``engine.uncertainty.session.composed_choice``."""
    from engine.analysis.report import DEFAULT_PRESENCE_THRESHOLD
    from engine.uncertainty.session import LEFT_IN_RESULT
    kept = [k for k in r.get("kept", []) if k in SYNTH_KINDS]
    cands = set(kept) | {k for k, v in r["sev_in"].items()
                         if v >= DEFAULT_PRESENCE_THRESHOLD and (k in LEFT_IN_RESULT or not kept)}
    return max([k for k in SYNTH_KINDS if k in cands], key=lambda k: r["sev_in"][k]) if cands else ""


def _sample(plane: np.ndarray, n: int, seed: int) -> np.ndarray:
    flat = plane.reshape(plane.shape[0], -1) if plane.ndim == 3 else plane.reshape(1, -1)
    idx = np.random.default_rng(seed).choice(flat.shape[1], size=min(n, flat.shape[1]), replace=False)
    return flat[:, idx]


def _fit_selected(stacks, errs, chosen):
    from engine.uncertainty.model import fit_kind
    mask = np.zeros((stacks[0].shape[0], 1), np.float32)
    mask[[0] + chosen] = 1.0
    return fit_kind([st * mask for st in stacks], errs)


#: Features every kind's model may use (generic: what changed, detail, noise, tones, severities).
GENERIC = ("change", "texture_after", "texture_before", "noise", "severity", "severity_after", "dark", "bright",
           "luminance", "texture_x_severity", "texture_x_severity_after", "noise_x_severity", "change_x_severity",
           "photo_change")
#: ...and the physics of each kind (engine/uncertainty/features.py): a dehazer's error grows with
#: the haze depth, the airlight gap and the gain it applied; brightening's with the gain times the
#: noise and, where exposure is left uncorrected, with the brightness; deraining's where streaks
#: are left; denoising's with the noise it amplified.
PHYSICS = {
    "haze": ("dark_channel", "dark_channel_before", "haze_depth", "haze_depth_x_severity", "gain", "airlight_gap",
             "airlight_gap_x_depth", "gain_x_noise"),
    "lowlight": ("gain", "brighten", "gain_x_noise", "photo_dark", "luminance_x_photo_dark"),
    "rain": ("streak_before", "streak_after", "streak_after_x_severity"),
    "noise": ("gain", "gain_x_noise"),
    "jpeg": ("gain",),
    "blur": ("gain",),
}
#: Pixels sampled from each training row for the fit.
PIXELS_PER_ROW = 800
#: Folds of the training photos the selection holds out in turn.
FOLDS = 4


def candidate_features(kind: str) -> list[int]:
    """Stack indices (1-based past the constant) a model for ``kind`` may select from; every
    feature for the composed model of no single kind."""
    from engine.uncertainty.features import FEATURES
    names = GENERIC + PHYSICS[kind] if kind in PHYSICS else FEATURES
    return [1 + FEATURES.index(n) for n in names]


def select_and_fit(stacks: list[np.ndarray], errs: list[np.ndarray], photos: list[str], max_features: int = 7,
                   candidates: list[int] | None = None):
    """Forward selection of features among ``candidates`` by the Spearman ρ on held-out photos
    (:data:`FOLDS` folds of the training photos), the mean of the pooled ρ and the mean per-photo
    ρ (a map must rank the pixels of one photo, where a person looks, as well as photos against
    each other; pooled alone chases photo-level noise on a few photos), then the fit on all of
    them with the features chosen. The change (the baseline the map must beat) is one candidate among them, not
    forced in: the selection runs from nothing and from the change, and keeps the better."""
    from engine.uncertainty.features import FEATURES
    names = sorted(set(photos))
    fold = [names.index(p) % FOLDS for p in photos]
    candidates = candidates or list(range(1, stacks[0].shape[0]))
    runs = [_forward(stacks, errs, fold, candidates, start, max_features)
            for start in ([], [1 + FEATURES.index("change")])]
    chosen, best = max(runs, key=lambda run: run[1])
    return _fit_selected(stacks, errs, chosen), chosen, best


def _forward(stacks, errs, fold, candidates, start, max_features):
    chosen, best = list(start), -1.0
    while len(chosen) < max_features:
        trial = {}
        for f in candidates:
            if f in chosen:
                continue
            rhos = []
            for k in range(FOLDS):
                train = [i for i, x in enumerate(fold) if x != k]
                test = [i for i, x in enumerate(fold) if x == k]
                if not train or not test:
                    continue
                m = _fit_selected([stacks[i] for i in train], [errs[i] for i in train], chosen + [f])
                scores = [m.score(stacks[i]) for i in test]
                pooled = spearman(np.concatenate(scores), np.concatenate([errs[i] for i in test]))
                per_photo = np.mean([spearman(sc, errs[i]) for sc, i in zip(scores, test, strict=True)])
                rhos.append(0.5 * (pooled + float(per_photo)))
            trial[f] = float(np.mean(rhos)) if rhos else -1.0
        f, rho = max(trial.items(), key=lambda kv: kv[1])
        if rho < best + 0.01:
            break
        chosen.append(f)
        best = rho
    return chosen, best


def fit_models(rows: list[dict], only: list[str] | None = None, base=None) -> tuple[object, dict]:
    """Fit every model (``only``: just those names, the others taken from ``base``, the committed
    calibration) on the training rows."""
    from engine.uncertainty.features import FEATURES
    from engine.uncertainty.model import COMPOSED, UncertaintyModel
    models = {k: m for k, m in base.kinds.items() if k not in only} if only else {}
    chosen = {k: v for k, v in base.meta.get("features_chosen", {}).items() if k not in only} if only else {}

    def fit_group(name: str, rs: list[dict], kind: str) -> None:
        if only and name not in only:
            return
        stacks = [_sample(stack_for(r, kind), PIXELS_PER_ROW, i) for i, r in enumerate(rs)]
        errs = [_sample(r["err"], PIXELS_PER_ROW, i)[0] for i, r in enumerate(rs)]
        models[name], feats, rho = select_and_fit(stacks, errs, [r["photo"] for r in rs],
                                                  candidates=candidate_features(kind))
        chosen[name] = {"features": [FEATURES[f - 1] for f in feats], "held_out_rho": round(rho, 3)}
        print(f"  {name}: {chosen[name]}", file=sys.stderr, flush=True)

    for kind in SYNTH_KINDS:
        rs = [r for r in rows if r["stage"] == kind]
        if rs:
            fit_group(kind, rs, kind)
    comp = [r for r in rows if r["stage"] == "composed"]
    fit_group(COMPOSED, comp, "")
    for kind in SYNTH_KINDS:
        rs = [r for r in comp if dominant(r) == kind]
        if len({r["photo"] for r in rs}) >= 4:
            fit_group(f"{COMPOSED}:{kind}", rs, kind)
    return UncertaintyModel(models), chosen


def predict_row(model, r: dict, how: str, left: bool = True) -> np.ndarray:
    """The shipped map of a cached row: a stage by its kind's model; the composed result as
    ``how`` says (``pooled``, ``stage_model``, ``composed_model``), raised by the calibration's terms
    for the kinds the plan left unfixed (:func:`left_for_row`; ``left=False``: without them)."""
    key, kind = model_for_row(model, r, how)
    m = model.for_kind(key)
    levels = m.levels(m.score(stack_for(r, kind)))
    return model.with_left(levels, r["after"], left_for_row(r)) if left else levels


def left_for_row(r: dict) -> dict[str, float]:
    """The kinds found in a cached composed row's result that no kept stage fixed, as the session
    (``engine.uncertainty.left.left_unfixed``); none for a stage row."""
    from engine.uncertainty.left import left_unfixed
    return left_unfixed(r.get("kept", []), r["sev_in"], r["sev_out"]) if r["stage"] == "composed" else {}


def own_kind(r: dict) -> bool:
    """Whether a stage row's error is that stage's to fix: the photo shows the stage's kind (a
    synthetic degradation of it, the simulated camera's noise, a real pair of that kind). The project's
    decision (issue 15, ninth pass, made before any of its validation numbers): a stage's map is fitted
    and validated on such rows only; the composed map on every row, error left for other kinds included."""
    return r["stage"] == r["kind"]


def model_for_row(model, r: dict, how) -> tuple[str, str]:
    """``(model key, kind whose severities it reads)`` judging a cached row, as :func:`predict_row`."""
    from engine.uncertainty.model import COMPOSED, UNTOUCHED
    if r["stage"] == "composed" and \
            model.judge(COMPOSED, r["before"], r["after"], untouched_severity(r)) == UNTOUCHED:
        return UNTOUCHED, ""
    if r["stage"] != "composed":
        key, kind = (r["stage"], r["stage"]) if r["stage"] in SYNTH_KINDS else (COMPOSED, "")
    else:
        kind = dominant(r)
        key = COMPOSED
        if isinstance(how, dict):
            how = how.get(kind, "pooled")
        if kind and how == "composed_model" and f"{COMPOSED}:{kind}" in model.kinds:
            key = f"{COMPOSED}:{kind}"
        elif kind and how == "stage_model" and kind in model.kinds:
            key = kind
        else:
            kind = ""
    return key, kind


def fit(args) -> None:
    rows = [r for path in args.cache for r in load_rows(Path(path))[0]]
    train = [r for r in rows if r["group"].startswith("train")]
    from engine.uncertainty import default_model
    model, chosen = fit_models(train, args.only, default_model() if args.only else None)
    # which composed model, per dominant kind: chosen on the training photos themselves (the
    # validation stays unseen)
    scores: dict = {}
    comp = [r for r in train if r["stage"] == "composed"]
    for kind in SYNTH_KINDS:
        rs = [r for r in comp if dominant(r) == kind]
        if not rs:
            continue
        scores[kind] = {}
        for how in ("pooled", "stage_model", "composed_model"):
            scores[kind][how] = round(spearman(
                np.concatenate([predict_row(model, r, {kind: how}).ravel()[::7] for r in rs]),
                np.concatenate([r["err"].ravel()[::7] for r in rs])), 3)
    how = {kind: max(sc, key=sc.get) for kind, sc in scores.items()}
    model.meta = {"fitted_on": f"{len({r['photo'] for r in train})} photos spread over data/clean "
                               f"(benchmarks/uncertainty.py split_photos), central crops, synthetic degradations "
                               f"strength 0.3-0.8, --only KIND and automatic plans",
                  "composed_by": how, "composed_choice_rho_on_training": scores,
                  "features_chosen": chosen}
    out = SHIPPED_CALIBRATION
    out.write_text(model.to_json(), encoding="utf-8")
    print(f"wrote {out}; composed by {how} {scores}", file=sys.stderr)


def _criterion(scores: list[np.ndarray], errs: list[np.ndarray]) -> float:
    """The selection's measure: mean of the pooled Spearman ρ and the mean per-photo ρ."""
    pooled = spearman(np.concatenate(scores), np.concatenate(errs))
    return 0.5 * (pooled + float(np.mean([spearman(sc, e) for sc, e in zip(scores, errs, strict=True)])))


def choose(args) -> None:
    """Per model name (a stage kind, ``composed:KIND``, ``composed``), the ranking chosen by
    measurement on the training rows among every candidate calibration's models that apply (the
    calibrations in ``--calibrations``: e.g. the one on generic, change-map-like features and the
    one with each kind's physics; for a stage its kind's model, that kind's composed model and
    the pooled one) and a calibrated change map (the change alone, fitted on these rows); then
    its levels refitted on those rows (score → mean error, so the reliability by decile is on the
    diagonal where it was fitted: a stage's model on the stage rows of its kind, a composed model
    on the composed rows its kind dominates, the pooled ``composed`` model on what it judges:
    the results of no dominant kind and the generalist's stages, where a model selected and fitted
    on those rows is a candidate too (the calibrations fitted it on every result); the camera
    photos included)."""
    from engine.uncertainty.features import FEATURES
    from engine.uncertainty.model import COMPOSED, UncertaintyModel, fit_levels
    rows = [r for path in args.cache for r in load_rows(Path(path))[0]]
    train = [r for r in rows if r["group"].startswith("train")]
    cals = {Path(c).stem: UncertaintyModel.from_json(Path(c).read_text()) for c in args.calibrations}
    change_idx = [1 + FEATURES.index("change")]
    models, report = {}, {}

    def pick(name: str, rs: list[dict], kind: str, keys: list[str], refit: bool = False) -> None:
        stacks = [_sample(stack_for(r, kind), PIXELS_PER_ROW, i) for i, r in enumerate(rs)]
        errs = [_sample(r["err"], PIXELS_PER_ROW, i)[0] for i, r in enumerate(rs)]
        cands = {f"{c}:{k}": m.kinds[k] for c, m in cals.items() for k in keys if k in m.kinds}
        cands["change"] = _fit_selected(stacks, errs, change_idx)
        if refit:  # a model selected forward (held-out photos) and fitted on these very rows
            cands["refit"], feats, _ = select_and_fit(stacks, errs, [r["photo"] for r in rs])
            report[f"{name} refit features"] = [FEATURES[f - 1] for f in feats]
        scored = {n: round(_criterion([m.score(st) for st in stacks], errs), 3) for n, m in cands.items()}
        best = max(scored, key=scored.get)
        m = cands[best]
        x = np.concatenate(stacks, axis=1)
        models[name] = fit_levels(m.coef, m.score(x), np.concatenate(errs))
        report[name] = {"chosen": best, "criterion_on_training": scored, "rows": len(rs),
                        "photos": len({r["photo"] for r in rs})}
        print(f"  {name}: {best} {scored}", file=sys.stderr, flush=True)

    for kind in SYNTH_KINDS:
        rs = [r for r in train if r["stage"] == kind]
        if rs:
            pick(kind, rs, kind, [kind, f"{COMPOSED}:{kind}"])
    comp = [r for r in train if r["stage"] == "composed"]
    for kind in SYNTH_KINDS:
        rs = [r for r in comp if dominant(r) == kind]
        if len({r["photo"] for r in rs}) >= 4:
            pick(f"{COMPOSED}:{kind}", rs, kind, [kind, f"{COMPOSED}:{kind}"])
    # the pooled model judges (engine/uncertainty/session.py) only results of no dominant kind (no
    # stage kept, no kind found) and the generalist's stages: chosen among every model, fitted on those
    pooled = [r for r in comp if dominant(r) == ""] + \
        [r for r in train if r["stage"] not in SYNTH_KINDS + ("composed",)]
    pick(COMPOSED, pooled, "", sorted({k for m in cals.values() for k in m.kinds}), refit=True)
    chosen = {}
    for c, m in cals.items():
        for k, v in m.meta.get("features_chosen", {}).items():
            chosen.setdefault(c, {})[k] = v["features"]
    meta = {"fitted_on": f"{len({r['photo'] for r in train})} photos spread over data/clean "
                         f"(benchmarks/uncertainty.py split_photos), central crops, synthetic degradations "
                         f"strength 0.3-0.8 (--only KIND and automatic plans) and the simulated camera "
                         f"(engine/degrade/camera.py, automatic plan)",
            "composed_by": {k: "composed_model" for k in SYNTH_KINDS if f"{COMPOSED}:{k}" in models},
            "chosen_by_measurement_on_training": report, "candidate_features": chosen}
    out = SHIPPED_CALIBRATION
    out.write_text(UncertaintyModel(models, meta).to_json(), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)


#: Terms ``extend`` may add to a kind's shipped model (engine/uncertainty/features.py): errors that
#: scale with the brightness (exposure left, a brightening or deraining mistake) or the haze.
EXTENSIONS = {"haze": ("haze_depth_x_change", "luminance_x_change", "luminance_x_severity_after"),
              "lowlight": ("luminance_x_severity_after", "luminance_x_change"),
              "rain": ("luminance_x_change", "luminance_x_severity_after")}


def _held_out(stacks, errs, photos, idx) -> float:
    """The selection's measure (:func:`_criterion`) of the features ``idx`` fitted on 3 of
    :data:`FOLDS` folds of the training photos and scored on the fourth, averaged over the folds."""
    return _cross_validated(stacks, errs, photos, lambda s, e: _fit_selected(s, e, idx))


def _cross_validated(stacks, errs, photos, fit) -> float:
    """:func:`_criterion` of the model ``fit(stacks, errs)`` returns, fitted on 3 of :data:`FOLDS`
    folds of the training photos (split by photo) and scored on the fourth, averaged over the folds."""
    names = sorted(set(photos))
    fold = [names.index(p) % FOLDS for p in photos]
    scores = []
    for k in range(FOLDS):
        train = [i for i, f in enumerate(fold) if f != k]
        test = [i for i, f in enumerate(fold) if f == k]
        if train and test:
            m = fit([stacks[i] for i in train], [errs[i] for i in train])
            scores.append(_criterion([m.score(stacks[i]) for i in test], [errs[i] for i in test]))
    return float(np.mean(scores))


#: Terms ``extend --terms ensemble`` offers every haze, low-light and rain model: the spread of the
#: parameter-perturbation ensemble (engine/uncertainty/ensemble.py) at each pixel. ``--terms
#: ensemble_photo`` offers its photo mean too: the held-out training measure took it for low light
#: and the composed rain, and on the validation rows it took the synthetic low-light rows below
#: target (0.53 → 0.30 composed, 0.55 → 0.27 stage) and the real low-light stage from +0.12 to
#: −0.07: a photo-level level that does not transfer, as every photo-level measure before it
#: (benchmarks/results/uncertainty.md). Chosen after seeing those validation numbers: what ships
#: is ``--terms ensemble``.
ENSEMBLE_TERMS = ("ensemble_spread",)
ENSEMBLE_PHOTO_TERMS = ("ensemble_spread", "photo_ensemble_spread")


def extend(args) -> None:
    """Per model of ``--only`` (default: the haze, low-light and rain stage and composed models), the
    shipped model's features and the same with each term of :data:`EXTENSIONS` (and all of them)
    added, scored by the held-out training measure (:func:`_held_out`); the best replaces the
    shipped model (refitted on every training row it judges, levels included) when it beats the
    shipped features' score. The calibration file is first padded with zero coefficients for
    features added to engine/uncertainty/features.py since it was written."""
    from engine.uncertainty.features import FEATURES
    from engine.uncertainty.model import COMPOSED, UncertaintyModel, fit_levels
    path = SHIPPED_CALIBRATION
    raw = json.loads(path.read_text())
    old = raw["features"]
    if old != list(FEATURES[:len(old)]):
        raise SystemExit("the calibration's features are not a prefix of FEATURES; re-run fit/choose")
    for m in raw["kinds"].values():
        m["coef"] = list(m["coef"]) + [0.0] * (len(FEATURES) - len(old))
    raw["features"] = list(FEATURES)
    model = UncertaintyModel.from_json(json.dumps(raw))
    rows = [r for p in args.cache for r in load_rows(Path(p))[0]]
    train = [r for r in rows if r["group"].startswith("train")]
    comp = [r for r in train if r["stage"] == "composed"]
    report = {}
    for name in args.only or ["haze", f"{COMPOSED}:haze", "lowlight", f"{COMPOSED}:lowlight", "rain",
                              f"{COMPOSED}:rain"]:
        kind = name.split(":")[-1]
        rs = [r for r in comp if dominant(r) == kind] if name.startswith(COMPOSED) else \
            [r for r in train if r["stage"] == kind]
        stacks = [_sample(stack_for(r, kind), PIXELS_PER_ROW, i) for i, r in enumerate(rs)]
        errs = [_sample(r["err"], PIXELS_PER_ROW, i)[0] for i, r in enumerate(rs)]
        photos = [r["photo"] for r in rs]
        shipped = [i for i, c in enumerate(model.kinds[name].coef) if i and c != 0.0]
        terms = {"ensemble": ENSEMBLE_TERMS, "ensemble_photo": ENSEMBLE_PHOTO_TERMS}.get(args.terms, EXTENSIONS[kind])
        extra = [1 + FEATURES.index(f) for f in terms]
        sets = {"shipped": shipped, **{f"+{FEATURES[e - 1]}": shipped + [e] for e in extra}}
        if len(extra) > 1:
            sets["+all"] = shipped + extra
        scored = {k: round(_held_out(stacks, errs, photos, v), 3) for k, v in sets.items()}
        best = max(scored, key=lambda k: (scored[k], k == "shipped"))
        if scored[best] > scored["shipped"]:
            m = _fit_selected(stacks, errs, sets[best])
            model.kinds[name] = fit_levels(m.coef, m.score(np.concatenate(stacks, axis=1)), np.concatenate(errs))
        report[name] = {"chosen": best, "held_out_criterion": scored, "rows": len(rs), "photos": len(set(photos))}
        print(f"  {name}: {best} {scored}", file=sys.stderr, flush=True)
    key = "ensemble_by_measurement_on_training" if args.terms.startswith("ensemble") else \
        "extended_by_measurement_on_training"
    model.meta[key] = report
    path.write_text(model.to_json(), encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)


#: Whole-photo terms ``whole`` offers the haze, low-light and rain models (engine/uncertainty/features.py):
#: the analysed severity of the kind at the input and at the output, the analysed noise level, how
#: far the stage moved the photo, how dark the result is, the ensemble's photo mean.
PHOTO_TERMS = ("severity", "severity_after", "photo_noise", "photo_change", "photo_dark", "photo_ensemble_spread")


#: How much a candidate must beat the shipped score (levels refitted) by on the training measure to
#: replace it (the forward selection's step, :func:`_forward`). Added after seeing the validation numbers
#: of the choices without it (benchmarks/results/uncertainty.md).
MARGIN = 0.01


def _fit_offset(stacks, errs, coef: np.ndarray, term):
    """The shipped score ``coef`` with whole-photo terms added (``term``: a stack index or a tuple of
    them): log1p(error) ≈ a + b·score + Σ c·term by least squares on the rows (the per-pixel ranking
    within a photo stays the shipped one, the photo's level moves with the terms). Returns a
    :class:`KindModel` (levels fitted later)."""
    from engine.uncertainty.model import KindModel
    terms = list(term) if isinstance(term, (tuple, list)) else [term]
    x = np.concatenate(stacks, axis=1).astype(np.float64)
    design = np.stack([np.ones(x.shape[1]), coef @ x, *(x[t] for t in terms)])
    t = np.log1p(np.concatenate(errs).astype(np.float64))
    a, b, *c = np.linalg.lstsq(design.T, t, rcond=None)[0]
    new = b * np.asarray(coef, np.float64)
    new[0] += a
    for i, ci in zip(terms, c, strict=True):
        new[i] += ci
    return KindModel(new, np.array([0.0, 1.0]), np.array([0.0, 1.0]))


def _held_out_offset(stacks, errs, photos, coef, term) -> float:
    """:func:`_held_out` for :func:`_fit_offset` (4 folds of the training photos)."""
    return _cross_validated(stacks, errs, photos, lambda s, e: _fit_offset(s, e, coef, term))



def _write_calibration(model, meta_key: str, report: dict, calibration: str | None) -> None:
    """Writes ``model``, with ``report`` (how the fit chose) under ``meta[meta_key]``, to
    ``calibration`` (``--calibration``), else over the shipped calibration file."""
    model.meta[meta_key] = report
    out = Path(calibration) if calibration else SHIPPED_CALIBRATION
    out.write_text(model.to_json(), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)

def whole_fit(args) -> None:
    """Per haze, low-light and rain model (stage and ``composed:KIND``), refitted on the whole training
    photos (``collect --which whole``, group ``train-whole``) so that the photo-level level of the map is
    right on whole photos: candidates are the shipped model with only its levels refitted, the shipped
    features refitted, and the same with each whole-photo term of :data:`PHOTO_TERMS` added; each is scored
    by the held-out training measure on those photos (:func:`_held_out`: 4 folds by photo; the shipped
    score needs no fold, it is not fitted on them) and the best is kept, its levels (score → mean error)
    fitted on every whole training row it judges. Nothing is fitted or chosen on validation rows."""
    from engine.uncertainty.features import FEATURES
    from engine.uncertainty.model import COMPOSED, UncertaintyModel, fit_levels
    model = UncertaintyModel.from_json(SHIPPED_CALIBRATION.read_text())
    rows = [r for p in args.cache for r in load_rows(Path(p))[0]]
    train = [r for r in rows if r["group"] == "train-whole"]
    crops = [r for r in rows if r["group"].startswith("train") and r["group"] != "train-whole"]
    comp = [r for r in train if r["stage"] == "composed"]
    report = {}
    for name in args.only or [k for kind in WHOLE_KINDS for k in (kind, f"{COMPOSED}:{kind}")]:
        kind = name.split(":")[-1]
        rs = [r for r in comp if dominant(r) == kind] if name.startswith(COMPOSED) else \
            [r for r in train if r["stage"] == kind]
        if len({r["photo"] for r in rs}) < 8:
            print(f"  {name}: {len(rs)} rows, too few photos; kept", file=sys.stderr)
            continue
        stacks = [_sample(stack_for(r, kind), PIXELS_PER_ROW, i) for i, r in enumerate(rs)]
        errs = [_sample(r["err"], PIXELS_PER_ROW, i)[0] for i, r in enumerate(rs)]
        photos = [r["photo"] for r in rs]
        shipped = [i for i, c in enumerate(model.kinds[name].coef) if i and c != 0.0]
        sets = {"refit": shipped, **{f"+{t}": shipped + [1 + FEATURES.index(t)] for t in PHOTO_TERMS
                                     if 1 + FEATURES.index(t) not in shipped}}
        base = model.kinds[name].coef
        offsets = {f"levels+{t}": 1 + FEATURES.index(t) for t in PHOTO_TERMS}
        scored = {"levels": round(_criterion([model.kinds[name].score(st) for st in stacks], errs), 3)}
        scored.update({k: round(_held_out(stacks, errs, photos, v), 3) for k, v in sets.items()})
        scored.update({k: round(_held_out_offset(stacks, errs, photos, base, f), 3) for k, f in offsets.items()})
        # the crop training rows it judges, wholly held out from the whole-photo fit: a model must not
        # lose the 128 px crops to gain the whole photos
        cr = [r for r in crops if r["stage"] == "composed" and dominant(r) == kind] if name.startswith(COMPOSED) \
            else [r for r in crops if r["stage"] == kind]
        on_crops = {}
        if cr:
            cst = [_sample(stack_for(r, kind), PIXELS_PER_ROW, i) for i, r in enumerate(cr)]
            cer = [_sample(r["err"], PIXELS_PER_ROW, i)[0] for i, r in enumerate(cr)]
            for k in scored:
                cm = model.kinds[name] if k == "levels" else _fit_offset(stacks, errs, base, offsets[k]) \
                    if k in offsets else _fit_selected(stacks, errs, sets[k])
                on_crops[k] = round(_criterion([cm.score(st) for st in cst], cer), 3)
        total = {k: round(0.5 * (v + on_crops[k]), 3) if on_crops else v for k, v in scored.items()}
        best = max(total, key=lambda k: (total[k], k == "levels"))
        if total[best] < total["levels"] + MARGIN:  # as the forward selection: a term must earn its place
            best = "levels"
        if best == "levels":
            m = model.kinds[name]
        elif best in offsets:
            m = _fit_offset(stacks, errs, base, offsets[best])
        else:
            m = _fit_selected(stacks, errs, sets[best])
        model.kinds[name] = fit_levels(m.coef, m.score(np.concatenate(stacks, axis=1)), np.concatenate(errs))
        report[name] = {"chosen": best, "criterion": total, "held_out_whole": scored, "crops": on_crops,
                        "rows": len(rs), "photos": len(set(photos)), "crop_rows": len(cr)}
        print(f"  {name}: {best} {total}", file=sys.stderr, flush=True)
    _write_calibration(model, "whole_photos_by_measurement_on_training", report, args.calibration)


def fullsize(args) -> None:
    """The map on whole full-size photos (``collect --which polyu-full``), computed as the CLI computes
    it (:meth:`engine.uncertainty.UncertaintyModel.predict`, in bands) for every kept stage and the
    composed result: its mean, p95 and fraction above :data:`engine.uncertainty.summary.UNCERTAIN_LEVELS`
    against the same of the output's actual error, the Spearman ρ (every 7th pixel, and on 8×8 blocks)
    and the reliability by decile. ``--calibration``: several files, each scored (before → after)."""
    from engine.uncertainty import UncertaintyModel, default_model
    from engine.uncertainty.summary import UNCERTAIN_LEVELS
    cals = [(Path(c).stem, UncertaintyModel.from_json(Path(c).read_text())) for c in args.calibrations] \
        if args.calibrations else [("shipped", default_model())]
    report = {"machine": machine(), "rows": []}
    for path in args.cache:
        rows, _ = load_rows(Path(path))
        for r in rows:
            err = r["err"]
            entry = {"photo": r["photo"], "stage": r["stage"], "kept": r.get("kept"), "shape": list(err.shape),
                     "actual": {"mean": round(float(err.mean()), 2), "p95": round(float(np.percentile(err, 95)), 2),
                                "fraction_above": round(float((err > UNCERTAIN_LEVELS).mean()), 4)},
                     "sigma_mean": round(float(r["sigma"].mean()), 2), "maps": {}}
            for name, model in cals:
                key, kind = model_for_row(model, r, model.meta.get("composed_by", "pooled"))

                def pick(d, kind=kind):
                    return d.get(kind, 0.0) if kind else max(d.values(), default=0.0)
                t0 = time.perf_counter()
                pred = model.predict(r["before"], r["after"], key, noise_sigma=r["sigma"] / np.float32(255.0),
                                     severity=pick(r["sev_in"]), severity_after=pick(r["sev_out"]),
                                     left=left_for_row(r))
                seconds = time.perf_counter() - t0
                blocks = _stats([(pred, err)], 8)["pooled"]
                entry["maps"][name] = {
                    "model": key, "mean": round(float(pred.mean()), 2), "p95": round(float(np.percentile(pred, 95)), 2),
                    "fraction_above": round(float((pred > UNCERTAIN_LEVELS).mean()), 4),
                    "rho": round(spearman(pred.ravel()[::7], err.ravel()[::7]), 3), "rho_8x8": blocks,
                    "reliability": _reliability([(pred[::3, ::3], err[::3, ::3])]), "seconds": round(seconds, 1)}
            report["rows"].append(entry)
            print(json.dumps(entry), file=sys.stderr, flush=True)
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    lines = ["| photo | map | model | predicted mean / p95 / > 8 levels | actual mean / p95 / > 8 levels | ρ (8×8) |",
             "|---|---|---|---|---|---|"]
    for e in report["rows"]:
        a = e["actual"]
        for name, m in e["maps"].items():
            lines.append(f"| {e['photo']} | {e['stage']} ({name}) | {m['model']} | {m['mean']:.1f} / {m['p95']:.1f} / "
                         f"{100 * m['fraction_above']:.0f} % | {a['mean']:.1f} / {a['p95']:.1f} / "
                         f"{100 * a['fraction_above']:.0f} % | {m['rho']:+.2f} ({m['rho_8x8']:+.2f}) |")
    print("\n".join(lines))


#: The models ``noise`` refits: the noise stage's and the composed result's of a photo noise dominates.
NOISE_MODELS = ("noise", "composed:noise")


def noise_fit(args) -> None:
    """Refit the noise models (:data:`NOISE_MODELS`) on every training row they judge, the camera noise
    from weak to strong (``collect --which camera-iso``) included: candidates are the shipped score with
    its levels refitted, the shipped features plus the analysed noise level (``noise``, ``gain_x_noise``)
    refitted, a forward selection over the noise features (:func:`select_and_fit`), and the shipped and
    the selected features each with the photo's noise level (``photo_noise``: a denoiser's residual grows
    with the noise it removed, the same for the whole photo); each scored by the
    held-out training measure (:func:`_held_out`, 4 folds by photo; the shipped score is not fitted on
    these rows); a candidate must beat the refitted levels by :data:`MARGIN`. The levels (score → mean
    error) are then fitted on every training row the model judges, so a moderately noisy camera photo
    gets the few levels its residual has, not the strong synthetic noise's. Nothing is fitted or chosen
    on validation rows; the mean predicted and observed error per training set is printed."""
    from engine.uncertainty.features import FEATURES
    from engine.uncertainty.model import COMPOSED, UncertaintyModel, fit_levels
    model = UncertaintyModel.from_json(SHIPPED_CALIBRATION.read_text())
    rows = [r for p in args.cache for r in load_rows(Path(p))[0]]
    train = [r for r in rows if r["group"].startswith("train")]
    report = {}
    for name in args.only or NOISE_MODELS:
        kind = name.split(":")[-1]
        rs = [r for r in train if r["stage"] == "composed" and dominant(r) == kind] if name.startswith(COMPOSED) \
            else [r for r in train if r["stage"] == kind]
        stacks = [_sample(stack_for(r, kind), PIXELS_PER_ROW, i) for i, r in enumerate(rs)]
        errs = [_sample(r["err"], PIXELS_PER_ROW, i)[0] for i, r in enumerate(rs)]
        photos = [r["photo"] for r in rs]
        shipped = [i for i, c in enumerate(model.kinds[name].coef) if i and c != 0.0]
        noise_terms = [1 + FEATURES.index(t) for t in ("noise", "gain_x_noise")]
        sets = {"+noise": shipped + noise_terms[:1], "+noise+gain_x_noise": shipped + noise_terms}
        scored = {"levels": round(_criterion([model.kinds[name].score(st) for st in stacks], errs), 3)}
        scored.update({k: round(_held_out(stacks, errs, photos, v), 3) for k, v in sets.items()})
        selected, feats, rho = select_and_fit(stacks, errs, photos, candidates=candidate_features(kind))
        scored["selected"] = round(rho, 3)
        # the photo's noise level (the residual a denoiser leaves grows with it), with each score
        photo_term = 1 + FEATURES.index("photo_noise")
        sets.update({"+photo_noise": shipped + [photo_term], "selected+photo_noise": feats + [photo_term]})
        scored.update({k: round(_held_out(stacks, errs, photos, sets[k]), 3)
                       for k in ("+photo_noise", "selected+photo_noise")})
        best = max(scored, key=lambda k: (scored[k], k == "levels"))
        if scored[best] < scored["levels"] + MARGIN or name in (args.keep_ranking or ()):
            best = "levels"
        m = model.kinds[name] if best == "levels" else selected if best == "selected" else \
            _fit_selected(stacks, errs, sets[best])
        model.kinds[name] = fit_levels(m.coef, m.score(np.concatenate(stacks, axis=1)), np.concatenate(errs))
        levels = _levels_by_group(model.kinds[name], rs, stacks, errs)
        report[name] = {"chosen": best, "held_out_criterion": scored, "selected_features":
                        [FEATURES[f - 1] for f in feats], "rows": len(rs), "photos": len(set(photos)),
                        "mean_level_by_training_set": levels}
        print(f"  {name}: {json.dumps(report[name])}", file=sys.stderr, flush=True)
    _write_calibration(model, "noise_refit_by_measurement_on_training", report, args.calibration)


#: The families of training rows ``noise-stage`` scores a candidate on separately: the synthetic
#: white noise (``collect --which train``/``train2``, both plans) and the simulated camera's noise
#: (``camera``, ``camera-iso``). The noise stage meets both; its model must rank both.
NOISE_FAMILIES = {"synthetic": ("train", "train-auto"), "camera": ("train-camera",)}


def _family(group: str) -> str:
    if group in NOISE_FAMILIES["synthetic"]:
        return "synthetic"
    return "camera" if group.startswith(NOISE_FAMILIES["camera"]) else ""


def _family_criteria(stacks, errs, photos, families, fit) -> dict[str, float]:
    """:func:`_criterion` per family of :data:`NOISE_FAMILIES` of the model ``fit(stacks, errs)`` returns,
    fitted on 3 of :data:`FOLDS` folds of the training photos (split by photo, every family's rows
    together) and scored on the fourth fold's rows of that family, averaged over the folds."""
    names = sorted(set(photos))
    fold = [names.index(p) % FOLDS for p in photos]
    out: dict[str, list[float]] = {}
    for k in range(FOLDS):
        train = [i for i, f in enumerate(fold) if f != k]
        m = fit([stacks[i] for i in train], [errs[i] for i in train])
        for fam in sorted(set(families)):
            test = [i for i, f in enumerate(fold) if f == k and families[i] == fam]
            if len(test) >= 2:
                out.setdefault(fam, []).append(_criterion([m.score(stacks[i]) for i in test], [errs[i] for i in test]))
    return {fam: round(float(np.mean(v)), 3) for fam, v in out.items()}


def _forward_worst(stacks, errs, photos, families, candidates, start, max_features=7):
    """Forward selection (as :func:`_forward`) by the worst family's held-out criterion."""
    chosen, best = list(start), -1.0
    while len(chosen) < max_features:
        trial = {f: min(_family_criteria(stacks, errs, photos, families,
                                         lambda s, e, f=f: _fit_selected(s, e, chosen + [f])).values())
                 for f in candidates if f not in chosen}
        if not trial:
            break
        f, rho = max(trial.items(), key=lambda kv: kv[1])
        if rho < best + MARGIN:
            break
        chosen.append(f)
        best = rho
    return chosen, best


#: Levels a knot of a refitted noise stage model lies above the one before it at least (8-bit levels):
#: the isotonic levels are flat over long stretches of the score (pooled adjacent violators), and a
#: flat stretch gives its pixels one value, so the map loses the ranking its score has (the measure
#: scores the score; the map ships). 48 knots × 0.001 add at most 0.05 levels.
STRICT_STEP = 1e-3


def strictly_increasing(m):
    """``m`` (a :class:`engine.uncertainty.model.KindModel`) with its knot levels made strictly
    increasing by :data:`STRICT_STEP` per knot (and its knot scores too), so the map ranks pixels
    as the score does."""
    from engine.uncertainty.model import KindModel
    n = np.arange(len(m.knots_levels), dtype=np.float64)
    ks = np.maximum.accumulate(m.knots_score + n * 1e-9)
    return KindModel(m.coef, ks, m.knots_levels + n * STRICT_STEP)


def noise_stage_fit(args) -> None:
    """Refit the noise *stage* model (a stage's own map: the per-stage maps, the JSON's per-stage
    summaries and the plan rule) on every training noise stage row, synthetic white noise and the
    simulated camera's noise from weak to strong (``collect --which camera-iso``). Each candidate is
    scored by the held-out training measure (4 folds by photo) on each family of rows
    (:data:`NOISE_FAMILIES`) and judged by the worse of the two: the stage meets both, and a model
    that ranks camera noise at the cost of synthetic noise (the pooled measure's choice last time)
    is no improvement. Candidates: the shipped score (levels refitted), the shipped features plus the
    analysed noise level (``noise``, ``gain_x_noise``), plus the photo's noise level (``photo_noise``),
    and a forward selection by the same worse-family measure (from nothing and from the change). A
    candidate must beat the shipped score by :data:`MARGIN` on that measure. The levels are then
    fitted on every training row and made strictly increasing (:func:`strictly_increasing`). Nothing
    is fitted or chosen on validation rows. Its choice was not shipped (``benchmarks/results/
    uncertainty.md``, sixth pass: levels a floor of about 8 levels, the synthetic automatic-plan row
    lower); writes ``--calibration`` (default: the committed file)."""
    from engine.uncertainty.features import FEATURES
    from engine.uncertainty.model import UncertaintyModel, fit_levels
    model = UncertaintyModel.from_json(SHIPPED_CALIBRATION.read_text())
    rows = [r for p in args.cache for r in load_rows(Path(p))[0]]
    rs = [r for r in rows if r["group"].startswith("train") and r["stage"] == "noise" and _family(r["group"])]
    stacks = [_sample(stack_for(r, "noise"), PIXELS_PER_ROW, i) for i, r in enumerate(rs)]
    errs = [_sample(r["err"], PIXELS_PER_ROW, i)[0] for i, r in enumerate(rs)]
    photos = [r["photo"] for r in rs]
    families = [_family(r["group"]) for r in rs]
    shipped_model = model.kinds["noise"]
    shipped = [i for i, c in enumerate(shipped_model.coef) if i and c != 0.0]
    idx = {t: 1 + FEATURES.index(t) for t in ("noise", "gain_x_noise", "photo_noise", "change")}
    sets = {"+noise": shipped + [idx["noise"]], "+noise+gain_x_noise": shipped + [idx["noise"], idx["gain_x_noise"]],
            "+photo_noise": shipped + [idx["photo_noise"]]}
    scored = {"levels": _family_criteria(stacks, errs, photos, families, lambda s, e: shipped_model)}
    for name, feats in sets.items():
        scored[name] = _family_criteria(stacks, errs, photos, families, lambda s, e, f=feats: _fit_selected(s, e, f))
        print(f"  {name}: {scored[name]}", file=sys.stderr, flush=True)
    cands = candidate_features("noise")
    runs = [_forward_worst(stacks, errs, photos, families, cands, start) for start in ([], [idx["change"]])]
    selected, _ = max(runs, key=lambda run: run[1])
    sets["selected"] = selected
    scored["selected"] = _family_criteria(stacks, errs, photos, families, lambda s, e: _fit_selected(s, e, selected))
    worst = {k: min(v.values()) for k, v in scored.items()}
    best = max(worst, key=lambda k: (worst[k], k == "levels"))
    if worst[best] < worst["levels"] + MARGIN:
        best = "levels"
    m = shipped_model if best == "levels" else _fit_selected(stacks, errs, sets[best])
    model.kinds["noise"] = strictly_increasing(
        fit_levels(m.coef, m.score(np.concatenate(stacks, axis=1)), np.concatenate(errs)))
    levels = {}
    for group in sorted({r["group"] for r in rs}):
        ids = [i for i, r in enumerate(rs) if r["group"] == group]
        pred = np.concatenate([model.kinds["noise"].levels(model.kinds["noise"].score(stacks[i])) for i in ids])
        levels[group] = {"rows": len(ids), "predicted": round(float(pred.mean()), 2),
                         "observed": round(float(np.concatenate([errs[i] for i in ids]).mean()), 2)}
    report = {"chosen": best, "features": [FEATURES[f - 1] for f in (shipped if best == "levels" else sets[best])],
              "held_out_criterion_by_family": scored, "worst_family": worst,
              "selected_features": [FEATURES[f - 1] for f in selected], "rows": len(rs), "photos": len(set(photos)),
              "mean_level_by_training_set": levels}
    print(f"  noise: {json.dumps(report)}", file=sys.stderr, flush=True)
    _write_calibration(model, "noise_stage_refit_by_measurement_on_training", report, args.calibration)


#: Whole-photo terms ``noise-offset`` offers the noise stage's score as a photo-level offset: the photo's
#: analysed noise level, how far the stage moved the photo (both log1p, engine/uncertainty/features.py),
#: and the noise level with how dark the photo is (a stage's error is measured against the clean truth, so
#: on a dark photo it holds the exposure the noise stage leaves to the low-light stage: the training rows
#: with errors of ~70 levels). The third was added after seeing the first two's validation numbers.
NOISE_OFFSET_TERMS = ("photo_noise", "photo_change", ("photo_noise", "photo_dark"))
#: How much lower than the shipped score's held-out synthetic-family measure a candidate's may be
#: (the sixth pass: a score that lost the synthetic ranking took the automatic-plan row below target).
SYNTHETIC_SLACK = MARGIN


def _levels_held_out(stacks, errs, photos, families, groups, fit) -> dict:
    """The model ``fit(stacks, errs)`` returns, with its strictly increasing levels fitted on 3 of
    :data:`FOLDS` folds of the training photos and scored on the fourth: per family the Spearman
    measure (:func:`_criterion`) and the level error (mean over rows of |log1p(predicted row mean) −
    log1p(observed row mean)|, levels), and per training group the mean predicted and observed levels."""
    from engine.uncertainty.model import fit_levels
    names = sorted(set(photos))
    fold = [names.index(p) % FOLDS for p in photos]
    rho: dict[str, list[float]] = {}
    pred_mean = [0.0] * len(stacks)
    for k in range(FOLDS):
        train = [i for i, f in enumerate(fold) if f != k]
        m = fit([stacks[i] for i in train], [errs[i] for i in train])
        m = strictly_increasing(fit_levels(m.coef, m.score(np.concatenate([stacks[i] for i in train], axis=1)),
                                           np.concatenate([errs[i] for i in train])))
        for fam in sorted(set(families)):
            test = [i for i, f in enumerate(fold) if f == k and families[i] == fam]
            if len(test) >= 2:
                rho.setdefault(fam, []).append(_criterion([m.score(stacks[i]) for i in test], [errs[i] for i in test]))
        for i in (i for i, f in enumerate(fold) if f == k):
            pred_mean[i] = float(m.levels(m.score(stacks[i])).mean())
    obs = [float(e.mean()) for e in errs]
    gap = {fam: round(float(np.mean([abs(np.log1p(pred_mean[i]) - np.log1p(obs[i]))
                                     for i in range(len(stacks)) if families[i] == fam])), 3)
           for fam in sorted(set(families))}
    by_group = {g: {"rows": sum(x == g for x in groups),
                    "predicted": round(float(np.mean([pred_mean[i] for i in range(len(groups)) if groups[i] == g])), 2),
                    "observed": round(float(np.mean([obs[i] for i in range(len(groups)) if groups[i] == g])), 2)}
                for g in sorted(set(groups))}
    return {"rho": {f: round(float(np.mean(v)), 3) for f, v in rho.items()}, "level_gap": gap,
            "row_level_rho": round(spearman(np.asarray(pred_mean), np.asarray(obs)), 3), "by_group": by_group}


def noise_offset_fit(args) -> None:
    """The noise *stage* model with a photo-level offset: the shipped score (its ranking within a photo)
    plus one whole-photo term of :data:`NOISE_OFFSET_TERMS`, log1p(error) ≈ a + b·score + c·term by least
    squares (:func:`_fit_offset`), so the levels follow the photo's noise strength (a σ ≈ 2 camera photo
    against σ ≈ 30 synthetic noise) where the shipped levels sit at about 16 and the sixth pass's refit at
    about 8. Candidates: the shipped score (levels refitted) and it with each term. All scored held out
    (4 folds by photo, levels refitted in each fold, :func:`_levels_held_out`) on the synthetic and the
    camera noise stage rows (:data:`NOISE_FAMILIES`). Rule, fixed before any validation number of this
    pass: a candidate qualifies if its worse family's Spearman measure beats the shipped score's by
    :data:`MARGIN` or more and its synthetic family's is no more than :data:`SYNTHETIC_SLACK` below the
    shipped score's; among those, the lowest level error (mean of the two families) wins, if it is below
    the shipped score's; else the shipped score stays. The winner's levels are then fitted on every
    training row and made strictly increasing (the shipped score's too). Nothing is fitted or chosen on
    validation rows; writes ``--calibration``."""
    from engine.uncertainty.features import FEATURES
    from engine.uncertainty.model import UncertaintyModel, fit_levels
    model = UncertaintyModel.from_json(SHIPPED_CALIBRATION.read_text())
    rows = [r for p in args.cache for r in load_rows(Path(p))[0]]
    rs = [r for r in rows if r["group"].startswith("train") and r["stage"] == "noise" and _family(r["group"])]
    stacks = [_sample(stack_for(r, "noise"), PIXELS_PER_ROW, i) for i, r in enumerate(rs)]
    errs = [_sample(r["err"], PIXELS_PER_ROW, i)[0] for i, r in enumerate(rs)]
    photos, families, groups = [r["photo"] for r in rs], [_family(r["group"]) for r in rs], [r["group"] for r in rs]
    shipped = model.kinds["noise"]
    fits = {"levels": lambda s, e: shipped}
    for t in NOISE_OFFSET_TERMS:
        names = t if isinstance(t, tuple) else (t,)
        term = tuple(1 + FEATURES.index(n) for n in names)
        fits["levels+" + "+".join(names)] = lambda s, e, f=term: _fit_offset(s, e, shipped.coef, f)
    scored = {}
    for name, fit in fits.items():
        scored[name] = _levels_held_out(stacks, errs, photos, families, groups, fit)
        print(f"  {name}: {json.dumps(scored[name])}", file=sys.stderr, flush=True)
    base = scored["levels"]
    ok = {k: v for k, v in scored.items() if k != "levels"
          and min(v["rho"].values()) >= min(base["rho"].values()) + MARGIN
          and v["rho"]["synthetic"] >= base["rho"]["synthetic"] - SYNTHETIC_SLACK}
    gap = {k: float(np.mean(list(v["level_gap"].values()))) for k, v in scored.items()}
    best = min(ok, key=gap.get) if ok else "levels"
    if gap[best] >= gap["levels"]:
        best = "levels"
    if args.candidate:  # for the record: a candidate the rule did not choose, to validate it anyway
        best = args.candidate
    m = fits[best](stacks, errs)
    model.kinds["noise"] = strictly_increasing(
        fit_levels(m.coef, m.score(np.concatenate(stacks, axis=1)), np.concatenate(errs)))
    report = {"chosen": best, "held_out": scored, "qualified": sorted(ok), "rows": len(rs),
              "photos": len(set(photos))}
    print(f"  noise: chosen {best}", file=sys.stderr, flush=True)
    _write_calibration(model, "noise_stage_offset_by_measurement_on_training", report, args.calibration)


def counts_for_noise_stage(r: dict) -> bool:
    """Whether a noise stage training row's error is the noise stage's to fix: the photo was degraded
    by noise (synthetic noise, or the simulated camera, whose rows are all of kind ``noise``). A row of
    another kind where the automatic plan ran the noise stage (jpeg, haze, low light) is left out: its
    error against the clean photo is mostly that other kind's (the two low-light crops: 137 and 154
    levels of darkness no noise stage could fix), which pool-adjacent-violators spreads over the lowest
    knots. Rule fixed before any validation number of this (eighth) pass."""
    return r["stage"] == "noise" and r["kind"] == "noise"


def _map_held_out(stacks, errs, photos, families, fit_map, shipped) -> dict:
    """The map (levels of the shipped score) ``fit_map(stacks, errs)`` returns, fitted on 3 of
    :data:`FOLDS` folds of the training photos and scored on the fourth, against ``shipped`` (the
    committed map) on the same rows: per family the Spearman measure of the *map* (:func:`_criterion`
    on levels, so flat stretches count as ties) and the level error (mean over rows of
    |log1p(predicted row mean) − log1p(observed row mean)|, 8-bit levels)."""
    names = sorted(set(photos))
    fold = [names.index(p) % FOLDS for p in photos]
    out = {"candidate": {}, "shipped": {}}
    pred = {"candidate": [0.0] * len(stacks), "shipped": [0.0] * len(stacks)}
    for k in range(FOLDS):
        train = [i for i, f in enumerate(fold) if f != k]
        m = fit_map([stacks[i] for i in train], [errs[i] for i in train])
        for name, mm in (("candidate", m), ("shipped", shipped)):
            for fam in sorted(set(families)):
                test = [i for i, f in enumerate(fold) if f == k and families[i] == fam]
                if len(test) >= 2:
                    out[name].setdefault(fam, []).append(
                        _criterion([mm.levels(mm.score(stacks[i])) for i in test], [errs[i] for i in test]))
            for i in (i for i, f in enumerate(fold) if f == k):
                pred[name][i] = float(mm.levels(mm.score(stacks[i])).mean())
    obs = [float(e.mean()) for e in errs]
    report = {}
    for name in out:
        gap = {fam: round(float(np.mean([abs(np.log1p(pred[name][i]) - np.log1p(obs[i]))
                                         for i in range(len(stacks)) if families[i] == fam])), 3)
               for fam in sorted(set(families))}
        report[name] = {"rho": {f: round(float(np.mean(v)), 3) for f, v in out[name].items()}, "level_gap": gap}
    return report


def noise_left_fit(args) -> None:
    """The noise *stage* map's levels refitted on the error left for that stage to fix: the shipped
    score (its ranking unchanged) with its isotonic levels (:func:`engine.uncertainty.model.fit_levels`)
    fitted on the training noise stage rows that :func:`counts_for_noise_stage` (synthetic and simulated
    camera noise), in two forms: ``isotonic`` (non-decreasing, as shipped) and ``strict``
    (:func:`strictly_increasing`). Scored held out (4 folds by photo) per family
    (:data:`NOISE_FAMILIES`) on the counted rows against the committed map on the same rows. Rule,
    fixed before any validation number of this pass: a form qualifies if its synthetic family's map
    measure is at most :data:`MARGIN` below the committed map's and its level error (mean of the two
    families) is lower than the committed map's; the lowest level error among those wins, else the
    committed map stays. The winner's levels are fitted on every counted training row. Nothing is fitted
    or chosen on validation rows; starts from ``--base`` (default: the committed file) and writes
    ``--calibration`` (default: the committed file). Its choice
    (``strict``) ships alone since the tenth pass: judged on its own kind's photos it passed every check of
    the ninth pass's gate, which had bundled it with the composed term of :func:`left_fit` (that term
    failed); shipping it without the term was decided after seeing those numbers
    (``benchmarks/results/uncertainty.md``)."""
    from engine.uncertainty.model import UncertaintyModel, fit_levels
    model = UncertaintyModel.from_json(Path(args.base or SHIPPED_CALIBRATION).read_text())
    rows = [r for p in args.cache for r in load_rows(Path(p))[0]]
    every = [r for r in rows if r["group"].startswith("train") and r["stage"] == "noise" and _family(r["group"])]
    rs = [r for r in every if counts_for_noise_stage(r)]
    left_out = [(r["group"], r["kind"], r["photo"], round(float(r["err"].mean()), 1))
                for r in every if not counts_for_noise_stage(r)]
    print(f"  counted {len(rs)} of {len(every)} rows; left out {left_out}", file=sys.stderr, flush=True)
    stacks = [_sample(stack_for(r, "noise"), PIXELS_PER_ROW, i) for i, r in enumerate(rs)]
    errs = [_sample(r["err"], PIXELS_PER_ROW, i)[0] for i, r in enumerate(rs)]
    photos, families = [r["photo"] for r in rs], [_family(r["group"]) for r in rs]
    shipped = model.kinds["noise"]

    def isotonic(s, e):
        return fit_levels(shipped.coef, shipped.score(np.concatenate(s, axis=1)), np.concatenate(e))

    forms = {"isotonic": isotonic, "strict": lambda s, e: strictly_increasing(isotonic(s, e))}
    scored = {name: _map_held_out(stacks, errs, photos, families, f, shipped) for name, f in forms.items()}
    for name, v in scored.items():
        print(f"  {name}: {json.dumps(v)}", file=sys.stderr, flush=True)
    base = scored["isotonic"]["shipped"]
    gap = {k: float(np.mean(list(v["candidate"]["level_gap"].values()))) for k, v in scored.items()}
    ok = [k for k, v in scored.items() if v["candidate"]["rho"]["synthetic"] >= base["rho"]["synthetic"] - MARGIN
          and gap[k] < float(np.mean(list(base["level_gap"].values())))]
    best = min(ok, key=gap.get) if ok else "shipped"
    if args.candidate:  # for the record: a form the rule did not choose, to validate it anyway
        best = args.candidate
    if best != "shipped":
        model.kinds["noise"] = forms[best](stacks, errs)
    report = {"chosen": best, "held_out": scored, "qualified": ok, "rows": len(rs), "photos": len(set(photos)),
              "left_out": left_out, "knots_levels": [round(float(x), 2) for x in model.kinds["noise"].knots_levels]}
    print(f"  noise: chosen {best}; levels {report['knots_levels']}", file=sys.stderr, flush=True)
    _write_calibration(model, "noise_stage_levels_on_error_left_for_it", report, args.calibration)


#: The forms and coefficients ``left`` offers the composed map's term for darkness left unfixed
#: (``engine/uncertainty/left.py``: the map raised to at least, or added, coefficient × exposure gap).
LEFT_COEFS = tuple(round(0.05 * i, 2) for i in range(1, 41))


def _fit_left_coef(samples, form: str) -> float:
    """The coefficient of :data:`LEFT_COEFS` whose term (``form``) makes the rows' maps closest to their
    error: least mean squared log1p difference per row, rows equally weighted. ``samples``: per row
    ``(map, exposure gap, error)`` pixel samples, 8-bit levels. 0 when there are no rows."""
    from engine.uncertainty.left import LeftTerm
    if not samples:
        return 0.0

    def loss(c):
        t = LeftTerm(c, form)
        return float(np.mean([np.mean((np.log1p(_combine(t, p, g)) - np.log1p(e)) ** 2) for p, g, e in samples]))
    return min(LEFT_COEFS, key=loss)


def _combine(term, levels: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """``term`` (a :class:`engine.uncertainty.left.LeftTerm`) combined with ``levels`` given the gap."""
    g = np.float32(term.coef) * gap
    return np.maximum(levels, g) if term.form == "max" else levels + g


def left_fit(args) -> None:
    """The composed map's term for darkness the plan left unfixed (``engine/uncertainty/left.py``): on a
    composed result where low light is found (analysis of the result) and no low-light stage was kept,
    the map is raised to at least (``max``) or added (``sum``) coefficient × the exposure gap (what each
    pixel lacks if the photo's highlights belong at white). Fitted on the composed training rows
    (:data:`NOISE_FAMILIES`: synthetic crops, both plans, and the simulated camera), the coefficient per
    form by least squares in log1p on the rows the term touches. Scored held out (4 folds by photo: the
    coefficient fitted on 3 folds' touched rows, applied to the fourth's) against the map without the
    term on the same rows: per family the composed measure (:func:`_criterion`, every composed row,
    all their error), and the level error on the touched rows (mean |log1p(predicted row mean) −
    log1p(observed row mean)|). Rule, fixed before any validation number of this (ninth) pass: a form
    qualifies if no family's measure falls (3 decimals) and the touched rows' level error is lower; the
    lowest level error wins, its coefficient then fitted on every touched row; else no term. Nothing is
    fitted or chosen on validation rows. Writes ``--calibration`` (default: the committed file), from
    ``--base`` (default: the committed file)."""
    from engine.uncertainty.left import FORMS, LOWLIGHT_KIND, LeftTerm, exposure_gap, highlight
    from engine.uncertainty.model import UncertaintyModel
    model = UncertaintyModel.from_json(Path(args.base or SHIPPED_CALIBRATION).read_text())
    model.left = {}
    how = model.meta.get("composed_by", "pooled")
    rows = [r for p in args.cache for r in load_rows(Path(p))[0]
            if r["group"].startswith("train") and r["stage"] == "composed" and _family(r["group"])]
    samples, touched = [], []
    for i, r in enumerate(rows):
        plane = np.stack([predict_row(model, r, how, left=False), exposure_gap(r["after"], highlight(r["after"])),
                          r["err"]])
        samples.append(tuple(_sample(plane, PIXELS_PER_ROW, i)))
        touched.append(LOWLIGHT_KIND in left_for_row(r))
        for k in ("raw", "spread", "before", "after"):  # the arrays are not needed again
            r.pop(k, None)
    photos, families = [r["photo"] for r in rows], [_family(r["group"]) for r in rows]
    names = sorted(set(photos))
    fold = [names.index(p) % FOLDS for p in photos]
    touched_ids = [i for i, t in enumerate(touched) if t]
    which = [(rows[i]["group"], rows[i]["kind"], rows[i]["photo"]) for i in touched_ids]
    print(f"  {len(rows)} composed rows, {len(touched_ids)} touched: {which}", file=sys.stderr, flush=True)

    def score(pred: list[np.ndarray]) -> dict:
        fam = {f: round(_criterion([pred[i] for i in range(len(rows)) if families[i] == f],
                                   [samples[i][2] for i in range(len(rows)) if families[i] == f]), 3)
               for f in sorted(set(families))}
        gap = round(float(np.mean([abs(np.log1p(pred[i].mean()) - np.log1p(samples[i][2].mean()))
                                   for i in touched_ids])), 3) if touched_ids else 0.0
        return {"criterion": fam, "touched_level_error": gap,
                "touched": [(rows[i]["photo"], round(float(pred[i].mean()), 1), round(float(samples[i][2].mean()), 1))
                            for i in touched_ids]}

    scored = {"none": score([s[0] for s in samples])}
    for form in FORMS:
        pred = [s[0] for s in samples]
        coefs = []
        for k in range(FOLDS):
            c = _fit_left_coef([samples[i] for i in touched_ids if fold[i] != k], form)
            coefs.append(c)
            for i in touched_ids:
                if fold[i] == k:
                    pred[i] = _combine(LeftTerm(c, form), samples[i][0], samples[i][1])
        scored[form] = {**score(pred), "fold_coefs": coefs}
        print(f"  {form}: {json.dumps(scored[form])}", file=sys.stderr, flush=True)
    base = scored["none"]
    ok = [f for f in FORMS if all(scored[f]["criterion"][fam] >= base["criterion"][fam] for fam in base["criterion"])
          and scored[f]["touched_level_error"] < base["touched_level_error"]]
    best = min(ok, key=lambda f: scored[f]["touched_level_error"]) if ok else "none"
    if best != "none":
        c = _fit_left_coef([samples[i] for i in touched_ids], best)
        if c > 0.0:
            model.left = {LOWLIGHT_KIND: LeftTerm(c, best)}
    report = {"chosen": best, "term": {k: t.to_dict() for k, t in model.left.items()}, "held_out": scored,
              "qualified": ok, "rows": len(rows), "photos": len(names), "touched_rows": len(touched_ids)}
    print(f"  left: chosen {best} {report['term']}", file=sys.stderr, flush=True)
    _write_calibration(model, "left_unfixed_by_measurement_on_training", report, args.calibration)


#: The ship rule of the ninth pass (issue 15: the noise stage map fitted on its own kind's error,
#: ``noise-left``, and the composed map's term for darkness left unfixed, ``left``, ship together or not
#: at all), fixed here before any of its validation numbers. Pooled ρ, 3 decimals, before → after:
#: (a) the automatic-plan noise stage row (``stage/synthetic-auto/noise``, its own kind's photos) is at
#: least :data:`GATE_AUTO_NOISE_STAGE`, and no automatic-plan composed row (all error counted) falls by
#: more than :data:`GATE_TOLERANCE`; (b) the ``--only`` noise stage row (``stage/synthetic/noise``) does
#: not fall; (c) no real-pair row (stage or composed) falls by more than :data:`GATE_TOLERANCE`; (d) on
#: the whole real photos, every map's share above 8 levels is no farther from the actual share, and the
#: noise stage maps' (summed over the photos) is nearer.
GATE_AUTO_NOISE_STAGE = 0.49
GATE_TOLERANCE = 0.02


def gate_rows(model, rows: list[dict]) -> dict[str, float]:
    """Pooled ρ of ``model``'s maps with the error per validation row: ``stage/GROUP/KIND`` (the stage's
    own kind's photos, :func:`own_kind`), ``composed/GROUP/KIND`` and, for the record,
    ``stage-any/GROUP/noise`` (every noise stage row, other kinds' photos included: the earlier definition)."""
    how = model.meta.get("composed_by", "pooled")
    groups: dict[str, list] = {}
    for r in rows:
        g = r["group"].split(":")[0]
        if r["stage"] == "composed":
            keys = [f"composed/{g}/{r['kind']}"]
        elif r["stage"] in SYNTH_KINDS:
            keys = ([f"stage/{g}/{r['stage']}"] if own_kind(r) else []) + \
                ([f"stage-any/{g}/noise"] if r["stage"] == "noise" else [])
        else:
            keys = []
        if keys:
            pair = (predict_row(model, r, how), r["err"])
            for k in keys:
                groups.setdefault(k, []).append(pair)
    return {k: _stats(v)["pooled"] for k, v in sorted(groups.items())}


def gate_verdict(before: dict[str, float], after: dict[str, float], full: list[dict] | None,
                 names: tuple[str, str]) -> dict:
    """The ship rule (:data:`GATE_AUTO_NOISE_STAGE`) on the rows of :func:`gate_rows` before and after and
    the whole photos (``full``: :func:`fullsize`'s rows, maps named ``names`` = (before, after)): every
    check with its numbers and whether it holds, and ``ship`` when all hold."""
    checks = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"check": name, "ok": bool(ok), "detail": detail})
    row = "stage/synthetic-auto/noise"
    check("(a) automatic-plan noise stage row", after.get(row, -1.0) >= GATE_AUTO_NOISE_STAGE,
          f"{row}: {before.get(row)} -> {after.get(row)} (at least {GATE_AUTO_NOISE_STAGE})")
    for k in sorted(k for k in before if k.startswith("composed/synthetic-auto/")):
        check("(a) automatic-plan composed row", after[k] >= before[k] - GATE_TOLERANCE,
              f"{k}: {before[k]} -> {after[k]} (fall at most {GATE_TOLERANCE})")
    row = "stage/synthetic/noise"
    check("(b) noise stage row", after.get(row, -1.0) >= before.get(row, 1.0),
          f"{row}: {before.get(row)} -> {after.get(row)}")
    for k in sorted(k for k in before if k.split("/")[0] in ("stage", "composed") and k.split("/")[1] == "real"):
        check("(c) real-pair row", after[k] >= before[k] - GATE_TOLERANCE,
              f"{k}: {before[k]} -> {after[k]} (fall at most {GATE_TOLERANCE})")
    if full is None:
        check("(d) whole photos", False, "no whole-photo report")
    else:
        near = {"before": 0.0, "after": 0.0}
        for e in full:
            actual = e["actual"]["fraction_above"]
            b, a = (e["maps"][n]["fraction_above"] for n in names)
            check("(d) whole photo share", abs(a - actual) <= abs(b - actual),
                  f"{e['photo']} {e['stage']}: {100 * b:.0f} % -> {100 * a:.0f} % (actual {100 * actual:.0f} %)")
            if e["stage"] == "noise":
                near["before"] += abs(b - actual)
                near["after"] += abs(a - actual)
        check("(d) noise stage share nearer", near["after"] < near["before"],
              f"sum of |share - actual|: {near['before']:.3f} -> {near['after']:.3f}")
    return {"ship": all(c["ok"] for c in checks), "checks": checks}


def _run_gate(args, verdict_of) -> None:
    """Scores ``--calibrations BEFORE AFTER`` on the ``--caches`` rows, applies ``verdict_of(before, after,
    names)`` (a ship rule), writes ``--json`` and prints the rows and the verdict (markdown)."""
    from engine.uncertainty import UncertaintyModel
    rows = [r for p in args.caches for r in load_rows(Path(p))[0]]
    names = tuple(Path(c).stem for c in args.calibrations)
    scores = [gate_rows(UncertaintyModel.from_json(Path(c).read_text()), rows) for c in args.calibrations]
    verdict = verdict_of(scores[0], scores[1], names)
    Path(args.json).write_text(json.dumps({"machine": machine(), "calibrations": args.calibrations,
                                           "rows": dict(zip(names, scores, strict=True)), **verdict}, indent=1) + "\n")
    lines = [f"| row | {names[0]} | {names[1]} |", "|---|---|---|"]
    lines += [f"| {k} | {scores[0][k]:+.2f} | {scores[1].get(k, float('nan')):+.2f} |" for k in sorted(scores[0])]
    lines += ["", "| check | holds | numbers |", "|---|---|---|"]
    lines += [f"| {c['check']} | {'yes' if c['ok'] else '**no**'} | {c['detail']} |" for c in verdict["checks"]]
    lines += ["", f"Ship: **{'yes' if verdict['ship'] else 'no'}**"]
    print("\n".join(lines))


def gate(args) -> None:
    """The ninth pass's ship rule (:func:`gate_verdict`) for ``--calibrations BEFORE AFTER`` on the
    validation rows (``--caches``) and the whole photos (``--full-json``, written by ``fullsize
    --calibrations BEFORE AFTER``); writes ``--json`` and prints the verdict (markdown)."""
    full = json.loads(Path(args.full_json).read_text())["rows"] if args.full_json else None
    _run_gate(args, lambda before, after, names: gate_verdict(before, after, full, names))


#: The models ``rain`` refits: the rain stage's and the composed result's of a photo rain dominates.
RAIN_MODELS = ("rain", "composed:rain")
#: The families of training rows ``rain`` scores a candidate on separately: the table's rain generator
#: (``engine.degrade``: thin straight streaks, ``collect --which train``/``train2``, both plans) and the
#: realistic one (``engine.degrade.weather.rain_layers``: layered, wide, blurred, tinted streaks and a veil,
#: ``collect --which rain-realistic`` crops and ``whole`` photos) and that rain laid over itself (``heavy``,
#: ``collect --which rain-heavy``: added after the first refit's validation, twelfth pass). A family with
#: no rows (its collection not given) is not scored. The rain models meet all three.
RAIN_FAMILIES = {"table": ("train", "train-auto"), "realistic": ("train-rainreal-auto", "train-rainreal-only",
                                                                  "train-whole"),
                 "heavy": ("train-rainheavy-auto", "train-rainheavy-only")}
#: What a rain model may add to its shipped features or select from beyond the rain candidates
#: (:func:`candidate_features`): the analysed noise where a stage amplified it and the photo's noise level
#: (what a derainer leaves, streak residue and the veil's grain, reads as noise to the analysis).
RAIN_EXTRA = ("gain_x_noise", "photo_noise")
#: The widths (px) ``streak-width`` offers ``engine.uncertainty.features.STREAK_WIDE_WIDTH``.
STREAK_WIDTHS = (5, 9, 15, 25)


def streak_width(args) -> None:
    """For each width of :data:`STREAK_WIDTHS`, the Spearman criterion (:func:`_criterion`: mean of the pooled
    and the per-photo ρ) of the output's bright lines narrower than it (``log1p`` of their local mean in levels,
    as ``engine.uncertainty.features._streaks`` at that width) with the error of the composed training rows of
    rain photos, per family of :data:`RAIN_FAMILIES`; the width whose worst family is best is the one to use.
    Training rows only; nothing is fitted."""
    import cv2

    from engine.uncertainty.features import _box, _grey

    def lines(grey: np.ndarray, width: int) -> np.ndarray:  # engine.uncertainty.features._streaks at another width
        opened = cv2.morphologyEx(grey, cv2.MORPH_OPEN, np.ones((1, width), np.uint8),
                                  borderType=cv2.BORDER_REFLECT)
        return _box(grey - opened) * np.float32(255.0)
    rows = [r for p in args.cache for r in load_rows(Path(p))[0]]
    rows = [r for r in rows if r["stage"] == "composed" and r["kind"] == "rain" and _rain_family(r["group"])]
    report = {}
    for width in STREAK_WIDTHS:
        planes = [np.log1p(lines(_grey(r["after"]), width))[::2, ::2].ravel() for r in rows]
        errs = [r["err"][::2, ::2].ravel() for r in rows]
        report[width] = {fam: round(_criterion([p for p, r in zip(planes, rows, strict=True)
                                                 if _rain_family(r["group"]) == fam],
                                                [e for e, r in zip(errs, rows, strict=True)
                                                 if _rain_family(r["group"]) == fam]), 3)
                         for fam in sorted({_rain_family(r["group"]) for r in rows})}
        print(f"  {width} px: {report[width]}", file=sys.stderr, flush=True)
    best = max(report, key=lambda w: min(report[w].values()))
    print(json.dumps({"machine": machine(), "criterion_by_width": report, "chosen": best}, indent=1))


def _rain_family(group: str) -> str:
    return next((fam for fam, groups in RAIN_FAMILIES.items() if group in groups), "")


def rain_rows(rows: list[dict], name: str) -> list[dict]:
    """The training rows the rain model ``name`` judges: a rain stage on a rain photo (:func:`own_kind`),
    or a composed result rain dominates (:func:`dominant`)."""
    train = [r for r in rows if r["group"].startswith("train")]
    if name.startswith("composed"):
        return [r for r in train if r["stage"] == "composed" and dominant(r) == "rain"]
    return [r for r in train if r["stage"] == "rain" and own_kind(r)]


def rain_fit(args) -> None:
    """Refit the rain models (:data:`RAIN_MODELS`) on every training row they judge, the realistic rain
    (``collect --which rain-realistic``, ``whole``) beside the table's: candidates are the shipped score with
    its levels refitted (``levels``), the shipped features plus each of the noise terms (``noise``,
    :data:`RAIN_EXTRA`) refitted, and a forward selection over the rain candidates and :data:`RAIN_EXTRA`
    by the worse family's held-out criterion (:func:`_forward_worst`); each is scored by the held-out
    training measure per family of :data:`RAIN_FAMILIES` (:func:`_family_criteria`, 4 folds by photo; the
    shipped score is not fitted on these rows) and judged by the worse family (a map must keep the table's
    rain it ranks to gain the realistic). A candidate must beat ``levels`` by :data:`MARGIN`. The levels
    (score → mean error) are then fitted on every training row the model judges and made strictly increasing
    (:func:`strictly_increasing`: a flat stretch of levels ties pixels the score ranks). Nothing is fitted
    or chosen on validation rows; the mean predicted and observed error per training group is printed."""
    from engine.uncertainty.features import FEATURES
    from engine.uncertainty.model import UncertaintyModel, fit_levels
    model = UncertaintyModel.from_json(Path(args.base).read_text() if args.base else SHIPPED_CALIBRATION.read_text())
    rows = [r for p in args.cache for r in load_rows(Path(p))[0]]
    report = {}
    for name in args.only or RAIN_MODELS:
        rs = rain_rows(rows, name)
        stacks = [_sample(stack_for(r, "rain"), PIXELS_PER_ROW, i) for i, r in enumerate(rs)]
        errs = [_sample(r["err"], PIXELS_PER_ROW, i)[0] for i, r in enumerate(rs)]
        photos = [r["photo"] for r in rs]
        families = [_rain_family(r["group"]) for r in rs]
        shipped = [i for i, c in enumerate(model.kinds[name].coef) if i and c != 0.0]
        extra = [1 + FEATURES.index(t) for t in ("noise",) + RAIN_EXTRA]
        sets = {f"+{FEATURES[t - 1]}": shipped + [t] for t in extra if t not in shipped}
        both = (1 + FEATURES.index("noise"), 1 + FEATURES.index("photo_noise"))
        sets["+noise+photo_noise"] = shipped + [t for t in both if t not in shipped]
        fixed = model.kinds[name]
        fams = sorted({f for f in families if f})
        scored = {"levels": {fam: round(_criterion([fixed.score(stacks[i]) for i, f in enumerate(families) if f == fam],
                                                   [errs[i] for i, f in enumerate(families) if f == fam]), 3)
                             for fam in fams}}
        for k, idx in sets.items():
            scored[k] = _family_criteria(stacks, errs, photos, families, lambda s, e, idx=idx: _fit_selected(s, e, idx))
        cands = sorted(set(candidate_features("rain")) | set(extra))
        runs = [_forward_worst(stacks, errs, photos, families, cands, start)
                for start in ([], [1 + FEATURES.index("change")])]
        feats, _ = max(runs, key=lambda run: run[1])
        sets["selected"] = feats
        scored["selected"] = _family_criteria(stacks, errs, photos, families,
                                              lambda s, e, feats=feats: _fit_selected(s, e, feats))
        worst = {k: min(v.values()) if v else -1.0 for k, v in scored.items()}
        best = max(worst, key=lambda k: (worst[k], k == "levels"))
        if worst[best] < worst["levels"] + MARGIN:
            best = "levels"
        m = fixed if best == "levels" else _fit_selected(stacks, errs, sets[best])
        model.kinds[name] = strictly_increasing(
            fit_levels(m.coef, m.score(np.concatenate(stacks, axis=1)), np.concatenate(errs)))
        levels = _levels_by_group(model.kinds[name], rs, stacks, errs)
        report[name] = {"chosen": best, "features": [FEATURES[f - 1] for f in (sets.get(best) or shipped)],
                        "held_out_by_family": scored, "worst_family": worst,
                        "selected_features": [FEATURES[f - 1] for f in feats], "rows": len(rs),
                        "photos": len(set(photos)), "mean_level_by_training_group": levels}
        print(f"  {name}: {json.dumps(report[name])}", file=sys.stderr, flush=True)
    _write_calibration(model, "rain_refit_by_measurement_on_training", report, args.calibration)


def _levels_by_group(kind_model, rs: list[dict], stacks: list, errs: list) -> dict:
    """Per training group: its rows, and the mean predicted and observed error (8-bit levels)."""
    levels = {}
    for group in sorted({r["group"] for r in rs}):
        idx = [i for i, r in enumerate(rs) if r["group"] == group]
        pred = np.concatenate([kind_model.levels(kind_model.score(stacks[i])) for i in idx])
        levels[group] = {"rows": len(idx), "predicted": round(float(pred.mean()), 2),
                         "observed": round(float(np.concatenate([errs[i] for i in idx]).mean()), 2)}
    return levels


def _truth_of(r: dict, crop: int, side: int) -> np.ndarray | None:
    """The ground truth of a cached rain row (not stored in the cache): the clean crop or whole photo of
    a training or synthetic row, the pair's ground truth of a real one; ``None`` when it cannot be remade."""
    from engine.imageio import load_photo
    group = r["group"]
    if group.startswith("real:"):
        folder = PAIRS / group.split(":", 1)[1]
        gt = next((p for p in sorted((folder / "gt").iterdir()) if p.stem == Path(r["photo"]).stem), None)
        return None if gt is None else centre_crop(load_photo(gt).pixels, crop)
    if group in ("train-whole", "synthetic-whole"):
        return fit_side(load_photo(CLEAN / r["photo"]).pixels, side)
    return centre_crop(load_photo(CLEAN / r["photo"]).pixels, crop)


#: Brightness (8-bit levels, mean over channels) by which the input must exceed the truth for a pixel to
#: count as a rain streak's (screen-blended streaks only brighten).
STREAK_LEVELS = 8.0


def diagnose(args) -> None:
    """Where the error of the composed result of a photo of ``--diagnose-kind`` (and of that kind's stage on
    it) lies, per family of rows (the training families of :data:`RAIN_FAMILIES`, the other groups): its
    mean; the share a
    global colour/exposure offset explains (the per-channel median signed error: what a per-pixel map cannot
    rank); the share on the streaks' pixels (input brighter than the truth by :data:`STREAK_LEVELS`) and the
    signed error there (streaks left: positive); the share on the rest where the output's local gradient is
    below the truth's (texture smoothed away); and the Spearman ρ of the shipped map and of every feature with
    the error, pooled and per photo; and the pooled ρ of an oracle map that holds each photo's own mean error
    at every pixel (how far ranking the photos alone goes), and the Spearman ρ over photos of their mean error
    with the shipped map's mean and with the analysed noise σ's mean. Looking only: nothing is fitted."""
    from engine.uncertainty import default_model
    from engine.uncertainty.features import FEATURES, _box, _gradient, _grey
    model = default_model()
    how = model.meta.get("composed_by", "pooled")
    rows = [r for p in args.caches for r in load_rows(Path(p))[0]]
    kind = args.diagnose_kind
    rows = [r for r in rows if r["kind"] == kind and (r["stage"] == "composed" or (r["stage"] == kind and own_kind(r)))]
    families: dict[str, list[dict]] = {}
    for r in rows:
        fam = _rain_family(r["group"]) or r["group"].split(":")[0]
        families.setdefault(f"{r['stage']}/{fam}", []).append(r)
    lines = ["| rows | n (photos) | mean error | global offset's share "
             "| input brighter (streaks, veil): pixels / error share / signed | smoothed texture: pixels / error share "
             "| shipped map ρ pooled (per photo) | photo-mean oracle ρ "
             "| photos ranked by: shipped map's mean / noise σ | best features, pooled ρ |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for fam, rs in sorted(families.items()):
        stats = {"err": [], "offset": [], "streak_px": [], "streak_err": [], "streak_signed": [], "smooth_px": [],
                 "smooth_err": []}
        for r in rs:
            truth = _truth_of(r, args.crop, args.side)
            if truth is None or truth.shape != r["after"].shape:
                continue
            signed = (r["after"] - truth) * 255.0
            total = float(np.abs(signed).mean())
            unbiased = float(np.abs(signed - np.median(signed, axis=(0, 1))).mean())
            streak = (r["before"] - truth).mean(axis=2) * 255.0 > STREAK_LEVELS
            err = np.abs(signed).mean(axis=2)
            smooth = ~streak & (_box(_gradient(_grey(r["after"]))) < 0.7 * _box(_gradient(_grey(truth))))
            stats["err"].append(total)
            stats["offset"].append(1.0 - unbiased / max(total, 1e-6))
            stats["streak_px"].append(float(streak.mean()))
            stats["streak_err"].append(float(err[streak].sum() / max(err.sum(), 1e-6)))
            stats["streak_signed"].append(float(signed.mean(axis=2)[streak].mean()) if streak.any() else 0.0)
            stats["smooth_px"].append(float(smooth.mean()))
            stats["smooth_err"].append(float(err[smooth].sum() / max(err.sum(), 1e-6)))
        pairs = [(predict_row(model, r, how)[::2, ::2], r["err"][::2, ::2]) for r in rs]
        shipped = _stats(pairs)
        oracle = _stats([(np.full_like(e, e.mean()), e) for _, e in pairs])["pooled"]
        photo_err = np.array([e.mean() for _, e in pairs])
        by_map = spearman(np.array([p.mean() for p, _ in pairs]), photo_err)
        by_noise = spearman(np.array([r["sigma"].mean() for r in rs]), photo_err)
        stacks = [stack_for(r, kind)[:, ::2, ::2] for r in rs]
        err_all = np.concatenate([r["err"][::2, ::2].ravel() for r in rs])
        feats = sorted(((spearman(np.concatenate([st[i + 1].ravel() for st in stacks]), err_all), f)
                        for i, f in enumerate(FEATURES)), key=lambda t: -abs(t[0]))[:6]
        mean = {k: float(np.mean(v)) if v else float("nan") for k, v in stats.items()}
        pct = {k: 100 * v for k, v in mean.items()}
        lines.append(f"| {fam} | {len(rs)} ({len({r['photo'] for r in rs})}) | {mean['err']:.1f} | "
                     f"{pct['offset']:.0f} % | {pct['streak_px']:.0f} % / {pct['streak_err']:.0f} % / "
                     f"{mean['streak_signed']:+.1f} | {pct['smooth_px']:.0f} % / {pct['smooth_err']:.0f} % | "
                     f"{shipped['pooled']:+.2f} ({shipped['per_photo_mean']:+.2f}) | {oracle:+.2f} | "
                     f"{by_map:+.2f} / {by_noise:+.2f} | "
                     + ", ".join(f"{f} {v:+.2f}" for v, f in feats) + " |")
        print(lines[-1], file=sys.stderr, flush=True)
    print("\n".join(lines))


#: The kinds ``rain-judge`` offers to judge the composed result when found and their stage not kept
#: (``engine.uncertainty.session.LEFT_IN_RESULT``): as shipped, and with rain (heavy rain the generalist
#: leaves while a noise or haze stage is kept: the result's error is the rain's, judged today by the
#: kept stage's kind).
RAIN_JUDGE_VARIANTS = {"shipped": ("lowlight",), "with-rain": ("lowlight", "rain")}


def rain_judge(args) -> None:
    """For each :data:`RAIN_JUDGE_VARIANTS`, the rain models refitted as ``rain`` does (:func:`rain_fit`, the
    composed rows rain dominates under that rule) into ``--calibration`` with the variant's name before
    ``.json``, then every composed training row scored with it (pooled ρ over all, per photo kind and per rain
    family, every 7th pixel). The rule (fixed before this phase's validation): ``with-rain`` is taken if the
    pooled ρ over all composed training rows rises and no kind's row falls by more than
    :data:`GATE_TOLERANCE`. Nothing is fitted or chosen on validation rows."""
    import engine.uncertainty.session as session
    from engine.uncertainty import UncertaintyModel
    rows = [r for p in args.cache for r in load_rows(Path(p))[0]]
    comp = [r for r in rows if r["group"].startswith("train") and r["stage"] == "composed"]
    shipped = session.LEFT_IN_RESULT
    out = Path(args.calibration)
    report = {}
    try:
        for name, kinds in RAIN_JUDGE_VARIANTS.items():
            session.LEFT_IN_RESULT = kinds
            args.calibration = str(out.with_name(f"{out.stem}-{name}.json"))
            rain_fit(args)
            model = UncertaintyModel.from_json(Path(args.calibration).read_text())
            how = model.meta.get("composed_by", "pooled")
            pairs = [(predict_row(model, r, how).ravel()[::7], r["err"].ravel()[::7]) for r in comp]
            scores = {"all": _stats(pairs)["pooled"]}
            for key in sorted({r["kind"] for r in comp}) + sorted(RAIN_FAMILIES):
                idx = [i for i, r in enumerate(comp) if r["kind"] == key or _rain_family(r["group"]) == key]
                if idx:
                    scores[key] = _stats([pairs[i] for i in idx])["pooled"]
            report[name] = scores
            print(f"  {name}: {scores}", file=sys.stderr, flush=True)
    finally:
        session.LEFT_IN_RESULT = shipped
    a, b = report["shipped"], report["with-rain"]
    take = b["all"] > a["all"] and all(b[k] >= a[k] - GATE_TOLERANCE for k in a if k != "all")
    print(json.dumps({"machine": machine(), "training_composed_rho": report, "with_rain_taken": take}, indent=1))


#: The rain gate (issue 15, fixed before any validation number): the composed real rain row reaches this
#: pooled ρ, or rises by :data:`GATE_RAIN_RISE` with nothing else lost; the synthetic rain rows (stage and
#: composed, both plans) stay at :data:`GATE_RAIN_SYNTHETIC` or above; every other row falls by at most
#: :data:`GATE_TOLERANCE`; the maps' cost grows by at most :data:`GATE_RAIN_COST` (a fraction).
GATE_RAIN_REAL = 0.30
GATE_RAIN_RISE = 0.10
GATE_RAIN_SYNTHETIC = 0.50
GATE_RAIN_COST = 0.10


def rain_verdict(before: dict[str, float], after: dict[str, float], cost: dict[str, float] | None) -> dict:
    """The rain gate (:data:`GATE_RAIN_REAL` …) on :func:`gate_rows`' rows before and after and the maps'
    seconds (``cost``: ``{"before": s, "after": s}``, :func:`map_seconds`): every check with its numbers and
    ``ship`` when all hold."""
    checks = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"check": name, "ok": bool(ok), "detail": detail})
    row = "composed/real/rain"
    b, a = before.get(row, float("nan")), after.get(row, -1.0)
    others_kept = all(after.get(k, -1.0) >= before[k] - GATE_TOLERANCE for k in before
                      if k != row and k.split("/")[0] in ("stage", "composed"))
    check("(a) real rain composed row", a >= GATE_RAIN_REAL or (a - b >= GATE_RAIN_RISE and others_kept),
          f"{row}: {b} -> {a} (at least {GATE_RAIN_REAL}, or a rise of {GATE_RAIN_RISE} with nothing else lost)")
    for k in sorted(k for k in before if k.split("/")[0] in ("stage", "composed") and k.endswith("/rain")
                    and k.split("/")[1] in ("synthetic", "synthetic-auto")):
        check("(b) synthetic rain row", after.get(k, -1.0) >= GATE_RAIN_SYNTHETIC,
              f"{k}: {before[k]} -> {after.get(k)} (at least {GATE_RAIN_SYNTHETIC})")
    for k in sorted(k for k in before if k != row and k.split("/")[0] in ("stage", "composed")):
        check("(c) other row", after.get(k, -1.0) >= before[k] - GATE_TOLERANCE,
              f"{k}: {before[k]} -> {after.get(k)} (fall at most {GATE_TOLERANCE})")
    if cost is None:
        check("(d) cost", False, "not measured")
    else:
        check("(d) cost", cost["after"] <= cost["before"] * (1 + GATE_RAIN_COST),
              f"maps of every row: {cost['before']:.1f} s -> {cost['after']:.1f} s "
              f"(at most +{100 * GATE_RAIN_COST:.0f} %)")
    return {"ship": all(c["ok"] for c in checks), "checks": checks}


def map_seconds(models: list, rows: list[dict], repeats: int = 3) -> list[float]:
    """Seconds each of ``models`` takes to make the maps of ``rows`` as the CLI computes them
    (:meth:`engine.uncertainty.UncertaintyModel.predict`, the ensemble where a model reads it), the
    models interleaved row by row and the best of ``repeats`` runs per row kept (a shared machine's load
    moves single runs)."""
    total = [0.0] * len(models)
    for r in rows:
        for j, model in enumerate(models):
            key, kind = model_for_row(model, r, model.meta.get("composed_by", "pooled"))

            def pick(d, kind=kind):
                return d.get(kind, 0.0) if kind else max(d.values(), default=0.0)
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                model.predict(r["before"], r["after"], key, noise_sigma=r["sigma"] / np.float32(255.0),
                              severity=pick(r["sev_in"]), severity_after=pick(r["sev_out"]), left=left_for_row(r))
                best = min(best, time.perf_counter() - t0)
            total[j] += best
    return total


def gate_rain(args) -> None:
    """The rain gate (:func:`rain_verdict`) for ``--calibrations BEFORE AFTER`` on the validation rows
    (``--caches``), the maps' cost measured on the same rows (:func:`map_seconds`); writes ``--json`` and
    prints the verdict (markdown)."""
    from engine.uncertainty import UncertaintyModel
    rows = [r for p in args.caches for r in load_rows(Path(p))[0]]
    models = [UncertaintyModel.from_json(Path(c).read_text()) for c in args.calibrations]
    seconds = map_seconds(models, rows)
    cost = {"before": seconds[0], "after": seconds[1]}
    print(f"maps: {cost}", file=sys.stderr, flush=True)
    _run_gate(args, lambda before, after, names: {**rain_verdict(before, after, cost), "map_seconds": cost})


#: Features the ``untouched`` model may select: every feature that can differ from photo to photo or pixel
#: to pixel when the result equals the input (what changed, the gains and the ensemble's spread are 0 there).
UNTOUCHED_FEATURES = ("texture_after", "texture_before", "noise", "severity", "severity_after", "dark", "bright",
                      "luminance", "dark_channel", "dark_channel_before", "texture_x_severity",
                      "texture_x_severity_after", "noise_x_severity", "haze_depth", "haze_depth_x_severity",
                      "streak_before", "streak_after", "streak_after_x_severity", "airlight_gap",
                      "airlight_gap_x_depth", "photo_dark", "luminance_x_photo_dark", "luminance_x_severity_after",
                      "photo_noise")


def untouched_severity(r: dict) -> float:
    """The severity a composed row's map is judged with (``engine.uncertainty.session``): the dominant kind's
    at the input (:func:`dominant`), else the largest of all kinds."""
    kind = dominant(r)
    return r["sev_in"].get(kind, 0.0) if kind else max(r["sev_in"].values(), default=0.0)


def untouched_rows(rows: list[dict]) -> list[dict]:
    """The composed rows the ``untouched`` model judges: the result equals the input (no stage kept) and
    the analysis finds no kind (``engine.uncertainty.model.UncertaintyModel.judge``)."""
    from engine.uncertainty.model import UNTOUCHED_BELOW, unchanged
    return [r for r in rows if r["stage"] == "composed" and untouched_severity(r) < UNTOUCHED_BELOW
            and unchanged(r["before"], r["after"])]


def _untouched_scores(pred: list[np.ndarray], errs: list[np.ndarray], clean: list[bool]) -> dict:
    """Per map (``pred``, sampled pixels per row, 8-bit levels): the Spearman measure (:func:`_criterion`) on
    the degraded rows, the level error over every row (mean |log1p(predicted row mean) − log1p(observed
    row mean)|) and on the clean rows the share above :data:`engine.uncertainty.summary.UNCERTAIN_LEVELS`
    (mean and worst over the rows)."""
    from engine.uncertainty.summary import UNCERTAIN_LEVELS
    deg = [i for i, c in enumerate(clean) if not c]
    shares = [float((pred[i] > UNCERTAIN_LEVELS).mean()) for i, c in enumerate(clean) if c]
    return {"degraded_measure": round(_criterion([pred[i] for i in deg], [errs[i] for i in deg]), 3) if deg else 0.0,
            "level_error": round(float(np.mean([abs(np.log1p(p.mean()) - np.log1p(e.mean()))
                                                for p, e in zip(pred, errs, strict=True)])), 3),
            "clean_share_mean": round(float(np.mean(shares)), 4) if shares else 0.0,
            "clean_share_worst": round(float(np.max(shares)), 4) if shares else 0.0}


def untouched_fit(args) -> None:
    """The composed map of a result the restoration left unchanged (no stage kept, or every strength 0)
    where the analysis finds no kind: a model of its own, ``untouched`` (``engine/uncertainty/model.py``:
    :meth:`UncertaintyModel.judge`), that knows nothing was invented and predicts only the error of a
    degradation the analysis missed. Fitted on the training composed rows whose result equals the input and
    where the analysis finds no kind (:func:`untouched_rows`): degraded training photos whose degradation
    went unfound (synthetic crops, both plans; the simulated camera) and clean training photos the plan
    left alone (``collect --which clean``: error 0), features selected forward among
    :data:`UNTOUCHED_FEATURES` (:func:`select_and_fit`). Scored held out (4 folds by photo: selection and
    fit on 3, scored on the fourth) against the map ``--base`` gives the same rows (the composed model the
    photo's dominant kind chooses) by :func:`_untouched_scores`. Rule, fixed before any validation number
    (issue 15, eleventh pass): the model qualifies if its clean rows' mean share above 8 levels and its
    level error are lower and its degraded rows' measure is at most :data:`MARGIN` below the base's; then
    it is fitted on every row and added, else the base is written unchanged. Nothing is fitted or chosen
    on validation rows. Writes ``--calibration`` (default: the committed file). The "finds no kind"
    condition was added after the first candidate (every unchanged result, commit 34ff897) failed the
    validation gate on photos whose haze or darkness was found and left
    (``benchmarks/results/uncertainty.md``)."""
    from engine.uncertainty.features import FEATURES
    from engine.uncertainty.model import UNTOUCHED, UncertaintyModel
    model = UncertaintyModel.from_json(Path(args.base or SHIPPED_CALIBRATION).read_text())
    model.kinds.pop(UNTOUCHED, None)
    how = model.meta.get("composed_by", "pooled")
    rows = untouched_rows([r for p in args.cache for r in load_rows(Path(p))[0] if r["group"].startswith("train")])
    clean = [r["kind"] == CLEAN_KIND for r in rows]
    photos = [r["photo"] for r in rows]
    stacks = [_sample(stack_for(r, ""), PIXELS_PER_ROW, i) for i, r in enumerate(rows)]
    errs = [_sample(r["err"], PIXELS_PER_ROW, i)[0] for i, r in enumerate(rows)]
    base_pred = [_sample(predict_row(model, r, how), PIXELS_PER_ROW, i)[0] for i, r in enumerate(rows)]
    groups = sorted({(r["group"], r["kind"]) for r in rows})
    print(f"  {len(rows)} untouched training rows ({sum(clean)} clean), {len(set(photos))} photos: "
          f"{[(g, k, sum(1 for r in rows if (r['group'], r['kind']) == (g, k))) for g, k in groups]}",
          file=sys.stderr, flush=True)
    candidates = [1 + FEATURES.index(n) for n in UNTOUCHED_FEATURES]
    names = sorted(set(photos))
    fold = [names.index(p) % FOLDS for p in photos]
    pred: list = [None] * len(rows)
    fold_features = []
    for k in range(FOLDS):
        train = [i for i, f in enumerate(fold) if f != k]
        m, feats, _ = select_and_fit([stacks[i] for i in train], [errs[i] for i in train],
                                     [photos[i] for i in train], candidates=candidates)
        fold_features.append([FEATURES[f - 1] for f in feats])
        for i in (i for i, f in enumerate(fold) if f == k):
            pred[i] = m.levels(m.score(stacks[i]))
    scored = {"base": _untouched_scores(base_pred, errs, clean), "untouched": _untouched_scores(pred, errs, clean)}
    b, c = scored["base"], scored["untouched"]
    ok = (c["clean_share_mean"] < b["clean_share_mean"] and c["level_error"] < b["level_error"]
          and c["degraded_measure"] >= b["degraded_measure"] - MARGIN)
    print(f"  held out: {json.dumps(scored)}; folds' features {fold_features}; qualifies: {ok}",
          file=sys.stderr, flush=True)
    report = {"chosen": "untouched" if ok else "base", "held_out": scored, "fold_features": fold_features,
              "rows": len(rows), "clean_rows": sum(clean), "photos": len(names)}
    if ok:
        m, feats, rho = select_and_fit(stacks, errs, photos, candidates=candidates)
        model.kinds[UNTOUCHED] = m
        report["features"] = [FEATURES[f - 1] for f in feats]
        report["held_out_rho"] = round(rho, 3)
        report["knots_levels"] = [round(float(x), 2) for x in m.knots_levels]
        print(f"  untouched: {report['features']} levels {report['knots_levels']}", file=sys.stderr, flush=True)
    _write_calibration(model, "untouched_by_measurement_on_training", report, args.calibration)


#: The ship rule of the eleventh pass (issue 15: the ``untouched`` model, :func:`untouched_fit`), fixed here
#: before any of its validation numbers. Pooled ρ, 3 decimals, before → after: (a) no composed row of the
#: synthetic (both plans) or real validation falls by more than :data:`GATE_TOLERANCE`; (b) on the clean
#: validation photos (``collect --which clean-val``, maps as the CLI computes them: ``fullsize``), the mean
#: share above 8 levels falls and the worst photo's does not rise.
def untouched_verdict(before: dict[str, float], after: dict[str, float], clean: list[dict],
                      names: tuple[str, str]) -> dict:
    """The eleventh pass's ship rule on :func:`gate_rows` before and after and the clean photos' composed
    maps (``clean``: :func:`fullsize`'s rows, maps named ``names`` = (before, after)): every check with its
    numbers and whether it holds, and ``ship`` when all hold."""
    checks = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"check": name, "ok": bool(ok), "detail": detail})
    for k in sorted(k for k in before if k.startswith("composed/")):
        check("(a) composed row", after[k] >= before[k] - GATE_TOLERANCE,
              f"{k}: {before[k]} -> {after[k]} (fall at most {GATE_TOLERANCE})")
    shares = [[e["maps"][n]["fraction_above"] for e in clean if e["stage"] == "composed"] for n in names]
    if not shares[0]:
        check("(b) clean photos", False, "no clean photos")
    else:
        check("(b) clean photos' mean share above 8 levels falls", np.mean(shares[1]) < np.mean(shares[0]),
              f"{100 * np.mean(shares[0]):.1f} % -> {100 * np.mean(shares[1]):.1f} % ({len(shares[0])} photos)")
        check("(b) worst clean photo's share does not rise", max(shares[1]) <= max(shares[0]),
              f"{100 * max(shares[0]):.1f} % -> {100 * max(shares[1]):.1f} %")
    return {"ship": all(c["ok"] for c in checks), "checks": checks}


def gate_untouched(args) -> None:
    """The eleventh pass's ship rule (:func:`untouched_verdict`) for ``--calibrations BEFORE AFTER`` on the
    validation rows (``--caches``) and the clean validation photos (``--full-json``, written by ``fullsize
    --cache CLEAN_VAL --calibrations BEFORE AFTER``); writes ``--json`` and prints the verdict (markdown)."""
    clean = json.loads(Path(args.full_json).read_text())["rows"]
    _run_gate(args, lambda before, after, names: untouched_verdict(before, after, clean, names))


def _stats(pairs: list[tuple[np.ndarray, np.ndarray]], block: int = 0) -> dict:
    if block:
        pairs = [(block_mean(p, block), block_mean(e, block)) for p, e in pairs]
    pooled = spearman(np.concatenate([p.ravel() for p, _ in pairs]), np.concatenate([e.ravel() for _, e in pairs]))
    per = [spearman(p.ravel(), e.ravel()) for p, e in pairs]
    return {"pooled": round(pooled, 3), "per_photo_mean": round(float(np.mean(per)), 3),
            "per_photo_worst": round(float(np.min(per)), 3), "photos": len(per)}


def _reliability(pairs) -> list[tuple[float, float]]:
    p = np.concatenate([a.ravel() for a, _ in pairs])
    e = np.concatenate([b.ravel() for _, b in pairs])
    edges = np.quantile(p, np.linspace(0, 1, 11))
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 9)
    return [(round(float(p[idx == d].mean()), 2), round(float(e[idx == d].mean()), 2)) if (idx == d).any()
            else (float("nan"), float("nan")) for d in range(10)]


def evaluate(args) -> None:
    from engine.uncertainty import UncertaintyModel, default_model
    from engine.uncertainty.summary import UNCERTAIN_LEVELS
    model = UncertaintyModel.from_json(Path(args.calibration).read_text()) if args.calibration else default_model()
    how = model.meta.get("composed_by", "pooled")
    rows, cost = [], {"restore_s": 0.0, "map_s": 0.0}
    for path in args.caches:
        rs, info = load_rows(Path(path))
        rows += rs
        cost["restore_s"] += info["restore_s"]
    report = {"machine": machine(), "crop": args.crop, "composed_by": how, "results": {}, "cost": cost}
    t0 = time.perf_counter()
    for r in rows:  # every stage's map and the composed result's, as the CLI computes them
        r["model"] = predict_row(model, r, how)
    cost["map_s"] = time.perf_counter() - t0
    for level in ("stage", "composed"):
        groups: dict = {}
        for r in rows:
            if (level == "stage") != (r["stage"] != "composed") or (level == "stage" and r["stage"] not in SYNTH_KINDS):
                continue
            if level == "stage" and not own_kind(r):  # a stage is judged on the error left for its own kind
                continue
            group = r["group"].split(":")[0]
            groups.setdefault((group, r["stage"] if level == "stage" else r["kind"]), []).append(r)
        for (group, kind), rs in sorted(groups.items()):
            entry = {}
            for c in CANDIDATES:
                pairs = [(r[c], r["err"]) for r in rs if r.get(c) is not None]
                if pairs:
                    entry[c] = _stats(pairs)
                    entry[c + "@8x8"] = _stats(pairs, 8)
            entry["reliability_model"] = _reliability([(r["model"], r["err"]) for r in rs])
            report["results"][f"{level}/{group}/{kind}"] = entry
    # the plan rule: soften (x0.5) or drop (x0) the kept stages whose uncertain fraction ≥ frac and gain < gmax
    stage_info = {}
    for r in rows:
        if r["stage"] != "composed":
            name = r["stage"] if r["stage"] in SYNTH_KINDS else ""
            gain = (r["sev_in"].get(name, 0.0) - r["sev_out"].get(name, 0.0)) if name else \
                (max(r["sev_in"].values()) - max(r["sev_out"].values()))
            frac = float((r["model"] > UNCERTAIN_LEVELS).mean())
            stage_info[(r["group"], r["kind"], r["photo"], r["stage"])] = (frac, gain)
    rule = []
    for r in rows:
        if r["stage"] != "composed":
            continue
        out = {"group": r["group"], "kind": r["kind"], "photo": r["photo"], "psnr": r["psnr"], "variants": {}}
        for frac in (0.1, 0.25, 0.5):
            for gmax in (0.05, 0.1, 0.3):
                flagged = [s for s in r["kept"] if (lambda fg: fg[0] >= frac and fg[1] < gmax)(
                    stage_info.get((r["group"], r["kind"], r["photo"], s), (0.0, 1.0)))]
                for action in (0.5, 0.0):
                    out["variants"][f"frac>={frac},gain<{gmax},x{action}"] = \
                        r["variants"][f"{'+'.join(flagged)}|{action}"] if flagged else r["psnr"]
        rule.append(out)
    report["plan_rule"] = rule
    Path(args.json).write_text(json.dumps(report, indent=1, default=float) + "\n")
    Path(args.out).write_text(markdown(report), encoding="utf-8")
    print(f"wrote {args.json} and {args.out}", file=sys.stderr)


def markdown(report: dict) -> str:
    """The results file: Spearman tables, reliability curves, plan rule, cost."""
    out = ["# Uncertainty map: calibration (benchmarks/uncertainty.py)", "",
           f"Machine: {report['machine']}. Central {report['crop']} px crops. Synthetic validation: held-out "
           "photos of data/clean (the fit used others), one synthetic degradation per kind (strength 0.3–0.8), "
           "restored with `--only KIND` (`synthetic`) and with the automatic plan (`synthetic-auto`); real pairs "
           "(data/pairs, validation only): the automatic plan. Error = |restored − truth| per pixel, mean over "
           "channels, 8-bit levels. Spearman ρ between a candidate map and the error, pooled over all pixels of "
           "the kind's photos, and per photo (mean / worst); `@8×8`: the same on 8×8-block means (the map "
           "predicts an expected error; a single pixel's error is one draw of it). `model` is the shipped map "
           f"(composed result: {report['composed_by']}); `change` is the viewer's change map before this work.",
           ""]
    for level, title in (("stage", "Per stage (a stage's own map vs the error of its own output, on the photos "
                                   "of its own kind)"),
                         ("composed", "Composed result (what is saved and shown)")):
        out += [f"## {title}", ""]
        for group in ("synthetic", "synthetic-auto", "real"):
            keys = [k for k in report["results"] if k.startswith(f"{level}/{group}/")]
            if not keys:
                continue
            cands = [c for c in CANDIDATES if any(c in report["results"][k] for k in keys)]
            out += [f"### {group}", "", "| kind | photos | " + " | ".join(cands) + " | model @8×8 | change @8×8 |",
                    "|---|---|" + "---|" * (len(cands) + 2)]
            for k in sorted(keys):
                e = report["results"][k]
                cells = [f"{e[c]['pooled']:.2f} ({e[c]['per_photo_mean']:.2f} / {e[c]['per_photo_worst']:.2f})"
                         if c in e else "–" for c in cands]
                cells += [f"{e[c]['pooled']:.2f} ({e[c]['per_photo_mean']:.2f})" for c in ("model@8x8", "change@8x8")]
                out.append(f"| {k.split('/')[-1]} | {e['model']['photos']} | " + " | ".join(cells) + " |")
            out += ["", "Cells: pooled ρ (per-photo mean / worst).", ""]
    out += ["## Reliability of the shipped map", "",
            "Mean predicted → mean observed error (8-bit levels) in each decile of the prediction (deciles that "
            "tie with the previous one are merged into it: `nan`).", ""]
    for k, e in sorted(report["results"].items()):
        curve = ", ".join(f"{p:.1f}→{o:.1f}" for p, o in e["reliability_model"])
        out.append(f"- `{k}`: {curve}")
    out += ["", "## Plan rule: soften or drop a stage whose uncertain fraction is high and whose gain is small", "",
            "PSNR change against the result as planned (dB; rounded to 8 bits). `frac`: fraction of the stage's "
            "pixels with expected error above 8 levels; `gain`: the drop of the stage's own severity; `x0.5` "
            "halves its strength, `x0` drops it.", "",
            "| variant | group | photos changed | mean ΔPSNR | worst ΔPSNR | best ΔPSNR |", "|---|---|---|---|---|---|"]
    rows = report["plan_rule"]
    for v in sorted({v for r in rows for v in r["variants"]}):
        for group in ("synthetic", "synthetic-auto", "real"):
            d = [r["variants"][v] - r["psnr"] for r in rows if r["group"].split(":")[0] == group]
            changed = [x for x in d if x != 0.0]
            if d:
                out.append(f"| {v} | {group} | {len(changed)} of {len(d)} | {np.mean(d):+.3f} | {min(d):+.3f} | "
                           f"{max(d):+.3f} |")
    c = report["cost"]
    out += ["", "## Cost", "",
            f"Restoring every photo took {c['restore_s']:.1f} s; the maps (every stage's and the composed "
            f"result's, as the CLI computes them) {c['map_s']:.1f} s: "
            f"{100 * c['map_s'] / max(c['restore_s'], 1e-9):.1f} % of the restoration time, no network run. The "
            "flip ensemble costs one more restoration (+100 %); two experts one more run of the stage.", ""]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("phase", choices=("collect", "fit", "choose", "extend", "whole", "eval", "fullsize", "noise",
                                     "noise-stage", "noise-offset", "noise-left", "left", "gate", "untouched",
                                     "gate-untouched", "rain", "gate-rain", "diagnose", "rain-judge",
                                     "streak-width"))
    ap.add_argument("--which", choices=("train", "train2", "camera", "val", "real", "whole", "whole-val",
                                        "polyu-full", "camera-iso", "clean", "clean-val", "rain-realistic",
                                        "rain-heavy"),
                    default="train", help="collect: photos (whole, whole-val: whole photos, WHOLE_KINDS)")
    ap.add_argument("--side", type=int, default=480, help="collect whole/whole-val: long side of the photos (px)")
    ap.add_argument("--photos", type=int, default=16, help="collect whole/whole-val/rain-realistic: how many photos")
    ap.add_argument("--first", type=int, default=0, help="collect whole: skip this many training photos")
    ap.add_argument("--kinds", nargs="+", choices=SYNTH_KINDS,
                    help="collect train/train2/val: only these synthetic kinds (same seeds as the full collection)")
    ap.add_argument("--sets", nargs="+", help="collect real: only these pair sets (REAL_SETS)")
    ap.add_argument("--diagnose-kind", choices=SYNTH_KINDS, default="rain", help="diagnose: the photos' kind")
    ap.add_argument("--no-extra", action="store_true", help="collect: skip the flip-ensemble and two-expert maps")
    ap.add_argument("--cache", nargs="+", help="collect: where to write the rows; fit: the training rows")
    ap.add_argument("--caches", nargs="+", help="eval: the validation and real rows")
    ap.add_argument("--only", nargs="+", help="fit: refit only these models (kind, composed, composed:KIND)")
    ap.add_argument("--calibrations", nargs="+", help="choose: the candidate calibration files; fullsize, gate: "
                                                      "BEFORE AFTER")
    ap.add_argument("--calibration", help="eval: this calibration file instead of the committed one")
    ap.add_argument("--base", help="left: the calibration the term is added to; noise-left: the calibration whose "
                                   "noise stage score is refitted (default: the committed one)")
    ap.add_argument("--full-json", help="gate: the fullsize report (--calibrations BEFORE AFTER) of the whole photos")
    ap.add_argument("--candidate", help="noise-offset: write this candidate whatever the rule chooses "
                                        "(levels, levels+photo_noise, levels+photo_change, "
                                        "levels+photo_noise+photo_dark; noise-left: isotonic, strict)")
    ap.add_argument("--keep-ranking", nargs="+", help="noise: these models keep the shipped score (levels refitted)")
    ap.add_argument("--terms", choices=("brightness", "ensemble", "ensemble_photo"), default="brightness",
                    help="extend: the brightness/haze products (EXTENSIONS), the ensemble's spread (ENSEMBLE_TERMS) "
                         "or it and its photo mean (ENSEMBLE_PHOTO_TERMS)")
    ap.add_argument("--train", type=int, default=14)
    ap.add_argument("--val", type=int, default=8)
    ap.add_argument("--pairs", type=int, default=6, help="pairs per real set")
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "uncertainty.json"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "uncertainty.md"))
    args = ap.parse_args()
    {"collect": collect, "fit": fit, "choose": choose, "extend": extend, "whole": whole_fit,
     "eval": evaluate, "fullsize": fullsize, "noise": noise_fit, "noise-stage": noise_stage_fit,
     "noise-offset": noise_offset_fit, "noise-left": noise_left_fit, "left": left_fit,
     "gate": gate, "untouched": untouched_fit, "gate-untouched": gate_untouched, "rain": rain_fit,
     "gate-rain": gate_rain, "diagnose": diagnose, "rain-judge": rain_judge,
     "streak-width": streak_width}[args.phase](args)


if __name__ == "__main__":
    main()
