"""Does the noise stage still help after the JPEG stage? A probe on TRAINING photos.

The JPEG restorer's denoiser prior smooths the fine-scale noise the analysis reads, so after a JPEG
stage a noisy JPEG reads about no noise and the orchestrator skipped the noise stage ("nothing left
to fix"). Per training photo (``training.data.split`` of ../shared/data/clean, a seeded draw): JPEG
alone (strength U(0.2, 0.7)) and noise (U(0.15, 0.6)) then JPEG, each restored by the default plan and
with the noise stage forced at full strength (``probe``), the analysis' noise measurements recorded;
``recheck`` re-runs the default plan of the checkout on every recorded case. Rows in
benchmarks/results/noise-after-jpeg/; the numbers are in benchmarks/results/evaluation-default-plan.md.

Run: ``python benchmarks/noise_after_jpeg.py probe --photos 40``; ``… recheck``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = ROOT / "benchmarks" / "results" / "noise-after-jpeg"
KEYS = ("sigma_255", "noise_index_255", "nlf_fine_255", "nlf_coarse_255", "nlf_half_255", "sigma_measured_255",
        "sigma_told_255", "sigma_two_scale_255", "learned_probability", "learned_strength")


def _restorer():
    from engine.experts.default import build_registry
    from engine.pipeline.job import Restorer

    return Restorer(build_registry())


def _train() -> list[Path]:
    from training.data import list_images, split

    return split(list_images(ROOT.parent / "shared" / "data" / "clean"))[0]


def _restore(restorer, deg: np.ndarray, options):
    from engine.photo import Photo

    return restorer.restore_photo(Photo(pixels=deg), options)


def probe(photos: int) -> int:
    from engine.degrade import degrade_chain
    from engine.pipeline.job import RestoreOptions
    from training.data import load_uint8, to_float
    from training.metrics import psnr

    restorer, train = _restorer(), _train()
    out = WORK / "nj_probe.jsonl"
    done = {json.loads(line)["photo"] for line in out.read_text().splitlines()} if out.exists() else set()
    with out.open("a") as f:
        for j in np.random.default_rng(21).permutation(len(train))[:photos]:
            p = train[int(j)]
            if p.name in done:
                continue
            rng = np.random.default_rng([21, int(j)])
            clean = to_float(load_uint8(p))
            for name, steps in (("jpeg", [("jpeg", float(rng.uniform(0.2, 0.7)))]),
                                ("noise+jpeg", [("noise", float(rng.uniform(0.15, 0.6))),
                                                ("jpeg", float(rng.uniform(0.2, 0.7)))])):
                deg = degrade_chain(clean, steps, seed=int(j) * 3 + len(name))
                row = {"photo": p.name, "case": name, "steps": steps, "input": psnr(deg, clean)}
                for tag, opt in (("default", RestoreOptions()), ("forced", RestoreOptions(strengths={"noise": 1.0}))):
                    o, res = _restore(restorer, deg, opt)
                    row[tag] = psnr(o.pixels, clean)
                    row[tag + "_stages"] = [(s.get("stage"), s.get("expert"), bool(s.get("dropped")),
                                             (s.get("reason") or "")[:60]) for s in res.stages]
                    if tag == "default":
                        row["sev"] = {k: round(a.severity, 3) for k, a in res.report.kinds.items()}
                        m = res.report.kinds["noise"].measurements
                        row.update({k: m.get(k) for k in KEYS})
                        row["blockiness"] = res.report.kinds["jpeg"].measurements.get("blockiness")
                f.write(json.dumps(row, default=float) + "\n")
                f.flush()
    return 0


def recheck() -> int:
    from engine.degrade import degrade_chain
    from engine.pipeline.job import RestoreOptions
    from training.data import load_uint8, to_float
    from training.metrics import psnr

    restorer = _restorer()
    index = {p.name: (i, p) for i, p in enumerate(_train())}
    rows = [json.loads(line) for line in (WORK / "nj_probe.jsonl").read_text().splitlines()]
    with (WORK / "nj_probe2.jsonl").open("w") as f:
        for row in rows:
            j, p = index[row["photo"]]
            clean = to_float(load_uint8(p))
            deg = degrade_chain(clean, [tuple(s) for s in row["steps"]], seed=j * 3 + len(row["case"]))
            o, res = _restore(restorer, deg, RestoreOptions())
            f.write(json.dumps({"photo": row["photo"], "case": row["case"], "before": row["default"],
                                "forced": row["forced"], "now": psnr(o.pixels, clean),
                                "stages": [(s.get("stage"), bool(s.get("dropped")), (s.get("reason") or "")[:50])
                                           for s in res.stages]}) + "\n")
            f.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("step", choices=("probe", "recheck"))
    p.add_argument("--photos", type=int, default=40)
    a = p.parse_args(argv)
    return probe(a.photos) if a.step == "probe" else recheck()


if __name__ == "__main__":
    sys.exit(main())
