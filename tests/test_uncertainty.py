"""The uncertainty map's contract (engine/uncertainty): shape, range, determinism, the Caution
blend, the CLI sidecar (naming, 16-bit scale, no overwrite) and the JSON summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from engine.degrade import degrade
from engine.errors import OutputExistsError
from engine.kinds import KINDS
from engine.uncertainty import COMPOSED, UNCERTAIN_LEVELS, default_model, describe, lean, summarise
from engine.uncertainty.features import FEATURES, feature_stack
from engine.uncertainty.sidecar import LEVELS_SCALE, read_sidecar, sidecar_path, write_sidecar

from testdata import photo


def write_png(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


def test_calibration_has_a_model_per_kind():
    model = default_model()
    assert COMPOSED in model.kinds
    assert {"noise", "blur", "jpeg", "haze", "lowlight", "rain"} <= set(model.kinds) \
        <= set(KINDS) | {COMPOSED} | {f"{COMPOSED}:{k}" for k in KINDS}
    for m in model.kinds.values():
        assert np.all(np.diff(m.knots_levels) >= 0) and m.knots_levels[0] >= 0


def test_levels_fit_gives_mean_error_by_score():
    """The monotone map of a score to levels is the mean error observed at that score: on the
    pixels it was fitted on, each decile of the prediction averages to its observed error."""
    from engine.uncertainty.model import fit_levels

    rng = np.random.default_rng(5)
    score = rng.uniform(0.0, 3.0, 20000)
    errors = rng.exponential(2.0 + 4.0 * score)  # mean error 2 + 4·score levels, heavy-tailed
    m = fit_levels(np.array([1.0] + [0.0] * len(FEATURES)), score, errors)
    assert np.all(np.diff(m.knots_score) >= 0) and np.all(np.diff(m.knots_levels) >= 0)
    pred = m.levels(score)
    order = np.argsort(pred, kind="stable")
    for decile in np.array_split(order, 10):
        assert abs(pred[decile].mean() - errors[decile].mean()) < 0.1 * errors[decile].mean()
    flat = fit_levels(np.array([1.0] + [0.0] * len(FEATURES)), np.zeros(100), np.full(100, 3.0))
    assert np.allclose(flat.levels(np.array([-1.0, 0.0, 2.0])), 3.0)


@pytest.mark.parametrize("kind", ["noise", "blur", None])
def test_map_shape_range_and_determinism(kind):
    clean = photo(0, 80)[:70]  # not square, odd-sized bands
    noisy = degrade(clean, "noise", 0.6, seed=3)
    smooth = np.clip(noisy * 0.5 + clean * 0.5, 0, 1)
    model = default_model()
    a = model.predict(noisy, smooth, kind, noise_sigma=0.05, severity=0.6, severity_after=0.2)
    b = model.predict(noisy.copy(), smooth.copy(), kind, noise_sigma=0.05, severity=0.6, severity_after=0.2)
    assert a.shape == clean.shape[:2] and a.dtype == np.float32
    assert np.all(np.isfinite(a)) and a.min() >= 0.0 and a.max() <= 255.0
    assert np.array_equal(a, b)


def test_bands_join_without_seams(monkeypatch):
    import engine.uncertainty.model as model_mod

    img = photo(1, 96)
    out = np.clip(img + 0.05 * np.sin(np.arange(96))[None, :, None], 0, 1).astype(np.float32)
    whole = default_model().predict(img, out, "blur", severity=0.5)
    monkeypatch.setattr(model_mod, "BAND_ROWS", 20)
    banded = default_model().predict(img, out, "blur", severity=0.5)
    assert np.allclose(whole, banded, atol=1e-4)


def test_feature_stack_planes():
    img = photo(2, 32)
    stack = feature_stack(img, img, severity=0.3)
    assert stack.shape == (1 + len(FEATURES), 32, 32)
    assert np.all(stack[0] == 1.0) and np.all(stack[1 + FEATURES.index("change")] == 0.0)


def test_chosen_planes_hold_the_values_of_the_whole_stack():
    """A map reads only the planes its model weighs (``feature_stack(names=...)``): each holds exactly
    what the whole stack holds there, in any order, the raw planes made only as needed."""
    from engine.uncertainty.features import STACK

    clean = photo(2, 48)
    noisy = degrade(clean, "noise", 0.5, seed=4)
    after = np.clip(noisy * 0.4 + clean * 0.6, 0, 1).astype(np.float32)
    sigma = np.full((48, 48, 3), 0.03, np.float32)
    spread = np.random.default_rng(0).uniform(0, 4, (48, 48)).astype(np.float32)
    args = dict(noise_sigma=sigma, severity=0.4, severity_after=0.1, spread=spread, photo_spread=1.5)
    whole = feature_stack(noisy, after, **args)
    assert np.array_equal(feature_stack(noisy, after, names=STACK, **args), whole)
    picked = ("luminance_x_change", "constant", "streak_after_x_severity", "airlight_gap_x_depth", "ensemble_spread")
    chosen = feature_stack(noisy, after, names=picked, **args)
    assert chosen.shape == (len(picked), 48, 48)
    for plane, name in zip(chosen, picked, strict=True):
        assert np.array_equal(plane, whole[STACK.index(name)]), name


def test_every_model_s_map_from_its_own_planes_is_the_whole_stack_s(monkeypatch):
    """The map scores only the features its model weighs; the same levels as scoring the whole stack
    (to float rounding), for every model of the calibration, banded and on a grid."""
    import engine.uncertainty.model as model_mod
    from engine.uncertainty.features import STACK

    clean = photo(3, 80)
    noisy = degrade(clean, "noise", 0.5, seed=5)
    after = np.clip(noisy * 0.5 + clean * 0.5 + 0.02, 0, 1).astype(np.float32)
    sigma = np.full((80, 80, 3), 0.04, np.float32)
    monkeypatch.setattr(model_mod, "BAND_ROWS", 32)
    model = default_model()

    def maps(step: int) -> dict:
        return {k: model.predict(noisy, after, k, noise_sigma=sigma, severity=0.45, severity_after=0.2, step=step)
                for k in model.kinds}

    chosen = {step: maps(step) for step in (1, 3)}
    assert all(len(m.used) < len(STACK) for m in model.kinds.values())  # what makes it cheaper
    monkeypatch.setattr(model_mod.KindModel, "used", property(lambda self: STACK))
    monkeypatch.setattr(model_mod.KindModel, "score_used", model_mod.KindModel.score)
    for step in (1, 3):
        for kind, whole in maps(step).items():
            assert chosen[step][kind].shape == whole.shape
            assert np.allclose(chosen[step][kind], whole, atol=1e-3, rtol=0), (kind, step)


def test_physics_planes_follow_what_the_stage_did():
    """The gain a stage applied, the haze it saw and the streaks left: the signals the haze,
    low-light and rain maps are built on."""
    from engine.uncertainty.features import RAW, raw_planes

    img = np.random.default_rng(3).uniform(0.3, 0.7, (64, 64, 3)).astype(np.float32)  # texture far above the floor
    doubled = (img - 0.5) * 2.0 + 0.5  # contrast x2: what a dehazer does where t = 0.5
    raw = raw_planes(img, doubled)
    gain = raw[RAW.index("gain")]
    assert abs(float(np.median(gain)) - np.log(2.0)) < 0.1
    assert abs(float(np.median(raw_planes(img, img)[RAW.index("gain")]))) < 1e-6
    hazy = img * 0.4 + 0.6 * 0.9  # the same scene under a thick veil
    depth = RAW.index("haze_depth")
    assert raw_planes(hazy, img)[depth].mean() > raw_planes(img, img)[depth].mean() + 0.5
    streaked = img.copy()
    streaked[:, 30:32] = 1.0  # a thin bright vertical line left in the output
    s = raw_planes(img, streaked)[RAW.index("streak_after")]
    assert s[:, 28:34].mean() > s[:, :20].mean() + 1.0
    assert raw_planes(img, streaked)[RAW.index("streak_before")][:, 28:34].mean() < s[:, 28:34].mean()


def test_summary_and_description():
    levels = np.zeros((90, 90), np.float32)
    levels[:30, :30] = 20.0  # the top-left ninth is uncertain
    s = summarise(levels)
    assert set(s) == {"mean", "p95", "fraction_above"}
    assert s["fraction_above"] == pytest.approx(1 / 9, abs=1e-3) and s["mean"] == pytest.approx(20 / 9, abs=1e-2)
    text = describe(levels)
    assert text.startswith("11 % of the photo is uncertain") and "top left" in text
    assert summarise(np.zeros((4, 4)))["fraction_above"] == 0.0


def test_caution_leans_towards_the_input_where_uncertain():
    before = np.zeros((4, 4, 3), np.float32)
    after = np.full((4, 4, 3), 0.5, np.float32)
    levels = np.array([[0.0, UNCERTAIN_LEVELS, 100.0, 100.0]] * 4, np.float32)
    assert lean(before, after, levels, 0.0) is after
    out = lean(before, after, levels, 1.0)
    assert np.all(out[:, 0] == 0.5) and np.all(out[:, 2:] == 0.0)
    assert 0.0 < out[0, 1, 0] < 0.5
    half = lean(before, after, levels, 0.5)
    assert np.allclose(half[:, 2:], 0.25)


def test_sidecar_name_scale_and_no_overwrite(tmp_path):
    out = tmp_path / "holiday.photo.jpg"
    assert sidecar_path(out) == tmp_path / "holiday.photo.uncertainty.png"
    levels = np.array([[0.0, 1.5, 8.0], [100.0, 255.9, 300.0]], np.float32)
    path = write_sidecar(out, levels)
    raw = np.asarray(Image.open(path))
    assert raw.dtype in (np.uint16, np.int32) and raw.shape == (2, 3)
    assert int(raw[0, 2]) == round(8 * LEVELS_SCALE) and int(raw[1, 2]) == 65535
    assert np.allclose(read_sidecar(path)[0], levels[0], atol=1 / LEVELS_SCALE)
    with pytest.raises(OutputExistsError):
        write_sidecar(out, levels * 0)
    assert np.allclose(read_sidecar(path)[0], levels[0], atol=1 / LEVELS_SCALE)  # untouched
    write_sidecar(out, levels * 0, overwrite=True, size=(6, 4))
    assert read_sidecar(path).shape == (4, 6) and read_sidecar(path).max() == 0.0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_cli_writes_sidecar_and_json_summary(tmp_path, capsys):
    src = write_png(tmp_path / "in" / "noisy.png", degrade(photo(0, 64), "noise", 0.6, seed=1))
    outdir = tmp_path / "out"
    code = main(["restore", str(src), "-o", str(outdir), "--json", "--uncertainty"])
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert code == 0, line
    side = outdir / "noisy.uncertainty.png"
    assert line["uncertainty"]["map"] == str(side)
    assert set(line["uncertainty"]) == {"mean", "p95", "fraction_above", "faces", "fraction_in_faces", "map"}
    assert line["uncertainty"]["faces"] == 0 and line["uncertainty"]["fraction_in_faces"] == 0.0  # no face here
    assert 0.0 <= line["uncertainty"]["fraction_above"] <= 1.0 and line["uncertainty"]["p95"] >= 0.0
    levels = read_sidecar(side)
    assert levels.shape == (64, 64)
    assert levels.mean() == pytest.approx(line["uncertainty"]["mean"], abs=0.01)
    # the same run again: the output and the sidecar exist → refused without --overwrite
    code = main(["restore", str(src), "-o", str(outdir), "--json", "--uncertainty"])
    assert code == 1 and "already exists" in json.loads(capsys.readouterr().out.splitlines()[0])["error"]
    # a sidecar alone blocks the run too, before anything is written
    (outdir / "noisy.png").unlink()
    code = main(["restore", str(src), "-o", str(outdir), "--json", "--uncertainty"])
    err = json.loads(capsys.readouterr().out.splitlines()[0])["error"]
    assert code == 1 and "noisy.uncertainty.png" in err and not (outdir / "noisy.png").exists()
    assert main(["restore", str(src), "-o", str(outdir), "--uncertainty", "--overwrite"]) == 0
    capsys.readouterr()
    # without the flag: no sidecar, the JSON says null
    code = main(["restore", str(src), "-o", str(tmp_path / "plain"), "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out.splitlines()[0])["uncertainty"] is None
    assert not (tmp_path / "plain" / "noisy.uncertainty.png").exists()


def test_cli_caution_leans_the_saved_result_towards_the_input(tmp_path, capsys):
    """--caution is the window's Caution control: 0 changes nothing; more leans the saved photo
    back towards the input, and only where the map expects an error of more than 3 levels."""
    clean = photo(2, 64)
    src = write_png(tmp_path / "in" / "noisy.png", degrade(clean, "noise", 0.7, seed=3))
    noisy = np.asarray(Image.open(src), np.float32)

    def restored(name: str, *extra: str) -> np.ndarray:
        assert main(["restore", str(src), "-o", str(tmp_path / name), "--only", "noise", *extra]) == 0
        return np.asarray(Image.open(tmp_path / name / "noisy.png"), np.float32)

    plain, off, full = restored("plain"), restored("off", "--caution", "0"), restored("full", "--caution", "1")
    capsys.readouterr()
    assert np.array_equal(plain, off)
    moved_plain, moved_full = np.abs(plain - noisy).mean(), np.abs(full - noisy).mean()
    assert moved_full < moved_plain  # leaned back towards the input
    assert not np.array_equal(full, noisy)  # but not to the input everywhere: only where uncertain
    assert main(["restore", str(src), "-o", str(tmp_path / "bad"), "--caution", "1.5"]) == 2
    assert "--caution must be between 0 and 1" in capsys.readouterr().err


def test_session_maps_per_stage_and_composed():
    from engine.experts.default import build_registry
    from engine.pipeline.job import Restorer, RestoreOptions
    from engine.uncertainty import SessionUncertainty, stage_maps

    restorer = Restorer(build_registry())
    img = degrade(photo(3, 64), "noise", 0.7, seed=5)
    session = restorer.session(img)
    plan = restorer.plan_for(session, RestoreOptions(auto=False, only=("noise",)))
    session.run(plan)
    maps = stage_maps(session)
    assert set(maps) == {r.name for r in session.results if not r.dropped}
    su = SessionUncertainty(session)
    full = su.composed(plan.strengths())
    assert full.shape == img.shape[:2] and su.composed(plan.strengths()) is full  # cached
    region = (slice(8, 40), slice(4, 60))
    shown = su.compose(plan.strengths(), caution=1.0, region=region, step=2)
    assert shown.shape == session.compose(plan.strengths(), region=region, step=2).shape
    assert np.array_equal(su.compose(plan.strengths(), caution=0.0), session.compose(plan.strengths()))


def test_the_sentence_says_nothing_was_changed_when_the_result_is_the_input():
    """With every strength at 0 (or no stage kept) nothing was invented: the panel's sentence says so and
    what the map can still mean (damage left), not that the result is uncertain; any strength above 0
    brings the usual sentence back. The map itself is the same either way."""
    from engine.experts.default import build_registry
    from engine.pipeline.job import Restorer, RestoreOptions
    from engine.uncertainty import SessionUncertainty

    restorer = Restorer(build_registry())
    session = restorer.session(degrade(photo(3, 64), "noise", 0.7, seed=5))
    plan = restorer.plan_for(session, RestoreOptions(auto=False, only=("noise",)))
    session.run(plan)
    su = SessionUncertainty(session)
    off, on = {"noise": 0.0}, plan.strengths()
    said_off, said_on = su.describe(off), su.describe(on)
    assert said_off.startswith("Nothing was changed: ")
    assert "% of the photo may still be wrong (expected error" in said_off
    assert "of the photo is uncertain" in said_on and "Nothing was changed" not in said_on
    levels = np.zeros((8, 8), np.float32)
    assert describe(levels, unchanged=True) == "Nothing was changed: 0.0 % of the photo may still be wrong " \
                                                "(expected error over 8 levels)"


@pytest.mark.parametrize("step", [2, 3])
def test_map_on_a_grid_holds_the_full_resolution_values(monkeypatch, step):
    import engine.uncertainty.model as model_mod

    clean = photo(2, 90)[:77]
    noisy = degrade(clean, "noise", 0.5, seed=4)
    smooth = np.clip(noisy * 0.4 + clean * 0.6, 0, 1).astype(np.float32)
    model = default_model()
    full = model.predict(noisy, smooth, "noise", noise_sigma=0.04, severity=0.5, severity_after=0.1)
    monkeypatch.setattr(model_mod, "BAND_ROWS", 20)  # bands whose first row is off the grid
    grid = model.predict(noisy, smooth, "noise", noise_sigma=0.04, severity=0.5, severity_after=0.1, step=step)
    assert grid.shape == full[::step, ::step].shape
    assert np.allclose(grid, full[::step, ::step], atol=1e-4)


def test_preview_summary_says_what_the_full_resolution_map_says():
    """The window's preview map is computed on a subsampled photo; its summary and sentence must
    still be those of the map the CLI writes (the full-resolution one)."""
    from engine.experts.default import build_registry
    from engine.pipeline.job import Restorer, RestoreOptions
    from engine.uncertainty import SessionUncertainty

    restorer = Restorer(build_registry())
    img = degrade(photo(5, 96), "noise", 0.5, seed=9)
    session = restorer.session(img)
    plan = restorer.plan_for(session, RestoreOptions(auto=False, only=("noise",)))
    session.run(plan)
    strengths = plan.strengths()
    cli = SessionUncertainty(session)
    window = SessionUncertainty(session, max_pixels=96 * 96 // 4)
    # a window's paint asks with compute=False: nothing is made then, the overlay waits for a worker
    assert window.heat(strengths, 2, 32.0, compute=False) is None
    assert window.describe(strengths, compute=False) is None and window.full(strengths, compute=False) is None
    preview = window.composed(strengths)
    assert window.step == 2 and preview.shape == (48, 48)
    assert np.array_equal(window.heat(strengths, 2, 32.0, compute=False), np.clip(preview / 32.0, 0, 1))  # meanwhile
    full = cli.composed(strengths)
    assert np.allclose(window.full(strengths), full[::2, ::2], atol=1e-4)
    assert window.full(strengths) is window.full(strengths)  # cached per setting
    assert cli.full(strengths) is full
    a, b = window.summary(strengths), summarise(full)
    # every other pixel of the same map: within sampling of the CLI's numbers (the preview map itself
    # says 100 % and a 5 % higher mean on this photo)
    assert abs(a["fraction_above"] - b["fraction_above"]) <= 0.005 and abs(a["mean"] - b["mean"]) <= 0.01 * b["mean"]
    # the overlay's final state, once the full map is made: the full map, whether or not it may compute
    assert np.allclose(window.heat(strengths, 2, 32.0, compute=False), np.clip(full[::2, ::2] / 32.0, 0, 1), atol=1e-5)
    assert np.array_equal(window.heat(strengths, 2, 32.0), window.heat(strengths, 2, 32.0, compute=False))
    text = window.describe(strengths)
    assert window.describe(strengths, compute=False) == text  # cached per setting
    assert window.describe(strengths) == describe(window.full(strengths), session.compose(strengths, step=2),
                                                  faces=window.faces(strengths))


class _Report:
    """Just the severities the plan rule reads."""

    def __init__(self, **sev):
        self.kinds = {}
        self._sev = sev

    def severity(self, kind):
        return self._sev.get(kind, 0.0)


def test_plan_rule_verdict_follows_its_thresholds(monkeypatch):
    from engine.uncertainty import assess

    clean = photo(4, 64)
    noisy = degrade(clean, "noise", 0.8, seed=2)
    delta = clean - noisy
    small, large = (_Report(noise=0.6), _Report(noise=0.5)), (_Report(noise=0.9), _Report(noise=0.1))
    v = assess.assess_stage("noise", noisy, delta, *small)
    assert v.gain == pytest.approx(0.1) and v.mean_levels >= 0.0
    assert v.drop == (v.mean_levels >= assess.DROP_MEAN_LEVELS)
    assert not assess.assess_stage("noise", noisy, delta, *large).drop  # a large gain is kept whatever the map
    monkeypatch.setattr(assess, "DROP_MEAN_LEVELS", v.mean_levels - 0.01)
    assert assess.assess_stage("noise", noisy, delta, *small).drop
    monkeypatch.setattr(assess, "DROP_MEAN_LEVELS", v.mean_levels + 0.01)
    assert not assess.assess_stage("noise", noisy, delta, *small).drop
    # the generalist's gain is the drop of the largest severity
    assert assess.stage_gain("generalist", _Report(noise=0.6, blur=0.7), _Report(noise=0.1, blur=0.65)) == \
        pytest.approx(0.05)


def test_plan_rule_is_off_by_default_and_drops_when_on(monkeypatch, tmp_path):
    import argparse

    from engine.cli.restore import add_parser, options_from_args
    from engine.experts.default import build_registry
    from engine.pipeline.job import Restorer, RestoreOptions
    from engine.uncertainty import assess

    assert RestoreOptions().drop_uncertain is False
    restorer = Restorer(build_registry())
    img = degrade(photo(3, 64), "noise", 0.7, seed=5)
    session = restorer.session(img)
    off = restorer.orchestrator.restore(session).results
    kept = [r.name for r in off if not r.dropped]
    assert kept
    monkeypatch.setattr(assess, "DROP_MEAN_LEVELS", 0.0)  # every map is "uncertain" ...
    monkeypatch.setattr(assess, "DROP_MAX_GAIN", 2.0)  # ... for any gain: every automatic stage goes
    session = restorer.session(img)
    session.drop_uncertain = True
    on = restorer.orchestrator.restore(session).results
    assert all(r.dropped for r in on)
    assert any("uncertain for its gain" in (r.reason or "") for r in on)
    from engine.photo import Photo
    restored, result = restorer.restore_photo(Photo(pixels=img), RestoreOptions(drop_uncertain=True))
    assert all(s["dropped"] for s in result.stages)
    assert np.array_equal(restored.pixels, img)  # every stage dropped: the input as it was
    ap = argparse.ArgumentParser()
    add_parser(ap.add_subparsers())
    args = ap.parse_args(["restore", "x.png", "-o", str(tmp_path), "--drop-uncertain"])
    assert options_from_args(args).drop_uncertain


@pytest.mark.parametrize("flags", [("--uncertainty",), ("--caution", "1")])
def test_maps_and_caution_run_a_full_strength_noise_stage_once_with_the_same_result(tmp_path, capsys, monkeypatch,
                                                                                     flags):
    """The CLI's maps and its Caution read the result composed at the plan's strengths and each stage's
    full-strength change, never the slider's 0.5 knot: with --uncertainty or --caution the noise stage's
    network runs once, and the saved photo, the sidecar and the JSON summary are those the knots gave."""
    from engine.pipeline.session import RestorationSession

    src = write_png(tmp_path / "in" / "noisy.png", degrade(photo(0, 64), "noise", 0.6, seed=1))
    sessions: list[RestorationSession] = []
    init = RestorationSession.__init__

    def recorded(self, *args, **kwargs):
        init(self, *args, **kwargs)
        sessions.append(self)

    monkeypatch.setattr(RestorationSession, "__init__", recorded)

    def restored(name: str) -> tuple[np.ndarray, dict, int]:
        out = tmp_path / name
        assert main(["restore", str(src), "-o", str(out), "--json", "--only", "noise", *flags]) == 0
        line = json.loads(capsys.readouterr().out.splitlines()[0])
        assert [s["stage"] for s in line["stages"] if not s["dropped"]] == ["noise"]
        summary = line["uncertainty"]
        if summary is not None:
            assert summary.pop("map") == str(out / "noisy.uncertainty.png")
        return np.asarray(Image.open(out / "noisy.png")), summary, sessions[-1].expert_runs

    once, once_summary, once_runs = restored("once")
    # the same restoration with every knot run (a session that is never one-shot, as the window's)
    monkeypatch.setattr(RestorationSession, "one_shot", property(lambda self: False, lambda self, value: None),
                        raising=False)
    knots, knots_summary, knots_runs = restored("knots")
    assert (once_runs, knots_runs) == (1, 2)
    assert np.array_equal(once, knots) and once_summary == knots_summary
    if flags[0] == "--uncertainty":
        assert np.array_equal(read_sidecar(tmp_path / "once" / "noisy.uncertainty.png"),
                              read_sidecar(tmp_path / "knots" / "noisy.uncertainty.png"))
