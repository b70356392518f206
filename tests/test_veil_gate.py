"""Haze and low light where there is none: a warm bright wall is not a veil, a dim scene exposed for
its light parts is not an under-exposed photo (engine.analysis.analyser.haze_severity / lowlight_severity)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.analysis import DEFAULT_PRESENCE_THRESHOLD as T
from engine.analysis import analyse
from engine.analysis.analyser import (LOWLIGHT_MAX_P95_LUMA, VEIL_MAX_FLOOR_CHROMA, VEIL_MIN_AIRLIGHT,
                                      haze_severity, lowlight_severity, thin_veil)
from engine.analysis.calibration import severity_from
from engine.analysis.measurements import colour_line_veil, exposure_statistics, haze_statistics
from engine.degrade import degrade, haze


def _scene(seed: int = 0, size: int = 256) -> np.ndarray:
    """A synthetic view with depth: dark objects and bright ones, grey and coloured, smooth shading."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.empty((size, size, 3), np.float32)
    img[:] = 0.35 + 0.3 * yy[..., None]
    for _ in range(40):
        y, x = rng.integers(0, size - 40, 2)
        h, w = rng.integers(12, 40, 2)
        img[y:y + h, x:x + w] = rng.uniform(0.0, 0.9, 3) * rng.uniform(0.2, 1.0)
    return np.clip(img + rng.normal(0, 0.01, img.shape).astype(np.float32), 0, 1)


def _warm_wall(size: int = 256, seed: int = 1) -> np.ndarray:
    """A bright, warm, flat wall with faint texture and camera-like noise: no veil, one colour."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    shade = 0.92 + 0.06 * np.sin(6 * xx + 2 * yy)
    colour = np.array([0.95, 0.80, 0.55], np.float32)
    img = shade[..., None] * colour + rng.normal(0, 0.015, (size, size, 3)).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


def test_a_warm_bright_wall_lifts_the_dark_channel_but_is_not_haze():
    wall = _warm_wall()
    stats = haze_statistics(wall)
    assert severity_from("haze", stats) >= T  # what the dark channel alone said
    assert stats["veil_floor_chroma"] > VEIL_MAX_FLOOR_CHROMA
    assert analyse(wall).severity("haze") < T


def test_a_grey_veil_over_a_scene_is_still_haze():
    scene = _scene()
    hazy = haze(scene, 1.6, 0.88)
    stats = haze_statistics(hazy)
    assert stats["veil_floor_chroma"] <= VEIL_MAX_FLOOR_CHROMA and stats["veil_airlight"] >= VEIL_MIN_AIRLIGHT
    assert analyse(hazy).severity("haze") >= T
    assert analyse(scene).severity("haze") < T


def test_a_grey_veil_over_a_warm_scene_is_still_haze():
    warm = np.clip(_scene(2) * np.array([1.0, 0.85, 0.6], np.float32), 0, 1)
    assert analyse(haze(warm, 1.8, 0.9)).severity("haze") >= T


def test_a_dim_flat_scene_has_too_dim_an_airlight_for_haze():
    dim = np.clip(_scene(3) * 0.25 + 0.2, 0, 1)  # low contrast, nothing brighter than ~0.45
    stats = haze_statistics(dim)
    assert stats["veil_airlight"] < VEIL_MIN_AIRLIGHT
    assert haze_severity(0.6, stats) < T


def test_the_haze_gate_holds_only_present_readings_and_tolerates_missing_measurements():
    assert haze_severity(0.05, {"veil_floor_chroma": 0.9, "veil_airlight": 0.1}) == 0.05
    assert haze_severity(0.7, {}) == 0.7
    assert haze_severity(0.7, {"veil_floor_chroma": float("nan"), "veil_airlight": 0.9}) == 0.7
    assert haze_severity(0.7, {"veil_floor_chroma": VEIL_MAX_FLOOR_CHROMA + 0.01, "veil_airlight": 0.9}) == T / 2


def _red_room(seed: int = 0, size: int = 256) -> np.ndarray:
    """A saturated warm room: a red wall lit from below, wooden, cream and dark-red furniture, each
    shaded across its width (so each patch's colours lie on a line through black)."""
    rng = np.random.default_rng(seed)
    yy = np.mgrid[0:size, 0:size][0].astype(np.float32) / size
    img = np.empty((size, size, 3), np.float32)
    img[:] = np.array([0.75, 0.12, 0.15], np.float32) * (0.5 + 0.5 * yy)[..., None]
    colours = np.array([[0.8, 0.45, 0.15], [0.9, 0.85, 0.7], [0.6, 0.1, 0.1]], np.float32)
    for _ in range(30):
        y, x = rng.integers(0, size - 40, 2)
        h, w = rng.integers(12, 40, 2)
        img[y:y + h, x:x + w] = colours[rng.integers(0, 3)] * np.linspace(0.5, 1.0, w, dtype=np.float32)[None, :, None]
    return np.clip(img + rng.normal(0, 0.005, img.shape).astype(np.float32), 0, 1)


def test_a_thin_grey_veil_over_a_saturated_room_is_haze_though_its_floor_is_coloured():
    room = _red_room()
    depth = np.tile(np.linspace(1.0, 0.3, 256, dtype=np.float32)[:, None], (1, 256))
    hazy = haze(room, 0.5, 0.9, depth)
    stats = haze_statistics(hazy)
    assert severity_from("haze", stats) >= T and stats["veil_airlight"] >= VEIL_MIN_AIRLIGHT
    assert stats["veil_floor_chroma"] > VEIL_MAX_FLOOR_CHROMA  # the floor-colour gate alone would hold it
    lines = colour_line_veil(hazy)
    assert 0.15 < lines["veil_line_offset"] < 0.35  # the veil is 0.9·(1 − t), t = 0.61–0.86
    assert abs(colour_line_veil(room)["veil_line_offset"]) < 0.05  # clear: the lines pass through black
    assert analyse(hazy).severity("haze") >= T
    assert analyse(room).severity("haze") < T


def test_the_thin_veil_route_needs_an_offset_that_a_grey_veil_over_a_coloured_floor_can_give():
    assert not thin_veil({}) and not thin_veil({"veil_line_offset": float("nan")})
    assert thin_veil({"veil_line_offset": 0.3})
    assert not thin_veil({"veil_line_offset": -0.05})
    assert not thin_veil({"veil_line_offset": 1.0 - VEIL_MAX_FLOOR_CHROMA + 0.01})
    coloured = {"veil_floor_chroma": 0.5, "veil_airlight": 0.9}
    assert haze_severity(0.3, coloured) == T / 2
    assert haze_severity(0.3, coloured | {"veil_line_offset": 0.3}) == 0.3
    assert haze_severity(0.3, coloured | {"veil_line_offset": 0.3, "veil_airlight": 0.5}) == T / 2
    assert colour_line_veil(np.zeros((4, 4, 3), np.float32))["veil_lines"] == 0


def _dim_room(size: int = 256) -> np.ndarray:
    """A dark room (dark chair, dark walls) beside a lit white cloth: a dim scene exposed for its light
    part, the brightest third of the frame at 0.75."""
    img = _scene(4, size) * 0.12
    img[: size // 3, size // 2:] = 0.75
    return np.clip(img, 0, 1).astype(np.float32)


def test_a_dim_scene_exposed_for_its_light_part_is_not_low_light_but_its_under_exposure_is():
    room = _dim_room()
    stats = exposure_statistics(room)
    assert severity_from("lowlight", stats) >= 0.5  # what the exposure index alone said
    assert stats["p95_luma"] >= LOWLIGHT_MAX_P95_LUMA
    assert analyse(room).severity("lowlight") < T
    under = degrade(room, "lowlight", 0.8, seed=1)
    assert exposure_statistics(under)["p95_luma"] < LOWLIGHT_MAX_P95_LUMA
    assert analyse(under).severity("lowlight") >= T
    assert lowlight_severity(0.9, {}) == 0.9


@pytest.mark.parametrize("name", ["Canon600D_4-5_125_1600_book_11.JPG", "Sony_4-5_125_6400_waterhouse_10.JPG"])
def test_real_warm_indoor_crops_are_not_read_as_haze(shared_data, name):
    from engine.imageio import load_photo

    path = shared_data / "pairs" / "noise_real_polyu_crops" / "lq" / name
    if not path.is_file():
        pytest.skip(f"{name} is not in ../shared")
    pixels = load_photo(path).pixels
    assert severity_from("haze", haze_statistics(pixels)) >= T
    assert analyse(pixels).severity("haze") < T


def test_real_hazy_rooms_are_still_read_as_haze(shared_data):
    from engine.imageio import load_photo

    folder = shared_data / "pairs" / "haze_reside" / "lq"
    photos = sorted(folder.glob("its_*.png")) + sorted(folder.glob("sots_indoor_1400_*.png")) if folder.is_dir() else []
    if not photos:
        pytest.skip("RESIDE pairs are not in ../shared")
    assert all(analyse(load_photo(p).pixels).severity("haze") >= T for p in photos)


def test_haze_needs_the_networks_confirmation_but_keeps_the_handmade_strength():
    """learned.CONFIRM_KINDS: the network confirms or vetoes haze; a confirmed haze verdict is the
    hand-made one whole, so the plan's dehaze strength does not follow the network's confidence."""
    from engine.analysis.learned import CONFIRM_KINDS, combine
    from engine.analysis.report import DegradationReport, KindAssessment
    from engine.kinds import KINDS

    def report(haze: float, confidence: float) -> DegradationReport:
        return DegradationReport({k: KindAssessment(haze if k == "haze" else 0.0, confidence, {}) for k in KINDS})

    assert "haze" in CONFIRM_KINDS
    confirmed = combine(report(0.61, 1.0), report(0.35, 0.3)).kinds["haze"]
    assert confirmed.severity == pytest.approx(0.61) and confirmed.confidence == 1.0
    vetoed = combine(report(0.61, 1.0), report(0.05, 0.9)).kinds["haze"]
    assert vetoed.severity < T and vetoed.confidence == 1.0
    assert combine(report(0.1, 1.0), report(0.9, 1.0)).severity("haze") == pytest.approx(0.1)


def test_a_dim_scene_exposed_for_its_light_part_is_not_brightened_nor_deblurred():
    """Not under-exposed, but as dark as one for the deblurrer (plan.darkness): its low light is held
    down, its deblur stays blocked."""
    from engine.analysis.report import DegradationReport, KindAssessment
    from engine.experts.default import build_registry
    from engine.kinds import KINDS
    from engine.pipeline.plan import build_plan, darkness

    room = _dim_room()
    stats = exposure_statistics(room)
    held = lowlight_severity(severity_from("lowlight", stats), stats)
    kinds = {k: KindAssessment(0.0, 1.0, {}) for k in KINDS}
    kinds["lowlight"] = KindAssessment(held, 1.0, stats)
    kinds["blur"] = KindAssessment(0.6, 1.0, {"sharpest_tile_width_px": 5.0})
    report = DegradationReport(kinds)
    assert held < T <= 0.5 <= darkness(report)
    names = build_plan(report, build_registry()).names()
    assert "lowlight" not in names and "blur" not in names
    kinds["lowlight"] = KindAssessment(held, 1.0, dict(stats, p95_luma=0.2))  # a dark photo without the held reading
    assert darkness(DegradationReport(kinds)) == held


def test_the_tables_haze_over_a_dim_scene_is_not_held_as_a_dim_airlight():
    # the evaluation table's haze (depth proxy, grey airlight 0.75–0.95) over a scene 2 stops darker:
    # the veil is thin where the dark channel is highest: its airlight reads 0.57, under the first fit's 0.61
    dim = _scene(5) * 0.35
    hazy = degrade(dim, "haze", 0.5, seed=4)
    stats = haze_statistics(hazy)
    assert severity_from("haze", stats) >= T and stats["veil_floor_chroma"] <= VEIL_MAX_FLOOR_CHROMA
    assert stats["veil_airlight"] >= VEIL_MIN_AIRLIGHT
    assert haze_severity(severity_from("haze", stats), stats) >= T
