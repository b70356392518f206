"""Plan building, the chained stage cache and strength composition, with small fake experts."""

from __future__ import annotations

from typing import Optional

import numpy as np
import pytest

from engine.analysis.report import DegradationReport, KindAssessment
from engine.errors import Cancelled
from engine.experts.base import Backend, Expert, ExpertContext, ExpertInfo, ExpertRegistry
from engine.kinds import GENERALIST, KINDS
from engine.pipeline import Plan, RestorationSession, Stage, build_plan, parse_kind_list, parse_strength_settings
from engine.progress import CancelToken, Progress


class ShiftExpert(Expert):
    """Adds a constant to the image (so deltas are easy to predict); counts its runs."""

    def __init__(self, eid: str, task: str, amount: float, backend=Backend.CLASSICAL, generative=False):
        self.info = ExpertInfo(id=eid, name=eid, tasks=(task,), backend=backend, generative=generative)
        self.amount = amount
        self.runs = 0

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        ctx = ctx or ExpertContext()
        ctx.progress(0.5)
        self.runs += 1
        return np.clip(image + self.amount, 0, 1).astype(np.float32)


def report_of(**severities: float) -> DegradationReport:
    return DegradationReport({k: KindAssessment(severities.get(k, 0.0), 1.0, {}) for k in KINDS})


def brightness_analyser(image: np.ndarray) -> DegradationReport:
    """Fake analyser: 'lowlight' severity falls as the image gets brighter; 'noise' and 'haze'
    are fixed."""
    return report_of(lowlight=float(np.clip(1.0 - 2 * image.mean(), 0, 1)), noise=0.5, haze=0.5)


@pytest.fixture
def registry():
    return ExpertRegistry([
        ShiftExpert("brighten", "lowlight", 0.2),
        ShiftExpert("denoise", "noise", 0.05),
        # registration order breaks ties between unmeasured experts (engine.experts.ranking)
        ShiftExpert("esrgan", GENERALIST, 0.0, backend=Backend.TORCH, generative=True),
        ShiftExpert("gen", GENERALIST, 0.01, backend=Backend.ONNX),
        ShiftExpert("dehaze", "haze", -0.1),
    ])


def test_plan_follows_report_order_and_threshold(registry):
    plan = build_plan(report_of(lowlight=0.6, noise=0.4, haze=0.05), registry)
    assert plan.names() == [GENERALIST, "noise", "lowlight"]
    # the generative generalist is only used when asked for
    assert plan.stage(GENERALIST).expert_id == "gen"
    # the measured rank decides between generalists (not the runtime): once generative experts
    # are allowed, the one measured better is used
    registry.ranking[GENERALIST] = ["esrgan", "gen"]
    assert build_plan(report_of(noise=0.4), registry, allow_generative=True).stage(GENERALIST).expert_id == "esrgan"
    assert build_plan(report_of(noise=0.4), registry).stage(GENERALIST).expert_id == "gen"
    assert build_plan(report_of(), registry).stages == ()


def test_plan_set_and_only(registry):
    r = report_of(lowlight=0.6, noise=0.4)
    plan = build_plan(r, registry, auto=False, strengths={"haze": 0.3})
    assert [(s.name, s.strength, s.auto) for s in plan.stages] == [("haze", 0.3, False)]
    plan = build_plan(r, registry, only=["noise", "haze"])
    assert plan.names() == ["noise", "haze"]
    plan = build_plan(r, registry, use_generalist=False, strengths={"noise": 0.0})
    assert plan.names() == ["noise", "lowlight"] and plan.stage("noise").strength == 0.0


def test_parse_cli_settings():
    assert parse_strength_settings(["noise=0.5", "jpeg=80%", "generalist=1"]) == {
        "noise": 0.5, "jpeg": 0.8, "generalist": 1.0}
    for bad in (["noise"], ["noize=0.5"], ["noise=1.5"], ["noise=abc"]):
        with pytest.raises(ValueError):
            parse_strength_settings(bad)
    assert parse_kind_list("noise, jpeg") == ["noise", "jpeg"]
    with pytest.raises(ValueError):
        parse_kind_list("noise,smudge")


def test_compose_is_residual_blend_and_never_reruns(registry):
    img = np.full((8, 9, 3), 0.2, np.float32)
    session = RestorationSession(img, registry, analyser=brightness_analyser, assess=False)
    plan = Plan((Stage("noise", "denoise"), Stage("lowlight", "brighten")))
    session.run(plan)
    assert session.expert_runs == 2
    np.testing.assert_allclose(session.compose({"noise": 1, "lowlight": 1}), 0.45, atol=1e-6)
    np.testing.assert_allclose(session.compose({"noise": 0, "lowlight": 1}), 0.40, atol=1e-6)
    np.testing.assert_allclose(session.compose({"noise": 1, "lowlight": 0.5}), 0.35, atol=1e-6)
    np.testing.assert_allclose(session.compose({"noise": 0, "lowlight": 0}), img)
    region = session.compose({"noise": 1, "lowlight": 1}, region=(slice(2, 6), slice(1, 9)), step=2)
    assert region.shape == (2, 4, 3)
    # running the same plan again, or with other strengths, hits the cache
    session.run(plan.with_strengths({"noise": 0.1}))
    assert session.expert_runs == 2
    assert img.max() == pytest.approx(0.2)  # input untouched


def test_changing_a_stage_invalidates_only_it_and_later(registry):
    img = np.full((4, 4, 3), 0.2, np.float32)
    session = RestorationSession(img, registry, analyser=brightness_analyser, assess=False)
    session.run(Plan((Stage("noise", "denoise"), Stage("lowlight", "brighten"))))
    denoise, brighten, dehaze = registry.get("denoise"), registry.get("brighten"), registry.get("dehaze")
    assert (denoise.runs, brighten.runs) == (1, 1)
    session.run(Plan((Stage("noise", "denoise"), Stage("lowlight", "dehaze"))))
    assert (denoise.runs, brighten.runs, dehaze.runs) == (1, 1, 1)
    session.run(Plan((Stage("noise", "dehaze"), Stage("lowlight", "brighten"))))
    assert brighten.runs == 2  # its input changed, so it re-ran


def test_assessment_drops_a_stage_that_made_things_worse(registry):
    img = np.full((6, 6, 3), 0.3, np.float32)
    session = RestorationSession(img, registry, analyser=brightness_analyser)
    # dehaze darkens: lowlight severity rises and haze severity does not fall → dropped
    results = session.run(Plan((Stage("haze", "dehaze"), Stage("lowlight", "brighten"))))
    assert results[0].dropped and "did not help" in results[0].reason
    assert not results[1].dropped
    np.testing.assert_allclose(session.compose({"haze": 1, "lowlight": 1}), 0.5, atol=1e-6)
    # a stage the user asked for explicitly is never dropped
    results = session.run(Plan((Stage("haze", "dehaze", auto=False),)))
    assert not results[0].dropped


def test_cancellation_stops_the_run(registry):
    token = CancelToken()
    token.cancel()
    session = RestorationSession(np.zeros((4, 4, 3), np.float32), registry, analyser=brightness_analyser)
    with pytest.raises(Cancelled):
        session.run(Plan((Stage("noise", "denoise"),)), Progress(cancel=token))
    assert registry.get("denoise").runs == 0


def test_a_specialist_is_skipped_when_earlier_stages_fixed_its_kind():
    registry = ExpertRegistry([ShiftExpert("big-gen", GENERALIST, 0.35), ShiftExpert("brighten", "lowlight", 0.2)])
    session = RestorationSession(np.full((4, 4, 3), 0.1, np.float32), registry, analyser=brightness_analyser)
    results = session.run(Plan((Stage(GENERALIST, "big-gen"), Stage("lowlight", "brighten"))))
    assert not results[0].dropped
    assert results[1].dropped and "nothing left to fix" in results[1].reason
    assert registry.get("brighten").runs == 0
    # asked for explicitly, it runs anyway
    session.run(Plan((Stage(GENERALIST, "big-gen"), Stage("lowlight", "brighten", auto=False))))
    assert registry.get("brighten").runs == 1


def test_compose_of_a_subsampled_region_matches_full_compose(registry):
    rng = np.random.default_rng(0)
    img = rng.random((1100, 1900, 3), dtype=np.float32) * 0.5  # large enough for the cached path
    session = RestorationSession(img, registry, analyser=brightness_analyser, assess=False)
    session.run(Plan((Stage("noise", "denoise"), Stage("lowlight", "brighten"))))
    strengths = {"noise": 0.3, "lowlight": 0.7}
    full = session.compose(strengths)
    for region, step in [((slice(0, 1100), slice(0, 1900)), 4), ((slice(8, 501), slice(400, 1203)), 4),
                         ((slice(3, 500), slice(1, 900)), 3), ((slice(None), slice(None)), 2)]:
        expected = full[region][::step, ::step]
        np.testing.assert_allclose(session.compose(strengths, region=region, step=step), expected, atol=1e-6)


class BrokenNeuralExpert(ShiftExpert):
    def run(self, image, ctx=None):
        from engine.errors import ModelError

        raise ModelError("model 'x' is not installed: x.safetensors is missing")


def test_a_neural_expert_that_cannot_run_falls_back_to_the_classical_one():
    registry = ExpertRegistry([BrokenNeuralExpert("neural.x", "noise", 0.0, backend=Backend.TORCH),
                               ShiftExpert("denoise", "noise", 0.05)])
    session = RestorationSession(np.full((4, 4, 3), 0.2, np.float32), registry, analyser=brightness_analyser,
                                 assess=False)
    (result,) = session.run(Plan((Stage("noise", "neural.x"),)))
    assert result.expert_id == "denoise" and "neural.x could not run" in result.reason
    np.testing.assert_allclose(session.compose({"noise": 1}), 0.25, atol=1e-6)


class TellableGeneralist(ShiftExpert):
    """Records the per-kind strengths each run was told."""

    def __init__(self):
        super().__init__("told-gen", GENERALIST, 0.02, backend=Backend.ONNX)
        self.told: list[dict] = []

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        self.told.append(dict(ctx.strengths))
        return super().run(image, ctx)


def test_a_conditioned_generalist_is_told_the_planned_kinds_and_their_severity():
    gen = TellableGeneralist()
    registry = ExpertRegistry([gen, ShiftExpert("brighten", "lowlight", 0.2), ShiftExpert("denoise", "noise", 0.0)])
    image = np.full((4, 4, 3), 0.1, np.float32)
    session = RestorationSession(image, registry, analyser=brightness_analyser, assess=False)
    report = session.analyse()  # lowlight 0.8, noise 0.5, haze 0.5 (no haze expert: not planned)
    plan = build_plan(report, registry)
    assert plan.names() == [GENERALIST, "noise", "lowlight"]
    session.run(plan)
    assert gen.told == [{"noise": 0.5, "lowlight": 0.8}]
    # a kind the user asks for explicitly is told at least MIN_TOLD_STRENGTH; changing what the
    # generalist is told is a different stage (re-run), the same plan again is cached
    from engine.pipeline.orchestrator import MIN_TOLD_STRENGTH

    explicit = Plan((Stage(GENERALIST, "told-gen"), Stage("noise", "denoise", auto=False)))
    session.run(explicit)
    session.run(explicit)
    assert gen.told[1:] == [{"noise": max(0.5, MIN_TOLD_STRENGTH)}]
    # --only generalist: told every kind the analysis finds
    session.run(Plan((Stage(GENERALIST, "told-gen", auto=False),)))
    assert gen.told[2] == {"lowlight": 0.8, "noise": 0.5, "haze": 0.5}


def test_the_generalist_is_told_rain_scaled_up_from_its_severity():
    """The analysed rain severity reads synthetic rain lower than the strength the generalist removes
    best (benchmarks/rain_told_strength.py): an automatic plan tells severity / RAIN_TOLD_PER_SEVERITY,
    at most 1; other kinds and kinds the user asked for are told as before."""
    from engine.pipeline.orchestrator import MIN_TOLD_STRENGTH, RAIN_TOLD_PER_SEVERITY, told_strength

    assert 0.0 < RAIN_TOLD_PER_SEVERITY <= 1.0
    assert told_strength("rain", 0.5, auto=True) == pytest.approx(min(1.0, 0.5 / RAIN_TOLD_PER_SEVERITY))
    assert told_strength("rain", 0.95, auto=True) == 1.0
    assert told_strength("rain", 0.0, auto=True) == 0.0
    assert told_strength("noise", 0.5, auto=True) == 0.5
    assert told_strength("rain", 0.1, auto=False) == MIN_TOLD_STRENGTH


class KindShiftGeneralist(ShiftExpert):
    """A conditioned generalist: adds a fixed amount per kind it is told (noise +0.05, lowlight +0.2)."""

    AMOUNTS = {"noise": 0.05, "lowlight": 0.2}

    def __init__(self):
        super().__init__("kind-gen", GENERALIST, 0.0, backend=Backend.ONNX)
        self.info = ExpertInfo(id="kind-gen", name="kind-gen", tasks=(GENERALIST,), backend=Backend.ONNX,
                               conditioned=True)

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        self.runs += 1
        return np.clip(image + sum(self.AMOUNTS.get(k, 0.0) for k in ctx.strengths), 0, 1).astype(np.float32)


def test_each_kind_slider_scales_its_share_of_a_conditioned_generalist():
    gen = KindShiftGeneralist()
    registry = ExpertRegistry([gen, ShiftExpert("brighten", "lowlight", 0.0), ShiftExpert("denoise", "noise", 0.0)])
    image = np.full((6, 5, 3), 0.1, np.float32)
    session = RestorationSession(image, registry, analyser=brightness_analyser, assess=False)
    plan = build_plan(session.analyse(), registry)
    results = session.run(plan)
    assert sorted(results[0].kind_shares) == ["lowlight", "noise"]
    assert gen.runs == 3  # told both, then told all but each kind once
    expected = {(): 0.25, (("noise", 0.0),): 0.2, (("lowlight", 0.5),): 0.15,
                (("generalist", 0.5), ("noise", 0.0)): 0.1, (("noise", 0.0), ("lowlight", 0.0)): 0.0}
    for strengths, shift in expected.items():
        assert np.allclose(session.compose(dict(strengths)), 0.1 + shift, atol=1e-6), strengths
    # the same numbers from the viewer's subsampled path
    assert np.allclose(session.compose({"noise": 0.0}, step=2), 0.3, atol=1e-6)
    # told one kind: no extra run, and that kind's slider scales the whole change
    session2 = RestorationSession(image, registry, analyser=brightness_analyser, assess=False)
    session2.run(Plan((Stage(GENERALIST, "kind-gen"), Stage("noise", "denoise"))))
    assert gen.runs == 4
    assert np.allclose(session2.compose({"noise": 0.5}), 0.1 + 0.025, atol=1e-6)


def test_a_specialist_skipped_after_a_conditioned_generalist_says_who_did_its_work():
    registry = ExpertRegistry([KindShiftGeneralist(), ShiftExpert("brighten", "lowlight", 0.2),
                               ShiftExpert("denoise", "noise", 0.0)])
    session = RestorationSession(np.full((4, 4, 3), 0.2, np.float32), registry, analyser=brightness_analyser)
    gen, noise, lowlight = session.run(build_plan(session.analyse(), registry))
    assert not gen.dropped and lowlight.dropped and lowlight.handled_by == GENERALIST
    assert "handled by the generalist" in lowlight.reason
    assert registry.get("brighten").runs == 0
    # its slider still acts, through the generalist's lowlight share (+0.2 of the +0.25)
    assert np.allclose(session.compose({"lowlight": 0.0}), 0.25, atol=1e-6)


def test_a_generalist_with_lead_kinds_runs_only_when_one_of_them_is_found(monkeypatch):
    import engine.pipeline.plan as plan_module

    gen = TellableGeneralist()
    gen.info = ExpertInfo(id="told-gen", name="told-gen", tasks=(GENERALIST,), backend=Backend.ONNX,
                          lead_kinds=("lowlight", "rain"))
    registry = ExpertRegistry([gen, ShiftExpert("brighten", "lowlight", 0.0), ShiftExpert("denoise", "noise", 0.0)])
    # today's generalist leads automatically only where it did not hurt real photos (rain)
    assert build_plan(report_of(lowlight=0.8, noise=0.5), registry).names() == ["noise", "lowlight"]
    monkeypatch.setattr(plan_module, "AUTO_GENERALIST_LEAD_KINDS", frozenset({"lowlight", "rain"}))
    # lowlight found: the generalist leads and is told only the kinds it leads on; the noise
    # specialist handles the rest
    plan = build_plan(report_of(lowlight=0.8, noise=0.5), registry)
    assert plan.names() == [GENERALIST, "noise", "lowlight"]
    session = RestorationSession(np.full((4, 4, 3), 0.1, np.float32), registry, analyser=brightness_analyser,
                                 assess=False)
    session.run(plan)
    assert gen.told == [{"lowlight": 0.8}]
    # asked for by the user, it is told every kind the plan restores
    gen.told.clear()
    plan = build_plan(report_of(lowlight=0.8, noise=0.5), registry, strengths={GENERALIST: 1.0})
    RestorationSession(np.full((4, 4, 3), 0.1, np.float32), registry, analyser=brightness_analyser,
                       assess=False).run(plan)
    assert gen.told == [{"noise": 0.5, "lowlight": 0.8}]
    # only noise found: left to the specialist, unless the user asks for the generalist
    assert build_plan(report_of(noise=0.5), registry).names() == ["noise"]
    assert build_plan(report_of(noise=0.5), registry, strengths={GENERALIST: 0.7}).names() == [GENERALIST, "noise"]


def test_a_specialist_that_fixes_its_kind_but_worsens_others_more_is_dropped():
    def seesaw(image: np.ndarray) -> DegradationReport:
        bright = float(image.mean()) > 0.25
        return report_of(haze=0.3 if bright else 0.0, noise=0.2 if bright else 0.6)

    registry = ExpertRegistry([ShiftExpert("dehaze", "haze", -0.1)])
    session = RestorationSession(np.full((4, 4, 3), 0.3, np.float32), registry, analyser=seesaw)
    (result,) = session.run(Plan((Stage("haze", "dehaze"),)))
    assert result.dropped
    assert result.reason == "did not help: haze severity 0.30 → 0.00, but noise 0.20 → 0.60"
    # the same change is kept when the other kinds do not get worse by more than it fixed
    registry = ExpertRegistry([ShiftExpert("dehaze", "haze", -0.1)])
    session = RestorationSession(np.full((4, 4, 3), 0.3, np.float32), registry,
                                 analyser=lambda im: report_of(haze=0.3 if im.mean() > 0.25 else 0.0, noise=0.4))
    assert not session.run(Plan((Stage("haze", "dehaze"),)))[0].dropped


def test_best_expert_skips_generative_ones_unless_allowed(registry):
    from engine.pipeline.plan import best_expert

    assert best_expert(registry, GENERALIST) == "gen"  # the GUI's default when the plan has no generalist
    registry.ranking[GENERALIST] = ["esrgan", "gen"]
    assert best_expert(registry, GENERALIST) == "gen"
    assert best_expert(registry, GENERALIST, allow_generative=True) == "esrgan"
    assert best_expert(registry, "rain") is None


def test_the_automatic_plan_does_not_deblur_a_dark_photo_nor_dehaze_the_veil_of_rain_or_blur():
    registry = ExpertRegistry([ShiftExpert("deblur", "blur", 0.0), ShiftExpert("dehaze", "haze", 0.0),
                               ShiftExpert("derain", "rain", 0.0), ShiftExpert("brighten", "lowlight", 0.0)])
    assert build_plan(report_of(blur=0.6), registry).names() == ["blur"]
    assert build_plan(report_of(blur=0.6, lowlight=0.9), registry).names() == ["lowlight"]
    # asked for, it still runs
    assert "blur" in build_plan(report_of(blur=0.6, lowlight=0.9), registry, strengths={"blur": 1.0}).names()
    assert build_plan(report_of(haze=0.22), registry).names() == ["haze"]
    # with rain, haze is dehazed from plan.AUTO_MIN_HAZE_WITH_RAIN (refitted on training photos: 0.16)
    assert build_plan(report_of(haze=0.155, rain=0.7), registry).names() == ["rain"]
    assert build_plan(report_of(haze=0.22, rain=0.7), registry).names() == ["rain", "haze"]
    assert build_plan(report_of(haze=0.5, rain=0.7), registry).names() == ["rain", "haze"]
    # with rain and blur both found, the stricter blur bound holds
    assert build_plan(report_of(haze=0.22, rain=0.7, blur=0.7), registry).names() == ["rain", "blur"]
    # blur lifts the dark channel: a thin haze reading beside blur is the blur's own
    assert build_plan(report_of(haze=0.19, blur=0.7), registry).names() == ["blur"]
    assert build_plan(report_of(haze=0.5, blur=0.7), registry).names() == ["haze", "blur"]


def test_a_dehazer_that_makes_jpeg_blocks_appear_is_dropped():
    def unveil(image: np.ndarray) -> DegradationReport:
        dehazed = float(image.mean()) < 0.25
        return report_of(haze=0.0 if dehazed else 0.3, jpeg=0.2 if dehazed else 0.0)

    registry = ExpertRegistry([ShiftExpert("dehaze", "haze", -0.1)])
    session = RestorationSession(np.full((4, 4, 3), 0.3, np.float32), registry, analyser=unveil)
    (result,) = session.run(Plan((Stage("haze", "dehaze"),)))
    assert result.dropped and result.reason == "did not help: it made jpeg artefacts appear (0.00 → 0.20)"
    # blocks that were already there and stay are not held against it
    session = RestorationSession(np.full((4, 4, 3), 0.3, np.float32), registry,
                                 analyser=lambda im: report_of(haze=0.0 if im.mean() < 0.25 else 0.3, jpeg=0.2))
    assert not session.run(Plan((Stage("haze", "dehaze"),)))[0].dropped


def _camera_jpeg_report(quality: float, noise: float = 0.4, jpeg: float = 0.3) -> DegradationReport:
    """Noise and JPEG found; the JPEG verdict read from the file's tables at ``quality``."""
    kinds = {k: KindAssessment(0.0, 1.0, {}) for k in KINDS}
    kinds["noise"] = KindAssessment(noise, 1.0, {})
    kinds["jpeg"] = KindAssessment(jpeg, 1.0, {"from_file": 1.0, "quality": float(quality)})
    return DegradationReport(kinds)


def test_a_noisy_camera_jpeg_gets_the_noise_stage_alone_with_a_reason():
    """One FFDNet run restores a noisy camera JPEG better and cheaper than the JPEG stage and then
    the noise stage; a heavy JPEG keeps its JPEG stage, and so does a JPEG without noise."""
    from engine.pipeline.plan import NOISE_SERVES_JPEG_MIN_QUALITY, Planner

    registry = ExpertRegistry([ShiftExpert("deblock", "jpeg", 0.01), ShiftExpert("denoise", "noise", 0.02)])
    planner = Planner(registry)
    camera = planner.plan(_camera_jpeg_report(75))
    assert camera.names() == ["noise"]
    (kind, why), = camera.left_out
    assert kind == "jpeg" and "quality 75" in why and "noise stage" in why
    heavy = planner.plan(_camera_jpeg_report(NOISE_SERVES_JPEG_MIN_QUALITY - 20))
    assert heavy.names() == ["jpeg", "noise"] and heavy.left_out == ()
    assert planner.plan(_camera_jpeg_report(75, noise=0.0)).names() == ["jpeg"]
    # the pixels' JPEG verdict (no file tables) is not a camera's save: both stages
    pixels = _camera_jpeg_report(75)
    pixels.kinds["jpeg"] = KindAssessment(0.3, 1.0, {})
    assert planner.plan(pixels).names() == ["jpeg", "noise"]
    # asking for the JPEG stage runs it; the follow-up round does not add it back
    from engine.pipeline.plan import PlanChoices
    assert planner.plan(_camera_jpeg_report(75), PlanChoices(strengths={"jpeg": 1.0})).names() == ["jpeg", "noise"]
    assert planner.follow_up(camera, _camera_jpeg_report(75)) is camera


def test_a_one_shot_session_runs_a_full_strength_sigma_stage_once_with_the_same_output():
    """The 0.5 knot of a σ-strength stage serves only a slider; composed once at strength 1 (the
    CLI, a batch) the output is identical without it, for one network run less."""
    class SigmaExpert(ShiftExpert):
        def __init__(self):
            super().__init__("ffd", "noise", 0.0)
            self.info = ExpertInfo(id="ffd", name="ffd", tasks=("noise",), sigma_strength=True)

        def run(self, image, ctx=None):
            self.runs += 1
            return np.clip(image + 0.1 * (ctx.strength if ctx else 1.0) ** 2, 0, 1).astype(np.float32)

    image = np.full((16, 16, 3), 0.3, np.float32)
    outputs = {}
    for one_shot in (False, True):
        expert = SigmaExpert()
        registry = ExpertRegistry([expert])
        session = RestorationSession(image, registry, analyser=lambda im: report_of(noise=0.5))
        session.one_shot = one_shot
        session.run(Plan((Stage("noise", "ffd", 1.0),)))
        outputs[one_shot] = (session.compose({"noise": 1.0}), expert.runs)
    assert outputs[False][1] == 2 and outputs[True][1] == 1
    assert np.array_equal(outputs[False][0], outputs[True][0])
    # a strength between the knots still gets both (the composed value interpolates them)
    expert = SigmaExpert()
    session = RestorationSession(image, ExpertRegistry([expert]), analyser=lambda im: report_of(noise=0.5))
    session.one_shot = True
    session.run(Plan((Stage("noise", "ffd", 0.8),)))
    assert expert.runs == 2


def test_a_sigma_told_stage_runs_at_full_strength_whatever_the_presence_confidence():
    """FFDNet's strength scales the σ it removes: the automatic plan tells it the measured σ (strength
    1) even where the analysis is unsure noise is there; other stages still ease off."""
    from engine.pipeline.plan import Planner

    class Sigma(ShiftExpert):
        def __init__(self):
            super().__init__("ffd", "noise", 0.0)
            self.info = ExpertInfo(id="ffd", name="ffd", tasks=("noise",), sigma_strength=True)

    unsure = DegradationReport({k: KindAssessment(0.4 if k in ("noise", "haze") else 0.0, 0.25, {}) for k in KINDS})
    plan = Planner(ExpertRegistry([Sigma(), ShiftExpert("dehaze", "haze", -0.1)])).plan(unsure)
    assert plan.stage("noise").strength == 1.0 and plan.stage("haze").strength == pytest.approx(0.7)


def test_the_restored_photos_analysis_reuses_the_last_full_strength_stages_and_analyses_otherwise(registry):
    """``report_after`` is the analysis of the saved photo: at full strength the run already
    analysed it (one analysis fewer); at another strength it is analysed again."""
    from engine.photo import Photo
    from engine.pipeline.job import Restorer, RestoreOptions

    calls: list[float] = []

    def counting(image: np.ndarray) -> DegradationReport:
        calls.append(float(image.mean()))
        return brightness_analyser(image)

    restorer = Restorer(registry, analyser=counting)
    dark = np.full((32, 32, 3), 0.1, np.float32)
    restored, result = restorer.restore_photo(Photo(pixels=dark.copy()), RestoreOptions(only=("lowlight",)))
    assert [s["stage"] for s in result.stages if not s["dropped"]] == ["lowlight"]
    assert result.report_after.severities() == brightness_analyser(restored.pixels).severities()
    full_strength_calls = len(calls)

    calls.clear()
    restored, result = restorer.restore_photo(Photo(pixels=dark.copy()),
                                              RestoreOptions(only=("lowlight",), strengths={"lowlight": 0.5}))
    assert result.report_after.severities() == brightness_analyser(restored.pixels).severities()
    assert len(calls) == full_strength_calls + 1
    assert calls[-1] == pytest.approx(float(restored.pixels.mean()))


def test_a_jpeg_reading_nudged_just_past_the_threshold_is_not_a_revealed_artefact():
    from engine.pipeline.orchestrator import MIN_REVEAL_RISE

    def nudge(rise: float):
        def analyser(image: np.ndarray) -> DegradationReport:
            dehazed = float(image.mean()) < 0.25
            return report_of(haze=0.0 if dehazed else 0.3, jpeg=0.14 + (rise if dehazed else 0.0))
        return analyser

    registry = ExpertRegistry([ShiftExpert("dehaze", "haze", -0.1)])
    kept = RestorationSession(np.full((4, 4, 3), 0.3, np.float32), registry, analyser=nudge(MIN_REVEAL_RISE / 2))
    assert not kept.run(Plan((Stage("haze", "dehaze"),)))[0].dropped  # 0.14 → 0.15: a nudge
    dropped = RestorationSession(np.full((4, 4, 3), 0.3, np.float32), registry, analyser=nudge(MIN_REVEAL_RISE + 0.01))
    assert dropped.run(Plan((Stage("haze", "dehaze"),)))[0].dropped


class TintExpert(Expert):
    """Adds a colour cast: +0.1 red, -0.05 blue."""

    info = ExpertInfo(id="tint", name="tint", tasks=("lowlight",))

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        return np.clip(image + np.array([0.1, 0.0, -0.05], np.float32), 0, 1)


def test_a_black_and_white_photo_gets_no_colour_from_an_expert():
    """A neutral photo (every pixel's channels equal, or within 1.5 levels as a gray JPEG stored as
    RGB decodes) keeps no expert's colour: each stage's output is brought back to gray (the mean
    of its channels). A colour photo keeps what the expert did."""
    ramp = np.linspace(0.1, 0.8, 12 * 10, dtype=np.float32).reshape(12, 10, 1)
    plan = Plan((Stage("lowlight", "tint"),))
    for gray in (np.repeat(ramp, 3, axis=2), np.repeat(ramp, 3, axis=2) + np.float32([0.004, 0, 0])):
        session = RestorationSession(gray, ExpertRegistry([TintExpert()]), analyser=brightness_analyser, assess=False)
        assert session.neutral
        session.run(plan)
        out = session.compose({"lowlight": 1})
        assert np.ptp(out, axis=2).max() < 1e-6
        np.testing.assert_allclose(out[..., 1], np.clip(gray + np.float32([0.1, 0, -0.05]), 0, 1).mean(axis=2),
                                   atol=1e-6)
    colour = np.concatenate([ramp, ramp * 0.5, ramp * 0.8], axis=2)
    session = RestorationSession(colour, ExpertRegistry([TintExpert()]), analyser=brightness_analyser, assess=False)
    assert not session.neutral
    session.run(plan)
    np.testing.assert_allclose(session.compose({"lowlight": 1}), np.clip(colour + np.float32([0.1, 0, -0.05]), 0, 1),
                               atol=1e-6)
