"""Does the JPEG stage make clean JPEG content worse, and can the file itself tell the prior how much
to smooth? (issue 11; ``benchmarks/results/jpeg-clean-prior.md``)

``real-noise-learned-detector.md`` found the shipped stage (:class:`engine.experts.jpeg_restore.JpegQcpRestorer`
with FFDNet) making enlarged clean content worse than the file (``clean_big``: −0.27 dB mean over 24).
This script measures, on TRAINING photos only, the stage with its luma prior told a fraction of its
σ (:data:`LUMA_SCALES`; 0: the file's own luma is the estimate), its chroma prior told a fraction
of its σ (:data:`CHROMA_SCALES`; 0: the file's own chroma), the camera-save chroma widening on or
off, and the file statistics a rule could read (:func:`file_statistics`). ``--fit`` then chooses the rule.

Cases: the six kinds of ``real_noise_learned.make_cases`` (``clean``, ``clean_big``, ``cleancam``,
``cleancam_big``, ``noisy``, ``noisy_big``: the photo re-saved, its smoothest window enlarged 2–10x
and re-saved, the camera pipeline ``engine.degrade.camera`` without and with noise, its in-camera
JPEG, re-saved), on training-split photos of ``../shared/data/clean`` (the detector fit's order),
final save at IJG quality U{:data:`QUALITIES`} (files at
:data:`engine.analysis.jpeg_tables.CLEAN_QUALITY` or above come out of the stage untouched, so
they are not drawn). Gains are dB over the decoded file, both rounded to 8 bits.

The faint kinds (``--faint N``: ``faint`` / ``faint_big``, camera noise strength :data:`FAINT`) were
added after a first rule, fitted on the six kinds alone, lowered a real PolyU crop holding little
measured noise (a choice made after seeing validation numbers; said in the results file).
``--polyu`` then validates the rules of :data:`POLYU_RULES` on the real PolyU crops (never fitted on).
The engine is unchanged: the fitted rule made 4 of the 27 JPEG-only crops worse than the shipped stage.

Run: ``nice -n 10 OMP_NUM_THREADS=1 python benchmarks/jpeg_clean_prior.py --cache DIR --photos N``
(resumable, one JSON line per photo), ``--faint N``, then ``--fit [--out FILE]`` and ``--polyu 3``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from real_noise_learned import KINDS, SEED, SHARED, make_cases  # noqa: E402

#: IJG save qualities drawn (upper bound exclusive): the heavy-JPEG rule (< 60) and the camera band (60–89).
QUALITIES = (50, 90)
LUMA_SCALES = (0.0, 0.25, 0.5, 0.75, 1.0)
CHROMA_SCALES = (0.0, 0.25, 0.5, 1.0)
#: Camera noise strength of the faint kinds (``--faint``): the ``noisy`` / ``noisy_big`` cases of
#: ``real_noise_learned.make_cases`` with weaker noise, named ``faint`` / ``faint_big``.
FAINT = (0.02, 0.15)
FAINT_KINDS = ("faint", "faint_big")


def _quant(q: int):
    from engine.analysis.jpeg_tables import STD_CHROMA, STD_LUMA, JpegQuantisation, ijg_table

    return JpegQuantisation((ijg_table(STD_LUMA, q), ijg_table(STD_CHROMA, q), ijg_table(STD_CHROMA, q)),
                            ((2, 2), (1, 1), (1, 1)))


def file_statistics(decoded: np.ndarray, quant, estimate: np.ndarray) -> dict:
    """What the file shows, for a rule to read: ``band_y`` / ``band_y_hi`` (the luma noise the file
    holds at DCT frequencies u+v 1..5 / 3..8: RMS of :func:`engine.experts.classical.jpeg_qcp.band_noise_255`
    against ``estimate``, the stage's prior estimate, 0..255 DCT units), ``band_c`` (the same for
    Cb and Cr at u+v 1..5), and from ``real_noise_learned.features``: ``flat_share`` (blocks whose
    low frequencies quantised to 0, 0..1), ``flat_hi_any`` (of those, the share holding any
    non-zero coefficient at u+v 3..8, 0..1)."""
    from real_noise_learned import FEATURE_NAMES, features

    from engine.experts.classical.jpeg_qcp import band_noise_255, constraints

    u, v = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    low, high = (u + v >= 1) & (u + v <= 5), (u + v >= 3) & (u + v <= 8)
    cons = constraints(decoded, quant)
    noise = band_noise_255(estimate, cons)
    f = features(decoded, quant.tables[0].astype(np.float64), quant.tables[1].astype(np.float64))
    return {"band_y": float(np.sqrt((noise[0][low].astype(np.float64) ** 2).mean())),
            "band_y_hi": float(np.sqrt((noise[0][high].astype(np.float64) ** 2).mean())),
            "band_c": float(np.sqrt(np.mean([(n[low].astype(np.float64) ** 2).mean() for n in noise[1:]]))),
            "flat_share": float(f[FEATURE_NAMES.index("flat_share")]),
            "flat_hi_any": float(f[FEATURE_NAMES.index("flat_hi_any")])}


def measure_case(decoded: np.ndarray, ref: np.ndarray, q: int, ffd, stage=None) -> dict:
    """Gains (dB over the file, 8-bit) of every variant ``L<luma scale>_C<chroma scale>_W<widen>``."""
    from _host import q8

    from engine.experts import jpeg_restore as jr
    from engine.experts.base import ExpertContext
    from engine.experts.classical.jpeg_qcp import constraints, project_upright
    from training.metrics import psnr

    quant = _quant(q)
    base = psnr(q8(decoded), ref)
    luma_s, chroma_s = jr.luma_sigma_255(quant), jr.chroma_sigma_255(quant)
    runs: dict[float, np.ndarray] = {0.0: decoded}

    def prior(sigma: float) -> np.ndarray:
        key = round(sigma, 4)
        if key not in runs:
            runs[key] = ffd.run_plain(decoded, ExpertContext(noise_sigma=np.float32(sigma / 255.0)))
        return runs[key]

    cons0 = constraints(decoded, quant)
    row = {"quality": q, "input": base, "luma_sigma": luma_s, "chroma_sigma": chroma_s}
    shipped = None
    for ls in LUMA_SCALES:
        for cs in CHROMA_SCALES:
            est = jr.luma_from(prior(ls * luma_s), prior(cs * chroma_s))
            for w in (0, 1):
                if w and not jr._camera_save(quant):
                    continue
                cons = jr.chroma_noise_widened(cons0, est) if w else cons0
                out = project_upright(est, decoded, quant, cons)
                row[f"L{ls:g}_C{cs:g}_W{w}"] = psnr(q8(out), ref) - base
                if ls == 1.0 and cs == 1.0 and w == int(jr._camera_save(quant)):
                    shipped = out
                    row.update(file_statistics(decoded, quant, est))
    row["shipped_widen"] = int(jr._camera_save(quant))
    row["shipped"] = row[f"L1_C1_W{row['shipped_widen']}"]
    if stage is not None:
        from engine.analysis.jpeg_tables import JpegSource

        ref_out = stage.run(decoded, ExpertContext(jpeg=JpegSource(quant, decoded)))
        row["stage_check"] = float(np.abs(ref_out - shipped).max())
    return row


def build(cache: Path, photos: int) -> None:
    from real_noise import ffdnet_expert

    from engine.experts.default import build_registry
    from engine.experts.jpeg_restore import JpegQcpRestorer
    from training.data import load_split, load_uint8, to_float

    cache.mkdir(parents=True, exist_ok=True)
    path = cache / "cases.jsonl"
    done = {json.loads(x)["photo"] for x in path.read_text().splitlines()} if path.is_file() else set()
    train, _ = load_split(SHARED / "data" / "clean")
    order = np.random.default_rng(SEED).permutation(len(train))
    ffd = ffdnet_expert()
    stage = next(e for e in build_registry().for_task("jpeg") if isinstance(e, JpegQcpRestorer))
    for i in range(min(photos, len(train))):
        if i in done:
            continue
        t0 = time.time()
        cases = make_cases(i, to_float(load_uint8(train[order[i]])), refs=True, qualities=QUALITIES)
        rows = {}
        for kind, q in zip(KINDS, cases["quality"], strict=True):
            rows[kind] = measure_case(cases[kind], cases[f"ref_{kind}"], int(q), ffd,
                                      stage if i == 0 else None)
        with path.open("a") as f:
            f.write(json.dumps({"photo": i, "name": train[order[i]].name, "cases": rows}) + "\n")
        print(f"  {i} {train[order[i]].name} {time.time() - t0:.0f}s " + " ".join(
            f"{k} q{r['quality']} {r['shipped']:+.2f}/{r['L0.5_C1_W0']:+.2f} by{r['band_y']:.2f}"
            for k, r in rows.items()), file=sys.stderr, flush=True)


CLEAN_KINDS = ("clean", "clean_big", "cleancam", "cleancam_big")
NOISY_KINDS = ("noisy", "noisy_big") + FAINT_KINDS
ALL_KINDS = KINDS + FAINT_KINDS
#: Candidate gains g of the rule σ = min(shipped σ, g · feature) (∞: the shipped σ).
GAINS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, float("inf"))
LUMA_FEATURES = ("band_y", "band_y_hi", "band_c")
CHROMA_FEATURES = ("band_c", "band_y")
#: A clean case may lose at most this much against the file (dB): interpolation between measured scales.
CLEAN_FLOOR_DB = -0.02
#: A rule keeps the noisy kinds' gains when each kind's mean is within this of shipped (dB).
NOISY_TOLERANCE_DB = 0.01


#: A case whose file already equals its reference to this PSNR (dB; 100 is "identical" in
#: ``training.metrics.psnr``) is left out of the fit and counted apart: a saturated or flat window whose
#: every changed level costs several dB.
DEGENERATE_DB = 60.0


def load(cache: Path, degenerate: bool = False) -> list[tuple[str, dict]]:
    """Every measured case as (kind, row); those at or above :data:`DEGENERATE_DB` only with ``degenerate``."""
    out = []
    faint = cache / "faint.jsonl"
    for path in [cache / "cases.jsonl"] + ([faint] if faint.is_file() else []):
        for line in path.read_text().splitlines():
            for kind, row in json.loads(line)["cases"].items():
                if (row["input"] >= DEGENERATE_DB) == degenerate:
                    out.append((kind, row))
    return out


def _interp(xs: tuple[float, ...], x: float) -> tuple[int, int, float]:
    x = min(max(x, xs[0]), xs[-1])
    j = int(np.searchsorted(xs, x, side="right")) - 1
    j = min(j, len(xs) - 2)
    return j, j + 1, (x - xs[j]) / (xs[j + 1] - xs[j])


def gain_at(row: dict, luma_scale: float, chroma_scale: float) -> float:
    """The case's gain (dB) with the priors told these fractions of their shipped σ, bilinear between
    the measured scales; the camera-save widening as shipped."""
    w = row["shipped_widen"] if "shipped_widen" in row else int("L1_C1_W1" in row)
    a0, a1, ta = _interp(LUMA_SCALES, luma_scale)
    b0, b1, tb = _interp(CHROMA_SCALES, chroma_scale)

    def g(i: int, k: int) -> float:
        return row[f"L{LUMA_SCALES[i]:g}_C{CHROMA_SCALES[k]:g}_W{w}"]

    return ((1 - ta) * ((1 - tb) * g(a0, b0) + tb * g(a0, b1)) + ta * ((1 - tb) * g(a1, b0) + tb * g(a1, b1)))


def rule_scales(row: dict, luma_feature: str, luma_gain: float, chroma_feature: str,
                chroma_gain: float) -> tuple[float, float]:
    """(luma, chroma) fractions of the shipped σ the rule σ = min(shipped, gain · feature) tells."""
    ls = min(1.0, luma_gain * row[luma_feature] / row["luma_sigma"])
    cs = min(1.0, chroma_gain * row[chroma_feature] / row["chroma_sigma"])
    return ls, cs


def _summary(cases: list[tuple[str, dict]], gains: np.ndarray) -> dict:
    out = {}
    for kind in ALL_KINDS:
        g = gains[[k == kind for k, _ in cases]]
        if g.size:
            out[kind] = (float(g.mean()), float(g.min()), int((g < 0).sum()), int(g.size))
    return out


def fit(cache: Path) -> list[str]:
    """Every rule of the grid on the measured cases. Chosen: among the rules that keep each noisy
    kind's mean within :data:`NOISY_TOLERANCE_DB` of shipped, the fewest clean cases below the file
    (by more than :data:`CLEAN_FLOOR_DB`), then the best clean worst case, then the most mean gain.
    Also shown: the rules that keep every clean case at the file or better, by what they cost the
    noisy kinds."""
    cases = load(cache)
    shipped = np.array([r["shipped"] for _, r in cases])
    base = _summary(cases, shipped)
    kinds = np.array([k for k, _ in cases])
    is_clean = np.isin(kinds, CLEAN_KINDS)
    table = []
    for lf in LUMA_FEATURES:
        for lg in GAINS:
            for cf in CHROMA_FEATURES:
                for cg in GAINS:
                    g = np.array([gain_at(r, *rule_scales(r, lf, lg, cf, cg)) for _, r in cases])
                    s = _summary(cases, g)
                    loss = min(s[k][0] - base[k][0] for k in NOISY_KINDS if k in s)
                    below = int((g[is_clean] < CLEAN_FLOOR_DB).sum())
                    ok = loss >= -NOISY_TOLERANCE_DB
                    table.append((ok, float(g.mean()), lf, lg, cf, cg, s, g, below, float(g[is_clean].min()), loss))
    table.sort(key=lambda t: (not t[0], t[8], -t[9], -t[1]))
    safe = sorted((t for t in table if t[8] == 0), key=lambda t: -t[10])
    odd = load(cache, degenerate=True)
    lines = [f"{len(odd)} cases whose file equals its reference (≥ {DEGENERATE_DB:g} dB) left out: shipped "
             + ", ".join(f"{k} {r['shipped']:+.2f}" for k, r in odd) + "; chosen rule " + ", ".join(
                 f"{k} {gain_at(r, *rule_scales(r, *table[0][2:6])):+.2f}" for k, r in odd), "",
             f"{len(cases)} cases; gain over the file, dB: "
             "mean / worst / cases below the file", "",
             "| rule | all mean | " + " | ".join(ALL_KINDS) + " | noisy kinds kept | clean cases below the file |",
             "|---" * (4 + len(ALL_KINDS)) + "|"]

    def cells(s):
        return " | ".join(f"{s[k][0]:+.2f} / {s[k][1]:+.2f} / {s[k][2]}" if k in s else "-" for k in ALL_KINDS)

    n_below = int((shipped[is_clean] < CLEAN_FLOOR_DB).sum())
    lines.append(f"| shipped | {shipped.mean():+.3f} | {cells(base)} | | {n_below} |")

    def line(t):
        ok, m, lf, lg, cf, cg, s, _, below = t[:9]
        return (f"| luma {lg:g}·{lf}, chroma {cg:g}·{cf} | {m:+.3f} | {cells(s)} | {'yes' if ok else 'no'} "
                f"({t[10]:+.3f}) | {below} |")

    lines += [line(t) for t in table[:8]]
    lines += ["| *no clean case below the file, least cost to the noisy kinds:* |" + " |" * (3 + len(ALL_KINDS))]
    lines += [line(t) for t in safe[:4]]
    best = table[0]
    lines += ["", f"Chosen: luma σ = min(shipped, {best[3]:g} · {best[2]}), chroma σ = min(shipped, "
              f"{best[5]:g} · {best[4]})."]
    by_q = []
    for name, lo, hi in (("q50–59 (heavy rule)", 50, 60), ("q60–74", 60, 75), ("q75–89", 75, 90)):
        sel = np.array([lo <= r["quality"] < hi for _, r in cases])
        for kinds, label in ((CLEAN_KINDS, "clean kinds"), (NOISY_KINDS, "noisy kinds")):
            m = sel & np.array([k in kinds for k, _ in cases])
            if m.any():
                by_q.append(f"| {name} | {label} | {int(m.sum())} | {shipped[m].mean():+.2f} / {shipped[m].min():+.2f} "
                            f"| {best[7][m].mean():+.2f} / {best[7][m].min():+.2f} |")
    lines += ["", "| quality | kinds | n | shipped mean / worst | chosen mean / worst |",
              "|---|---|---|---|---|"] + by_q
    return lines


HEADROOM_MD = ROOT / "benchmarks" / "results" / "real-noise-headroom.md"


def jpeg_only_crops() -> list[str]:
    """The 27 PolyU crops the default plan gives only the JPEG stage (the per-crop table of
    ``real-noise-headroom.md``)."""
    names, on = [], False
    for line in HEADROOM_MD.read_text().splitlines():
        if line.startswith("| crop | input | JPEG stage |"):
            on = True
            continue
        if on:
            if not line.startswith("|"):
                break
            cell = line.split("|")[1].strip()
            if cell.endswith(".JPG"):
                names.append(cell)
    return names


#: The rules ``--polyu`` measures: (label, luma feature, luma gain, chroma feature, chroma gain).
POLYU_RULES = (("luma 4·band_y, chroma 12·band_y (the fit's choice)", "band_y", 4.0, "band_y", 12.0),
               ("luma 2·band_y, chroma 4·band_y (no clean case below the file)", "band_y", 2.0, "band_y", 4.0))


def polyu(cache: Path, every: int = 1, limit: int = 0) -> list[str]:
    """Validation only (nothing fitted here): the JPEG stage as shipped and with each of
    :data:`POLYU_RULES` capping its priors' σ, on the PolyU crops (the 27 JPEG-only crops first, then
    every ``every``-th other), PSNR against the ground truth (8-bit, in memory, dB). Resumable
    (``polyu.jsonl`` in ``cache``)."""
    from real_noise import PAIRS, ffdnet_expert, jpeg_source, load, metrics

    from engine.experts import jpeg_restore as jr
    from engine.experts.base import ExpertContext
    from engine.experts.classical.jpeg_qcp import band_noise_255, constraints, project_upright, to_stored

    root = PAIRS / "noise_real_polyu_crops"
    only = jpeg_only_crops()
    rest = sorted(p.name for p in (root / "lq").iterdir() if p.name not in only)
    names = (only + rest[::every])[:limit or None]
    path = cache / "polyu.jsonl"
    cache.mkdir(parents=True, exist_ok=True)
    done = {json.loads(x)["name"]: json.loads(x) for x in path.read_text().splitlines()} if path.is_file() else {}
    ffd = ffdnet_expert()
    u, v = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    low = (u + v >= 1) & (u + v <= 5)
    for name in names:
        if name in done:
            continue
        lq, gt = load(root / "lq" / name), load(root / "gt" / name)
        source = jpeg_source(root / "lq" / name)
        quant, decoded = source.quantisation, source.decoded
        runs: dict[float, np.ndarray] = {0.0: lq}

        def prior(sigma: float, runs=runs, lq=lq) -> np.ndarray:
            key = round(sigma, 4)
            if key not in runs:
                runs[key] = ffd.run_plain(lq, ExpertContext(noise_sigma=np.float32(sigma / 255.0)))
            return runs[key]

        cons = constraints(to_stored(decoded, quant.orientation), quant)
        camera = jr._camera_save(quant)

        def stage(luma_s: float, chroma_s: float, cons=cons, camera=camera, quant=quant, decoded=decoded,
                  prior=prior) -> tuple[np.ndarray, np.ndarray]:
            est = jr.luma_from(prior(luma_s), prior(chroma_s))
            c = jr.chroma_noise_widened(cons, to_stored(est, quant.orientation)) if camera else cons
            return project_upright(est, decoded, quant, c), est

        luma_s, chroma_s = jr.luma_sigma_255(quant), jr.chroma_sigma_255(quant)
        shipped, est = stage(luma_s, chroma_s)
        noise = band_noise_255(to_stored(est, quant.orientation), cons)
        stats = {"band_y": float(np.sqrt((noise[0][low].astype(np.float64) ** 2).mean())),
                 "band_c": float(np.sqrt(np.mean([(n[low].astype(np.float64) ** 2).mean() for n in noise[1:]])))}
        row = {"name": name, "jpeg_only": name in only, "input": metrics(lq, gt)[0],
               "before": metrics(shipped, gt)[0], "shipped_sigmas": (luma_s, chroma_s), **stats, "rules": {}}
        for label, lf, lg, cf, cg in POLYU_RULES:
            sig = (min(luma_s, lg * stats[lf]), min(chroma_s, cg * stats[cf]))
            row["rules"][label] = {"sigmas": sig, "after": metrics(stage(*sig)[0], gt)[0]}
        done[name] = row
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"  {name} band_y {stats['band_y']:.2f} band_c {stats['band_c']:.2f} "
              f"{row['before'] - row['input']:+.2f} -> "
              + " ".join(f"{r['after'] - row['input']:+.2f} (σ {r['sigmas'][0]:.1f}/{r['sigmas'][1]:.1f})"
                         for r in row["rules"].values()), file=sys.stderr, flush=True)
    lines = []
    for label, *_ in POLYU_RULES:
        lines += ["", f"Rule: {label}", ""] + _polyu_table(done, label)
    held = np.array([r["band_y"] for r in done.values()])
    lines.append(f"\nband_y on the crops (0..255 DCT units): min {held.min():.2f}, median {np.median(held):.2f}, "
                 f"max {held.max():.2f}.")
    return lines


def _polyu_table(done: dict, rule: str) -> list[str]:
    lines = ["| crops | n | JPEG stage before: gain over input mean / worst | after: mean / worst | "
             "after − before: mean / worst / best | crops capped | crops worse than before (> 0.005 dB) | "
             "crops below input before → after |",
             "|---|---|---|---|---|---|---|---|"]
    for label, sel in (("JPEG-only (27)", lambda r: r["jpeg_only"]), ("the other crops", lambda r: not r["jpeg_only"]),
                       ("all measured", lambda r: True)):
        rows = [r for r in done.values() if sel(r)]
        if not rows:
            continue
        worse = sum(r["rules"][rule]["after"] < r["before"] - 0.005 for r in rows)
        b = np.array([r["before"] - r["input"] for r in rows])
        a = np.array([r["rules"][rule]["after"] - r["input"] for r in rows])
        d = a - b
        capped = sum(r["rules"][rule]["sigmas"][0] < r["shipped_sigmas"][0] - 1e-6
                     or r["rules"][rule]["sigmas"][1] < r["shipped_sigmas"][1] - 1e-6 for r in rows)
        lines.append(f"| {label} | {len(rows)} | {b.mean():+.3f} / {b.min():+.2f} | {a.mean():+.3f} / {a.min():+.2f} | "
                     f"{d.mean():+.3f} / {d.min():+.3f} / {d.max():+.3f} | {capped} | {worse} | {int((b < 0).sum())} → "
                     f"{int((a < 0).sum())} |")
    return lines


def build_faint(cache: Path, photos: int) -> None:
    """The :data:`FAINT_KINDS` of the first ``photos`` photos :func:`build` measured (``faint.jsonl``)."""
    from real_noise import ffdnet_expert

    from training.data import load_split, load_uint8, to_float

    measured = sorted(json.loads(x)["photo"] for x in (cache / "cases.jsonl").read_text().splitlines())
    path = cache / "faint.jsonl"
    done = {json.loads(x)["photo"] for x in path.read_text().splitlines()} if path.is_file() else set()
    train, _ = load_split(SHARED / "data" / "clean")
    order = np.random.default_rng(SEED).permutation(len(train))
    ffd = ffdnet_expert()
    for i in measured[:photos]:
        if i in done:
            continue
        cases = make_cases(i, to_float(load_uint8(train[order[i]])), refs=True, qualities=QUALITIES, noise=FAINT)
        rows = {}
        for kind, faint in (("noisy", "faint"), ("noisy_big", "faint_big")):
            q = int(cases["quality"][KINDS.index(kind)])
            rows[faint] = measure_case(cases[kind], cases[f"ref_{kind}"], q, ffd)
        with path.open("a") as f:
            f.write(json.dumps({"photo": i, "name": train[order[i]].name, "cases": rows}) + "\n")
        print(f"  faint {i} " + " ".join(f"{k} q{r['quality']} {r['shipped']:+.2f} by{r['band_y']:.2f} "
                                         f"bc{r['band_c']:.2f}" for k, r in rows.items()), file=sys.stderr, flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--photos", type=int, default=40)
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--faint", type=int, default=0, help="measure the faint kinds on this many measured photos")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--polyu", type=int, default=0, help="validate on the PolyU crops (every N-th besides the 27)")
    ap.add_argument("--limit", type=int, default=0, help="--polyu: at most this many crops")
    args = ap.parse_args(argv)
    if args.faint:
        build_faint(args.cache, args.faint)
        return 0
    if args.polyu:
        print("\n".join(polyu(args.cache, args.polyu, args.limit)))
        return 0
    if args.fit:
        text = "\n".join(fit(args.cache))
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
        return 0
    build(args.cache, args.photos)
    return 0


if __name__ == "__main__":
    sys.exit(main())
