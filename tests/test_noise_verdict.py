"""The noise verdict on real photos: a photo the analysis calls noisy gets the noise stage in its
plan (also when the network calls it clean), a clean one does not, and the candidate features of
benchmarks/fit_noise_verdict.py (measured, not shipped: benchmarks/results/real-noise-detection.md)
respond to camera noise."""

from __future__ import annotations

import sys

import cv2
import numpy as np

from engine.analysis.analyser import analyse
from engine.analysis.report import DegradationReport, KindAssessment
from engine.experts.base import Expert, ExpertInfo, ExpertRegistry
from engine.kinds import KINDS
from engine.pipeline import build_plan
from testdata import REPO

sys.path.insert(0, str(REPO / "benchmarks"))


class Keep(Expert):
    def __init__(self, task: str) -> None:
        self.info = ExpertInfo(id=f"keep.{task}", name=task, tasks=(task,))

    def run(self, image, ctx=None):
        return image


def _wall(h: int = 256, w: int = 256) -> np.ndarray:
    x = np.linspace(0.42, 0.48, w, dtype=np.float32)
    return np.repeat(np.repeat(x[None, :, None], h, axis=0), 3, axis=2).copy()


def _blotchy(wall: np.ndarray, amplitude_255: float = 3.0, seed: int = 1) -> np.ndarray:
    """Colour noise as a camera leaves it: Cb/Cr noise blurred to 2-px blotches, with the luma grain
    (correlated over about a pixel, the same strength) that sensor noise brings with it."""
    rng = np.random.default_rng(seed)
    cb, cr, y = (cv2.GaussianBlur(rng.standard_normal(wall.shape[:2]).astype(np.float32), (0, 0), s)
                 for s in (2.0, 2.0, 0.8))
    cb, cr, y = (p / p.std() * amplitude_255 / 255.0 for p in (cb, cr, y))
    noise = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=2)
    return np.clip(wall + noise, 0, 1).astype(np.float32)


def _plan_stages(report: DegradationReport) -> list[str]:
    return [s.name for s in build_plan(report, ExpertRegistry([Keep(k) for k in KINDS])).stages]


def test_a_noisy_verdict_plans_the_noise_stage_and_a_clean_wall_does_not():
    noisy = analyse(_blotchy(_wall()), jpeg_quality=75)
    assert noisy.kinds["noise"].measurements["still_chroma_present"] == 1.0
    assert "noise" in _plan_stages(noisy)
    clean = analyse(_wall(), jpeg_quality=75)
    assert clean.severity("noise") < 0.15 and "noise" not in _plan_stages(clean)


def test_the_hand_made_noise_evidence_reaches_the_plan_when_the_network_says_clean():
    from engine.analysis.learned import combine

    hand = analyse(_blotchy(_wall()), jpeg_quality=75)
    network_clean = DegradationReport({k: KindAssessment(0.01, 0.9, {"probability": 0.05, "strength": 0.02})
                                       for k in KINDS})
    combined = combine(hand, network_clean)
    assert combined.severity("noise") >= 0.15
    assert "noise" in _plan_stages(combined)
    # Without the evidence the network's "clean" stands.
    assert "noise" not in _plan_stages(combine(analyse(_wall(), jpeg_quality=75), network_clean))


def test_the_candidate_flat_block_features_respond_to_camera_noise():
    from fit_noise_verdict import fit_logistic, verdict_features

    from engine.degrade.camera import camera_noise

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:256, 0:320].astype(np.float32)
    scene = np.repeat((0.3 + 0.3 * xx / 320 + 0.2 * yy / 256)[..., None], 3, axis=2)
    for _ in range(6):
        cy, cx, r = rng.integers(20, 236), rng.integers(20, 300), rng.integers(8, 30)
        scene[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0.1, 0.9, 3)
    for seed in range(2):
        noisy, reference, _ = camera_noise(scene, 0.45, seed=seed, jpeg=True)
        n, r = verdict_features([noisy]), verdict_features([reference])
        assert n["vf_blocks"] >= 8 and n["vf_y1"] > 2 * r["vf_y1"], seed
    tiny = verdict_features([np.full((8, 8, 3), 0.5, np.float32)])
    assert tiny["vf_blocks"] == 0.0
    # The fitter finds the separating direction of a plain two-class problem.
    x = np.r_[rng.normal(-1, 0.5, (200, 2)), rng.normal(1, 0.5, (200, 2))]
    w = fit_logistic(x, np.r_[np.zeros(200), np.ones(200)])
    assert w[1] > 1 and w[2] > 1 and abs(w[0]) < 0.5
    assert np.mean((x @ w[1:] + w[0] > 0) == np.r_[np.zeros(200), np.ones(200)]) > 0.95
