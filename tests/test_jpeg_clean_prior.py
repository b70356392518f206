"""benchmarks/jpeg_clean_prior.py: its re-built JPEG stage is the engine's stage, the gain grid is
read back between measured scales, the σ rule only lowers σ, and the training cases take the
quality and noise ranges they are given."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from engine.degrade.camera import jpeg_round_trip
from testdata import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import jpeg_clean_prior as jcp  # noqa: E402
import real_noise_learned as rl  # noqa: E402


def _row(value) -> dict:
    row = {"shipped_widen": 0, "luma_sigma": 8.0, "chroma_sigma": 6.0, "band_y": 1.0, "band_c": 0.5}
    for ls in jcp.LUMA_SCALES:
        for cs in jcp.CHROMA_SCALES:
            row[f"L{ls:g}_C{cs:g}_W0"] = value(ls, cs)
    return row


def test_gain_is_read_bilinearly_between_measured_scales():
    row = _row(lambda ls, cs: 2.0 * ls - cs)
    assert jcp.gain_at(row, 1.0, 1.0) == pytest.approx(1.0)
    assert jcp.gain_at(row, 0.0, 0.0) == pytest.approx(0.0)
    assert jcp.gain_at(row, 0.6, 0.4) == pytest.approx(2.0 * 0.6 - 0.4)
    assert jcp.gain_at(row, 3.0, -1.0) == pytest.approx(2.0)  # clamped to the measured range


def test_rule_only_lowers_sigma():
    row = _row(lambda ls, cs: 0.0)
    assert jcp.rule_scales(row, "band_y", float("inf"), "band_c", float("inf")) == (1.0, 1.0)
    assert jcp.rule_scales(row, "band_y", 2.0, "band_c", 6.0) == pytest.approx((0.25, 0.5))
    assert jcp.rule_scales(row, "band_y", 100.0, "band_y", 0.0) == pytest.approx((1.0, 0.0))


def test_cases_take_the_quality_and_noise_ranges_given():
    rng = np.random.default_rng(5)
    photo = np.clip(0.5 + 0.1 * rng.standard_normal((300, 300, 3)), 0, 1).astype(np.float32)
    low = rl.make_cases(2, photo, refs=True, qualities=(50, 55), noise=(0.02, 0.03))
    high = rl.make_cases(2, photo, refs=True, qualities=(50, 55))
    assert ((50 <= low["quality"]) & (low["quality"] < 55)).all()
    assert np.array_equal(low["quality"], high["quality"])  # the same draws, only the noise differs
    err = {k: float(np.abs(c["noisy"] - c["ref_noisy"]).mean()) for k, c in (("faint", low), ("noisy", high))}
    assert err["faint"] < err["noisy"]
    assert np.array_equal(low["clean"], high["clean"])


def test_the_rebuilt_stage_is_the_engines_stage(one_torch_thread):
    from real_noise import ffdnet_expert

    from engine.experts.default import build_registry
    from engine.experts.jpeg_restore import JpegQcpRestorer

    ffd = ffdnet_expert()
    stage = next((e for e in build_registry().for_task("jpeg") if isinstance(e, JpegQcpRestorer)), None)
    if ffd is None or stage is None or not stage.is_available():
        pytest.skip("the bundled FFDNet is not available")
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32) / 64
    ref = np.stack([0.3 + 0.4 * xx, 0.5 - 0.2 * yy, 0.4 + 0.1 * np.sin(9 * xx * yy)], axis=2)
    ref = np.clip(ref + np.random.default_rng(6).normal(0, 0.02, ref.shape), 0, 1).astype(np.float32)
    for q in (55, 75):  # the heavy-JPEG rule, and a camera's save (chroma widened)
        row = jcp.measure_case(jpeg_round_trip(ref, q), ref, q, ffd, stage)
        assert row["stage_check"] < 1e-6
        assert row["shipped_widen"] == int(q >= 60)
        assert row["L0_C0_W0"] == pytest.approx(0.0, abs=0.05)  # the file's own pixels, projected: the file
        assert {"band_y", "band_c", "flat_share"} <= set(row)
