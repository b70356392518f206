"""Luma grain over a large still area (engine.analysis.noise_level.still_luma): the noise a camera JPEG
keeps on a wall or a desk once its chroma tables removed the colour noise, its quality-dependent
clean-photo threshold, the still area it needs, and how its verdict reaches the plan."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest

from engine.analysis.noise_level import (STILL_LUMA_THRESHOLDS, still_block_maps, still_chroma, still_evidence,
                                         still_luma, still_luma_severity, still_luma_threshold_255)


def _wall(h: int = 512, w: int = 512, level: float = 0.45) -> np.ndarray:
    """A flat grey wall with a faint, smooth horizontal shading."""
    x = np.linspace(level - 0.03, level + 0.03, w, dtype=np.float32)
    return np.repeat(np.repeat(x[None, :, None], h, axis=0), 3, axis=2).copy()


def _grain(shape: tuple[int, int], amplitude_255: float, seed: int) -> np.ndarray:
    """Luma noise correlated over about a pixel, as a camera's demosaicing and luma noise reduction
    leave it, std ≈ ``amplitude_255`` 8-bit levels, the same in R, G and B."""
    n = cv2.GaussianBlur(np.random.default_rng(seed).standard_normal(shape).astype(np.float32), (0, 0), 0.8)
    return (n / n.std() * amplitude_255 / 255.0)[..., None]


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"), np.float32) / 255.0


def test_grain_on_a_large_flat_wall_is_found_and_the_clean_wall_is_not():
    wall = _wall()
    clean = still_luma([_jpeg(wall, 75)], 75)
    assert clean["still_share"] > 0.9 and clean["still_luma_present"] == 0.0
    assert clean["still_luma_255"] < 0.3
    grainy = _jpeg(np.clip(wall + _grain(wall.shape[:2], 3.0, seed=1), 0, 1), 75)
    m = still_luma([grainy], 75)
    assert m["still_luma_present"] == 1.0 and m["still_luma_255"] > m["still_luma_threshold_255"]
    assert m["still_luma_threshold_255"] == pytest.approx(still_luma_threshold_255(75))
    # Deterministic, and the severity rises with the grain.
    assert still_luma([grainy], 75) == m
    stronger = still_luma([_jpeg(np.clip(wall + _grain(wall.shape[:2], 5.0, seed=1), 0, 1), 75)], 75)
    assert 0.15 <= still_luma_severity(m) < still_luma_severity(stronger) <= 1.0
    assert still_luma_severity(clean) == 0.0


def test_a_scene_with_little_still_area_is_not_measured():
    """The few smoothest blocks of a textured scene are texture, not a noise floor: with still blocks
    under the share the measurement needs, nothing is measured, however grainy they are."""
    rng = np.random.default_rng(3)
    texture = np.clip(cv2.GaussianBlur(rng.random((512, 512, 3)).astype(np.float32), (0, 0), 3.0) * 4 - 1.5, 0, 1)
    wall = _wall(512, 512)
    mixed = texture.copy()
    mixed[:48] = wall[:48] + _grain((48, 512), 3.0, seed=4)  # a strip of grainy wall: 3 of 32 block rows
    m = still_luma([np.clip(mixed, 0, 1)], 75)
    assert 0.0 < m["still_share"] < 0.125
    assert m["still_luma_255"] == 0.0 and m["still_luma_present"] == 0.0
    tiny = still_luma([np.full((8, 8, 3), 0.5, np.float32)])
    assert tiny["still_share"] == 0.0 and tiny["still_luma_present"] == 0.0


def test_one_pass_gives_the_chroma_and_the_luma_evidence():
    img = _jpeg(np.clip(_wall() + _grain((512, 512), 2.0, seed=5), 0, 1), 80)
    both = still_evidence([img], 80)
    assert both == still_chroma([img], 80) | still_luma([img], 80)
    maps = still_block_maps(img)
    assert maps["still"].shape == (32, 32) and maps["luma"].shape == (32, 32)
    assert not (maps["still"] & ~maps["unclipped"]).any()


def test_the_threshold_falls_with_the_files_jpeg_quality():
    qs = [q for q, _ in STILL_LUMA_THRESHOLDS]
    assert qs == sorted(qs)
    assert still_luma_threshold_255(None) == STILL_LUMA_THRESHOLDS[-1][1]
    assert still_luma_threshold_255(40) == STILL_LUMA_THRESHOLDS[0][1]
    assert still_luma_threshold_255(75) <= still_luma_threshold_255(85) <= still_luma_threshold_255(100)
    assert all(0.3 < t < 4.0 for _, t in STILL_LUMA_THRESHOLDS)


def test_still_luma_overrides_the_networks_absent_verdict_and_credits_only_the_noise_stage():
    from engine.analysis.learned import HANDMADE_EVIDENCE_KEYS, combine
    from engine.analysis.report import DegradationReport, KindAssessment
    from engine.kinds import KINDS
    from engine.pipeline.orchestrator import NOISE_CREDIT_ONLY_TO_NOISE

    def report(sev: float, **noise_m: float) -> DegradationReport:
        return DegradationReport({k: KindAssessment(sev if k == "noise" else 0.0,
                                                    measurements=dict(noise_m) if k == "noise" else {}) for k in KINDS})

    learned_absent = report(0.02, probability=0.1, strength=0.05)
    assert combine(report(0.3, still_luma_present=1.0), learned_absent).severity("noise") == pytest.approx(0.3)
    assert combine(report(0.3, still_luma_present=0.0), learned_absent).severity("noise") < 0.15
    assert "still_luma_present" in HANDMADE_EVIDENCE_KEYS and "still_luma_present" in NOISE_CREDIT_ONLY_TO_NOISE


def test_the_analysis_reports_still_luma_noise():
    from engine.analysis.analyser import analyse

    grainy = _jpeg(np.clip(_wall() + _grain((512, 512), 4.0, seed=6), 0, 1), 75)
    noisy = analyse(grainy, jpeg_quality=75)
    assert noisy.kinds["noise"].measurements["still_luma_present"] == 1.0
    assert noisy.severity("noise") >= 0.15
    clean = analyse(_jpeg(_wall(), 75), jpeg_quality=75)
    assert clean.kinds["noise"].measurements["still_luma_present"] == 0.0


def test_the_jpeg_domain_variant_reads_the_files_own_coefficients():
    """benchmarks/calibrate_still_luma.py --variants (measured, not shipped: still-luma-variants.md): on the
    photo's 8-px grid, the decoded luma's DCT divided by the file's IJG table lands near integers, a clean
    JPEG wall quantises to zero AC in its still blocks and grain on it leaves non-zero ones."""
    import sys

    import cv2

    from engine.analysis.jpeg_tables import STD_LUMA, ijg_table
    from engine.color import JFIF_YCBCR
    from testdata import REPO
    sys.path.insert(0, str(REPO / "benchmarks"))
    from calibrate_still_luma import VARIANTS, _variant_blocks, _variant_values, _zigzag

    zz = _zigzag()
    assert sorted(zz) == list(range(64)) and list(zz[:6]) == [0, 1, 8, 16, 9, 2]
    wall = _wall()
    grainy = _jpeg(np.clip(wall + _grain(wall.shape[:2], 3.0, seed=2), 0, 1), 75)
    y = (grainy * 255.0) @ JFIF_YCBCR.T
    block = y[64:72, 64:72, 0].astype(np.float32) - 128.0
    ratio = cv2.dct(block) / ijg_table(STD_LUMA, 75)
    assert np.abs(ratio - np.rint(ratio)).max() < 0.25
    clean = _variant_values(_variant_blocks(_jpeg(wall, 75), 75), (slice(None), slice(None)))
    noisy = _variant_values(_variant_blocks(grainy, 75), (slice(None), slice(None)))
    count = next(n for n in VARIANTS if "mean non-zero" in n)
    zero = next(n for n in VARIANTS if "all those AC zero" in n)
    assert clean[count] < 0.1 < 1.0 < noisy[count]
    assert clean[zero] > 0.9 > 0.5 > noisy[zero]
    shipped = next(n for n in VARIANTS if n.startswith("shipped"))
    assert noisy[shipped] == pytest.approx(still_luma([grainy], 75)["still_luma_255"], abs=1e-5)
