"""Haze and low light read where there is none: the veil and highlight gates, fitted and validated.

Bright, warm, low-contrast indoor scenes lift the dark channel as haze does, and a dim scene exposed
for its light parts reads as under-exposed; the default plan then dehazed real camera crops 17–25 dB
below their input and brightened one 10.5 dB below (benchmarks/results/real-noise-all60.md). The
gates are in ``engine.analysis.analyser`` (``haze_severity``, ``lowlight_severity``).

Steps (each caches its rows as JSON lines in ``--work``, so a loaded machine can resume):

- ``fit``: TRAINING photos only (``training.data.split``: ../shared/data/clean minus the held-out
  tenth). Positives: synthetic depth-varying haze (``engine.degrade.weather.haze`` with
  ``varied_depth``, grey airlight 0.75–0.95 ± 0.04 per channel) of the photo and of a warm,
  brightened copy of it, half of them through the camera pipeline (``camera_noise``); synthetic
  under-exposure (``engine.degrade.degrade(…, "lowlight", s ≥ 0.5)``). Negatives: the photo, its
  flattest crop, that crop and the whole photo white-balanced warm and brightened (a wall or page
  under tungsten light), half with camera noise; and a dim scene exposed for its light parts (the
  photo's tones pushed down by a power 1.5–3, highlights kept). Prints the fitted constants
  (the 97th percentile of the positives' floor chroma, their 1st percentile of airlight, the 99th
  percentile of the under-exposed ``p95_luma``) and the rates on the training and the held-out photos.
- ``readings``: the default analysis of every validation photo (PolyU noisy crops, RESIDE hazy,
  LOL dark, ../shared/data/real), for the code at ``--code`` (a subprocess with its own imports).
- ``restore``: the default plan's PSNR on named pairs, for the code at ``--code``.
- ``report``: writes benchmarks/results/haze-false-positives.md from the cached rows.

Run: ``python benchmarks/haze_false_positives.py fit --photos 120``; ``… readings --code OLD --tag before``;
``… readings --tag after``; ``… restore --tag before --code OLD --changed``; ``… report``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CODE = Path(os.environ.get("RESTORA_CODE") or ROOT)
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
if CODE != ROOT:
    sys.path.insert(0, str(CODE))

SHARED = Path(os.environ.get("RESTORA_SHARED") or ROOT.parent / "shared")
DATA = SHARED / "data"
WORK = Path(os.environ.get("RESTORA_BENCH_WORK") or ROOT / "benchmarks" / "results" / "haze-false-positives")
RESULTS = ROOT / "benchmarks" / "results" / "haze-false-positives.md"
VALIDATION_SETS = {
    "polyu": ("pairs/noise_real_polyu_crops/lq", "pairs/noise_real_polyu_crops/gt"),
    "reside": ("pairs/haze_reside/lq", "pairs/haze_reside/gt"),
    "lol": ("pairs/lowlight_real_lol_train/lq", "pairs/lowlight_real_lol_train/gt"),
    "real": ("real", None),
}


def machine() -> str:
    from _host import cpu_model

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu_model()}, {os.cpu_count()} logical cores shared with other jobs, load average {load:.1f}"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


# --------------------------------------------------------------------------- fit (training photos)
def flat_crop(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The square crop (40–70 % of the shorter side) of least Laplacian energy: a wall, a page."""
    import cv2

    h, w = img.shape[:2]
    s = int(min(h, w) * rng.uniform(0.4, 0.7))
    energy = cv2.integral(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_32F) ** 2)
    best = None
    for y in range(0, h - s + 1, max(1, (h - s) // 6)):
        for x in range(0, w - s + 1, max(1, (w - s) // 6)):
            e = energy[y + s, x + s] - energy[y, x + s] - energy[y + s, x] + energy[y, x]
            if best is None or e < best[0]:
                best = (e, y, x)
    _, y, x = best
    return np.ascontiguousarray(img[y:y + s, x:x + s])


def warm_bright(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A warm white balance (red gain 1–1.35, blue 0.55–0.95, in linear light) and 0–1.6 stops
    brighter with a soft shoulder: a lit wall or page under tungsten light."""
    from engine.degrade._common import linear_to_srgb, srgb_to_linear

    gains = np.array([rng.uniform(1.0, 1.35), 1.0, rng.uniform(0.55, 0.95)], np.float32)
    lin = srgb_to_linear(img) * gains * np.float32(rng.uniform(1.0, 3.0))
    lin = lin / (1 + np.maximum(lin - 0.8, 0) * 2)
    return np.clip(linear_to_srgb(np.clip(lin, 0, 1)), 0, 1).astype(np.float32)


def dim_scene(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A dim scene exposed for its light parts: tones pushed down by a power 1.5–3 (shadows and
    mid-tones dark), highlights kept."""
    return np.power(img, np.float32(rng.uniform(1.5, 3.0))).astype(np.float32)


def maybe_camera(img: np.ndarray, rng: np.random.Generator, seed: int) -> np.ndarray:
    from engine.degrade.camera import camera_noise

    return camera_noise(img, float(rng.uniform(0.2, 0.8)), seed)[0] if rng.random() < 0.5 else img


def hazed(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    from engine.degrade.weather import haze, varied_depth

    grey = rng.uniform(0.75, 0.95)
    airlight = np.clip(grey + rng.uniform(-0.04, 0.04, 3), 0, 1)
    return haze(img, 2.5 * strength, airlight, depth=varied_depth(img, rng))


def measure_case(img: np.ndarray) -> dict:
    from engine.analysis.analyser import haze_severity, lowlight_severity, working_copy
    from engine.analysis.calibration import severity_from
    from engine.analysis.measurements import exposure_statistics, haze_statistics

    work = working_copy(img)[0]
    h, e = haze_statistics(work), exposure_statistics(work)
    hs, ls = severity_from("haze", h), severity_from("lowlight", e)
    return {**h, **e, "haze_raw": hs, "haze": haze_severity(hs, h), "lowlight_raw": ls,
            "lowlight": lowlight_severity(ls, e)}


def fit_cases(path: Path, rng: np.random.Generator, seed: int) -> list[dict]:
    from engine.degrade import degrade
    from training.data import load_uint8, to_float

    img = to_float(load_uint8(path))
    crop = flat_crop(img, rng)
    warm_scene = np.clip(warm_bright(img, rng) * rng.uniform(0.6, 1.0), 0, 1).astype(np.float32)
    cases = [("haze-", "photo", maybe_camera(img, rng, seed), 0.0),
             ("haze-", "flat crop", maybe_camera(crop, rng, seed), 0.0),
             ("haze-", "warm bright crop", maybe_camera(warm_bright(crop, rng), rng, seed), 0.0),
             ("haze-", "warm bright photo", maybe_camera(warm_bright(img, rng), rng, seed), 0.0)]
    hazy = []
    for name, base in (("haze of the photo", img), ("haze of a warm scene", warm_scene)):
        s = float(rng.uniform(0.15, 1.0))
        hazy.append(("haze+", name, maybe_camera(hazed(base, rng, s), rng, seed), s, base))
    s = float(rng.uniform(0.5, 1.0))
    cases.append(("lowlight+", "under-exposed", degrade(img, "lowlight", s, seed), s))
    cases.append(("lowlight-", "dim scene exposed for its light parts", dim_scene(img, rng), 0.0))
    rows = [{"photo": path.name, "label": label, "case": name, "strength": s, **measure_case(x)}
            for label, name, x, s in cases]
    # the scene without its veil: a positive counts only where the veil, not the scene, reads hazy
    rows += [{"photo": path.name, "label": label, "case": name, "strength": s, **measure_case(x),
              "scene_haze_raw": measure_case(base)["haze_raw"]} for label, name, x, s, base in hazy]
    return rows


def fit_dehaze(photos: int) -> int:
    """Dehaze synthetic haze of training photos (read hazy by the hand-made analysis) and record the
    share of pixels the dehazer drives to black or white: what removing a real veil does."""
    from engine.analysis import analyse
    from engine.analysis.measurements import newly_clipped_fraction
    from engine.experts.classical.dehaze import dehaze
    from training.data import list_images, load_uint8, split, to_float

    train, _ = split(list_images(DATA / "clean"))
    out = WORK / "fit-dehaze.jsonl"

    def rows_of(j: int, p: Path):
        rng = np.random.default_rng([11, j])
        img = to_float(load_uint8(p))
        warm = np.clip(warm_bright(img, rng) * rng.uniform(0.6, 1.0), 0, 1).astype(np.float32)
        for name, base in (("haze of the photo", img), ("haze of a warm scene", warm)):
            s = float(rng.uniform(0.2, 1.0))
            x = maybe_camera(hazed(base, rng, s), rng, j)
            severity = analyse(x).severity("haze")
            clipped = newly_clipped_fraction(x, np.clip(dehaze(x)[0], 0, 1)) if severity >= 0.2 else None
            yield {"photo": p.name, "case": name, "strength": s, "haze": severity, "newly_clipped": clipped}

    append_pending(out, train, photos, 11, rows_of, progress=None)
    vals = [r["newly_clipped"] for r in _rows(out) if r["newly_clipped"] is not None]
    print(json.dumps({"cases": len(vals), "p99": float(np.percentile(vals, 99)), "max": float(max(vals))}))
    return 0


def _pending(out: Path, paths: list[Path], count: int, seed: int):
    """``(index, path)`` of the first ``count`` of ``paths`` in a seeded order whose rows ``out`` does
    not hold yet (a resumed run continues where the last one stopped)."""
    done = {r["photo"] for r in _rows(out)}
    for j in np.random.default_rng(seed).permutation(len(paths))[:count]:
        if paths[int(j)].name not in done:
            yield int(j), paths[int(j)]


def append_pending(out: Path, paths: list[Path], count: int, seed: int, rows_of,
                   progress: Optional[str] = "") -> None:
    """Append to ``out`` (JSON lines) the rows ``rows_of(index, path)`` gives for each photo
    :func:`_pending` yields, flushed photo by photo (a stopped run resumes where it was);
    ``progress``: printed before each photo's name on stderr, ``None`` for nothing."""
    with out.open("a") as f:
        for j, p in _pending(out, paths, count, seed):
            for row in rows_of(j, p):
                f.write(json.dumps(row, default=float) + "\n")
            f.flush()
            if progress is not None:
                print(f"  {progress}{p.name}", file=sys.stderr, flush=True)


def fit(photos: int, held_out: int) -> int:
    from training.data import list_images, split

    train, val = split(list_images(DATA / "clean"))
    WORK.mkdir(parents=True, exist_ok=True)
    for split_name, paths, n in (("train", train, photos), ("held-out", val, held_out)):
        append_pending(WORK / f"fit-{split_name}.jsonl", paths, n, 7,
                       lambda j, p, split_name=split_name: (dict(row, split=split_name) for row in
                                                            fit_cases(p, np.random.default_rng([7, j]), j)),
                       progress=f"{split_name} ")
    print(json.dumps(fitted(_rows(WORK / "fit-train.jsonl")), indent=1))
    return 0


def fitted(rows: list[dict]) -> dict[str, float]:
    """The constants the gates use, from training rows: among synthetic haze read hazy (raw severity
    at the presence threshold), the 97th percentile of floor chroma and the 1st of airlight; the 99th
    percentile of ``p95_luma`` over synthetic under-exposure. Synthetic haze counts only where the
    scene without it read clear (else the scene, not the veil, made the reading)."""
    from engine.analysis.report import DEFAULT_PRESENCE_THRESHOLD as T

    pos = [r for r in rows if r["label"] == "haze+" and r["haze_raw"] >= T and r["scene_haze_raw"] < T]
    dark = [r for r in rows if r["label"] == "lowlight+"]
    return {"VEIL_MAX_FLOOR_CHROMA": float(np.percentile([r["veil_floor_chroma"] for r in pos], 97)),
            "VEIL_MIN_AIRLIGHT": float(np.percentile([r["veil_airlight"] for r in pos], 1)),
            "LOWLIGHT_MAX_P95_LUMA": float(np.percentile([r["p95_luma"] for r in dark], 99)),
            "haze_positives": len(pos), "lowlight_positives": len(dark)}


# --------------------------------------------------------------------------- clean photos
def clean_rates() -> int:
    """Haze and low-light presence on every clean photo (../shared/data/clean, all 501), before the
    gates (the dark channel alone for haze, the exposure index with the network's agreement for low
    light: what the default analysis did) and after (the gated hand-made reading and the network both)."""
    from engine.analysis.learned import LearnedAnalyser
    from engine.imageio import load_photo
    from training.data import is_validation, list_images

    out = WORK / "clean.jsonl"
    done = {r["photo"] for r in _rows(out)}
    net = LearnedAnalyser()
    with out.open("a") as f:
        for p in list_images(DATA / "clean"):
            if p.name in done:
                continue
            pixels = load_photo(p).pixels
            learned = net.report(pixels)
            f.write(json.dumps({"photo": p.name, "held_out": is_validation(p), **measure_case(pixels),
                                "learned_haze": learned.severity("haze"),
                                "learned_lowlight": learned.severity("lowlight")}, default=float) + "\n")
    return 0


def clean_table(rows: list[dict]) -> list[str]:
    from engine.analysis.report import DEFAULT_PRESENCE_THRESHOLD as T

    def rates(sub: list[dict]) -> str:
        def pct(flags: list[bool]) -> str:
            return f"{100 * np.mean(flags):.1f} % ({sum(flags)})"
        haze_before = [r["haze_raw"] >= T for r in sub]
        haze_after = [r["haze"] >= T and r["learned_haze"] >= T for r in sub]
        low_before = [r["lowlight_raw"] >= T and r["learned_lowlight"] >= T for r in sub]
        low_after = [r["lowlight"] >= T and r["learned_lowlight"] >= T for r in sub]
        return f"{pct(haze_before)} | {pct(haze_after)} | {pct(low_before)} | {pct(low_after)}"

    held = [r for r in rows if r["held_out"]]
    return ["| clean photos | n | haze before | haze after | low light before | low light after |",
            "|---|---|---|---|---|---|",
            f"| all | {len(rows)} | {rates(rows)} |",
            f"| held-out tenth | {len(held)} | {rates(held)} |"]


# --------------------------------------------------------------------------- validation (subprocesses)
def validation_items(sets: list[str]) -> list[tuple[str, Path, Optional[Path]]]:
    items = []
    for s in sets:
        lq_dir, gt_dir = VALIDATION_SETS[s]
        if not (DATA / lq_dir).is_dir():
            continue
        gts = {p.stem: p for p in (DATA / gt_dir).iterdir()} if gt_dir else {}
        items += [(s, p, gts.get(p.stem)) for p in sorted((DATA / lq_dir).iterdir())
                  if p.suffix.lower() in (".png", ".jpg", ".jpeg")]
    return items


def readings_worker(out: Path, sets: list[str]) -> int:
    from engine.analysis.jpeg_tables import estimate_quality
    from engine.analysis.learned import analyse_default
    from engine.imageio import load_photo

    with out.open("w") as f:
        for s, lq, _ in validation_items(sets):
            photo = load_photo(lq)
            meta = photo.metadata
            facts = {"iso": getattr(meta, "iso", None), "exposure_s": getattr(meta, "exposure_s", None),
                     "jpeg_quality": estimate_quality(photo.jpeg).quality if photo.jpeg is not None else None}
            r = analyse_default(photo.pixels, **facts)
            m = {k: float(v) for k, v in {**r.kinds["haze"].measurements, **r.kinds["lowlight"].measurements}.items()
                 if isinstance(v, (int, float))}
            f.write(json.dumps({"set": s, "name": lq.name, "haze": r.severity("haze"),
                                "lowlight": r.severity("lowlight"), "measurements": m}) + "\n")
    return 0


def restore_worker(out: Path, specs: list[str]) -> int:
    from real_pairs import default_restorer, load_pair, metrics

    sys.path.insert(0, str(CODE))  # real_pairs puts this checkout first; the engine must be CODE's
    restore = default_restorer()
    with out.open("a") as f:
        for spec in specs:
            lq_path, gt_path = (Path(p) for p in spec.split("::"))
            lq, gt = load_pair(lq_path, gt_path)
            t0 = time.perf_counter()
            pixels, info = restore(lq_path)
            p, _ = metrics(pixels, gt)
            p_in, _ = metrics(lq, gt)
            f.write(json.dumps({"name": lq_path.name, "psnr": p, "input": p_in,
                                "seconds": time.perf_counter() - t0, **info}) + "\n")
            f.flush()
            print(f"  {lq_path.name}: {p - p_in:+.2f} dB {info['stages']}", file=sys.stderr, flush=True)
    return 0


def in_subprocess(code: Path, args: list[str]) -> None:
    env = dict(os.environ, RESTORA_CODE=str(code), PYTHONPATH=str(code))
    subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], env=env, check=True)


def changed_items(sets: list[str]) -> list[tuple[str, Path, Optional[Path]]]:
    """Validation pairs whose haze or low-light presence differs between the cached readings."""
    from engine.analysis.report import DEFAULT_PRESENCE_THRESHOLD as T

    before = {(r["set"], r["name"]): r for r in _rows(WORK / "readings-before.jsonl")}
    after = {(r["set"], r["name"]): r for r in _rows(WORK / "readings-after.jsonl")}
    out = []
    for s, lq, gt in validation_items(sets):
        b, a = before.get((s, lq.name)), after.get((s, lq.name))
        if gt is not None and b and a and any((b[k] >= T) != (a[k] >= T) for k in ("haze", "lowlight")):
            out.append((s, lq, gt))
    return out


# --------------------------------------------------------------------------- report
def regate(rows: list[dict]) -> list[dict]:
    """Cached rows with the gated severities recomputed by the current gates (from the raw severities
    and measurements the rows keep), so that a changed constant needs no re-measurement."""
    from engine.analysis.analyser import haze_severity, lowlight_severity

    return [dict(r, haze=haze_severity(r["haze_raw"], r), lowlight=lowlight_severity(r["lowlight_raw"], r))
            for r in rows]


def report() -> int:
    from engine.analysis.report import DEFAULT_PRESENCE_THRESHOLD as T

    fit_rows = regate(_rows(WORK / "fit-train.jsonl"))
    held = regate(_rows(WORK / "fit-held-out.jsonl"))
    lines = ["# Haze and low light where there is none: the veil and highlight gates", "",
             f"Produced by `benchmarks/haze_false_positives.py`. Machine: {machine()} (loaded; 2 cores shared "
             "by several jobs).", ""]
    if fit_rows:
        c = fitted(fit_rows)
        lines += ["## Fit (training photos only)", "",
                  f"{len({r['photo'] for r in fit_rows})} training photos of `../shared/data/clean` (the held-out "
                  "tenth excluded), cases as the script's docstring says. Fitted: "
                  f"floor chroma ≤ {c['VEIL_MAX_FLOOR_CHROMA']:.3f} (97th percentile of {c['haze_positives']} "
                  f"synthetic hazy cases read hazy), airlight ≥ {c['VEIL_MIN_AIRLIGHT']:.3f} (their 1st percentile), "
                  f"low light only under p95 luma {c['LOWLIGHT_MAX_P95_LUMA']:.3f} (99th percentile of "
                  f"{c['lowlight_positives']} synthetic under-exposures, strength 0.5–1). The shipped constants "
                  "(engine/analysis/analyser.py) are these, rounded.", "",
                  "| split | case | n | read hazy before | after | read low light before | after |",
                  "|---|---|---|---|---|---|---|"]
        for name, rows in (("train", fit_rows), ("held-out", held)):
            for case in dict.fromkeys(r["case"] for r in rows):
                sub = [r for r in rows if r["case"] == case]
                rate = {key: f"{100 * np.mean([r[key] >= T for r in sub]):.1f} %"
                        for key in ("haze_raw", "haze", "lowlight_raw", "lowlight")}
                lines.append(f"| {name} | {case} | {len(sub)} | {rate['haze_raw']} | {rate['haze']} | "
                             f"{rate['lowlight_raw']} | {rate['lowlight']} |")
        lines.append("")
    dehazed = [r["newly_clipped"] for r in _rows(WORK / "fit-dehaze.jsonl") if r["newly_clipped"] is not None]
    if dehazed:
        from engine.pipeline.orchestrator import MAX_NEWLY_CLIPPED

        v = np.array(dehazed)
        lines += ["## The dehazer's own output (training photos only)", "",
                  f"`fit-dehaze`: synthetic haze of {len({r['photo'] for r in _rows(WORK / 'fit-dehaze.jsonl')})} "
                  f"training photos (the photo and a warm copy, half through the camera pipeline), {len(v)} read "
                  "hazy by the hand-made analysis and dehazed by `classical.dehaze.dcp`: share of pixels driven to "
                  f"black or white median {np.median(v):.3f}, 99th percentile {np.percentile(v, 99):.3f}, "
                  f"largest {v.max():.3f}. The judge drops a dehaze stage above "
                  f"{MAX_NEWLY_CLIPPED['haze']:.2f} (`orchestrator.MAX_NEWLY_CLIPPED`).", ""]
    clean = regate(_rows(WORK / "clean.jsonl"))
    if clean:
        lines += ["## Clean photos (false positives)", "",
                  "The default analysis' haze and low-light presence on the clean photos (before: the dark channel "
                  "alone for haze, the exposure index and the network for low light; after: the gated readings and "
                  "the network both). The training rows of the fit above come from the same folder; the "
                  "held-out tenth was never fitted on.", ""] + clean_table(clean) + [""]
    before = {(r["set"], r["name"]): r for r in _rows(WORK / "readings-before.jsonl")}
    after = {(r["set"], r["name"]): r for r in _rows(WORK / "readings-after.jsonl")}
    if before and after:
        lines += ["## Readings on the validation photos (never fitted on)", "",
                  "Default analysis (hand-made + bundled network), severity before → after; ★ = presence changed.", "",
                  "| set | n | haze present before | after | low light present before | after |",
                  "|---|---|---|---|---|---|"]
        for s in VALIDATION_SETS:
            keys = [k for k in before if k[0] == s and k in after]
            if keys:
                n = {(tag, kind): sum(d[k][kind] >= T for k in keys)
                     for tag, d in (("b", before), ("a", after)) for kind in ("haze", "lowlight")}
                lines.append(f"| {s} | {len(keys)} | {n['b', 'haze']} | {n['a', 'haze']} | "
                             f"{n['b', 'lowlight']} | {n['a', 'lowlight']} |")
        lines += ["", "| set | photo | haze | low light | floor chroma | airlight | p95 luma |",
                  "|---|---|---|---|---|---|---|"]
        for k, b in before.items():
            a = after.get(k)
            if a is None or max(b["haze"], a["haze"], b["lowlight"], a["lowlight"]) < T:
                continue
            star = "★" if any((b[x] >= T) != (a[x] >= T) for x in ("haze", "lowlight")) else ""
            m = a["measurements"]
            nan = float("nan")
            lines.append(f"| {k[0]} | {k[1]} {star} | {b['haze']:.2f} → {a['haze']:.2f} | "
                         f"{b['lowlight']:.2f} → {a['lowlight']:.2f} | {m.get('veil_floor_chroma', nan):.3f} | "
                         f"{m.get('veil_airlight', nan):.3f} | {m.get('p95_luma', nan):.3f} |")
        lines.append("")
    for tagset in sorted({p.name.split("restore-")[1].rsplit("-", 1)[0] for p in WORK.glob("restore-*-before.jsonl")}):
        b = {r["name"]: r for r in _rows(WORK / f"restore-{tagset}-before.jsonl")}
        a = {r["name"]: r for r in _rows(WORK / f"restore-{tagset}-after.jsonl")}
        names = [n for n in b if n in a]
        if not names:
            continue
        gb = np.array([b[n]["psnr"] - b[n]["input"] for n in names])
        ga = np.array([a[n]["psnr"] - a[n]["input"] for n in names])
        lines += [f"## Default plan, {tagset}: {len(names)} pairs", "",
                  f"Gain over the input, before: mean {gb.mean():+.2f} dB, worst {gb.min():+.2f}, "
                  f"worse {int((gb < -0.005).sum())}; after: mean {ga.mean():+.2f} dB, worst {ga.min():+.2f}, "
                  f"worse {int((ga < -0.005).sum())}.", "",
                  "| photo | input dB | gain before | stages before | gain after | stages after |",
                  "|---|---|---|---|---|---|"]
        for n, g0, g1 in zip(names, gb, ga, strict=True):
            lines.append(f"| {n} | {b[n]['input']:.2f} | {g0:+.2f} | {', '.join(b[n]['stages'])} | {g1:+.2f} | "
                         f"{', '.join(a[n]['stages'])} |")
        lines.append("")
    notes = WORK / "notes.md"
    if notes.exists():
        lines += [notes.read_text().strip(), ""]
    RESULTS.write_text("\n".join(lines))
    print(RESULTS.read_text())
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=["fit", "fit-dehaze", "clean", "readings", "restore", "report", "_readings",
                                     "_restore"])
    ap.add_argument("--photos", type=int, default=120, help="training photos for fit")
    ap.add_argument("--held-out", type=int, default=40, help="held-out photos for fit")
    ap.add_argument("--code", type=Path, default=ROOT, help="checkout whose engine runs (readings/restore)")
    ap.add_argument("--tag", default="after", help="before/after: which rows the step writes")
    ap.add_argument("--sets", default="polyu,reside,lol,real")
    ap.add_argument("--changed", action="store_true", help="restore only pairs whose presence changed")
    ap.add_argument("--name", default="", help="label of a restore set (default: the sets)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("files", nargs="*")
    a = ap.parse_intermixed_args(argv)
    sets = [s for s in a.sets.split(",") if s]
    WORK.mkdir(parents=True, exist_ok=True)
    if a.step == "fit":
        return fit(a.photos, a.held_out)
    if a.step == "fit-dehaze":
        return fit_dehaze(a.photos)
    if a.step == "clean":
        return clean_rates()
    if a.step == "_readings":
        return readings_worker(a.out, sets)
    if a.step == "_restore":
        return restore_worker(a.out, a.files)
    if a.step == "readings":
        in_subprocess(a.code, ["_readings", "--sets", ",".join(sets), "--out", str(WORK / f"readings-{a.tag}.jsonl")])
        return 0
    if a.step == "restore":
        items = changed_items(sets) if a.changed else [i for i in validation_items(sets) if i[2] is not None]
        label = a.name or ("changed" if a.changed else "-".join(sets))
        out = WORK / f"restore-{label}-{a.tag}.jsonl"
        done = {r["name"] for r in _rows(out)}
        specs = [f"{lq}::{gt}" for _, lq, gt in items if lq.name not in done]
        if specs:
            in_subprocess(a.code, ["_restore", "--out", str(out), *specs])
        return 0
    return report()


if __name__ == "__main__":
    raise SystemExit(main())
