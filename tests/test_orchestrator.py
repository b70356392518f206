"""The Planner and the orchestrator: one place plans (first round, follow-up round, the window's
controls), one place runs a plan, and the CLI and the window get byte-identical files from them."""

from __future__ import annotations

from typing import Optional

import numpy as np
import pytest

from engine.analysis.report import DegradationReport, KindAssessment
from engine.experts.base import Backend, Expert, ExpertContext, ExpertInfo, ExpertRegistry
from engine.kinds import GENERALIST, KINDS
from engine.pipeline import Orchestrator, Plan, PlanChoices, Planner, Stage
from engine.progress import CancelToken, Progress


class Shift(Expert):
    def __init__(self, eid: str, task: str, amount: float, backend=Backend.CLASSICAL, generative=False):
        self.info = ExpertInfo(id=eid, name=eid, tasks=(task,), backend=backend, generative=generative)
        self.amount = amount
        self.runs = 0

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        (ctx or ExpertContext()).progress(0.5)
        self.runs += 1
        return np.clip(image + self.amount, 0, 1).astype(np.float32)


def report_of(**severities: float) -> DegradationReport:
    return DegradationReport({k: KindAssessment(severities.get(k, 0.0), 1.0, {}) for k in KINDS})


def uncovering_analyser(image: np.ndarray) -> DegradationReport:
    """Dark input reads as low light; brightened to a mean of 0.6, noise shows (the denoisers
    darken it a little, which clears it)."""
    mean = float(image.mean())
    return report_of(lowlight=float(np.clip(1.0 - 2 * mean, 0, 1)), noise=0.6 if mean > 0.595 else 0.0)


@pytest.fixture
def registry():
    # The generative denoiser is ranked first for noise, so only the generative filter keeps it out.
    return ExpertRegistry([Shift("brighten", "lowlight", 0.4), Shift("gan-denoise", "noise", -0.01, generative=True),
                           Shift("denoise", "noise", -0.02)],
                          ranking={"noise": ["gan-denoise", "denoise"]})


def test_follow_up_round_respects_generative(registry):
    planner = Planner(registry)
    plan = Plan((Stage("lowlight", "brighten", 1.0, True),))
    final = report_of(noise=0.6)
    assert planner.follow_up(plan, final, PlanChoices()).names() == ["lowlight", "noise"]
    assert planner.follow_up(plan, final, PlanChoices()).stage("noise").expert_id == "denoise"
    assert planner.follow_up(plan, final, PlanChoices(allow_generative=True)).stage("noise").expert_id == "gan-denoise"
    # the user's expert choice holds in the follow-up too; a manual plan gets no follow-up
    assert planner.follow_up(plan, final, PlanChoices(experts={"noise": "gan-denoise"})).stage(
        "noise").expert_id == "gan-denoise"
    assert planner.follow_up(plan, final, PlanChoices(auto=False, strengths={"lowlight": 1.0})) is plan
    assert planner.follow_up(plan, report_of(noise=0.1), PlanChoices()) is plan


def test_orchestrator_restores_with_the_follow_up_round(registry):
    orchestrator = Orchestrator(registry, analyser=uncovering_analyser)
    session = orchestrator.session(np.full((16, 16, 3), 0.2, np.float32))
    outcome = orchestrator.restore(session, PlanChoices())
    assert outcome.plan.names() == ["lowlight", "noise"]
    assert [r.expert_id for r in outcome.results] == ["brighten", "denoise"]
    assert not any(r.dropped for r in outcome.results)
    assert registry.get("gan-denoise").runs == 0
    outcome = orchestrator.restore(orchestrator.session(session.image), PlanChoices(allow_generative=True))
    assert [r.expert_id for r in outcome.results] == ["brighten", "gan-denoise"]


def test_cli_restore_follow_up_respects_generative(registry, tmp_path):
    """``restora restore`` without ``--generative`` never runs a generative expert in the
    follow-up round, with it the measured-best (generative) one is used."""
    from PIL import Image

    from engine.pipeline import RestoreOptions, Restorer

    path = tmp_path / "dark.png"
    Image.fromarray(np.full((16, 16, 3), 51, np.uint8)).save(path)
    restorer = Restorer(registry, analyser=uncovering_analyser)
    for generative, expert in ((False, "denoise"), (True, "gan-denoise")):
        result = restorer.restore_file(path, lambda photo, g=generative: tmp_path / f"out-{g}.png",
                                       RestoreOptions(allow_generative=generative))
        assert result.error is None
        assert [s["expert"] for s in result.stages] == ["brighten", expert]


def test_orchestrator_cancel_leaves_the_shown_results(registry):
    orchestrator = Orchestrator(registry, analyser=uncovering_analyser)
    session = orchestrator.session(np.full((16, 16, 3), 0.2, np.float32))
    first = orchestrator.restore(session, PlanChoices())
    token = CancelToken()
    token.cancel()
    from engine.errors import Cancelled

    with pytest.raises(Cancelled):
        orchestrator.run(session, Plan((Stage("noise", "gan-denoise", 1.0, False),)), Progress(cancel=token))
    assert [r.expert_id for r in session.results] == [r.expert_id for r in first.results]


def test_controls_plan_keeps_auto_order_and_leaves_out_a_switched_off_generalist():
    reg = ExpertRegistry([Shift("gen", GENERALIST, 0.01, backend=Backend.ONNX), Shift("denoise", "noise", -0.02),
                          Shift("brighten", "lowlight", 0.1), Shift("dehaze", "haze", -0.1)])
    planner = Planner(reg)
    auto = Plan((Stage(GENERALIST, "gen", 1.0, True), Stage("lowlight", "brighten", 0.8, True),
                 Stage("noise", "denoise", 0.9, True)))
    experts = {"haze": "dehaze"}
    plan = planner.for_controls(auto, {GENERALIST: True, "haze": True}, {"haze": 0.5}, experts)
    assert plan.names() == [GENERALIST, "lowlight", "noise", "haze"]
    assert plan.stage("haze").auto is False and plan.stage("haze").strength == 0.5
    plan = planner.for_controls(auto, {GENERALIST: False}, {}, experts, keep={"haze"})
    assert plan.names() == ["lowlight", "noise", "haze"]


def test_a_moved_slider_asks_for_a_stage_the_automatic_run_dropped():
    """In the window, moving the slider of a stage whose automatic result was dropped (a deblurrer
    that would not decide alone) asks for it, as ``--set`` does: a user stage, run unjudged with
    ``ExpertContext.requested``. A kept stage's moved slider, or a dropped one left where the plan put
    it, stays automatic (no new run)."""
    reg = ExpertRegistry([Shift("denoise", "noise", -0.02), Shift("deblur", "blur", 0.0)])
    planner = Planner(reg)
    auto = Plan((Stage("blur", "deblur", 0.6, True), Stage("noise", "denoise", 0.9, True)))
    on = {"blur": True, "noise": True}
    experts = {"blur": "deblur", "noise": "denoise"}
    same = planner.for_controls(auto, on, {"blur": 0.6, "noise": 0.9}, experts, dropped={"blur"})
    assert same.stage("blur").auto and same.stage("noise").auto
    moved = planner.for_controls(auto, on, {"blur": 1.0, "noise": 0.5}, experts, dropped={"blur"})
    assert moved.stage("blur").auto is False and moved.stage("blur").strength == 1.0
    assert moved.stage("noise").auto and moved.stage("noise").strength == 0.5
    assert moved.names() == ["blur", "noise"]


# -- the GUI path and the CLI path write the same bytes ------------------------------------------

def _camera_jpeg(path, iso: int):
    """A noisy JPEG with an EXIF ISO (so the analysis' ISO prior and the file's quantisation
    tables both take part)."""
    from PIL import Image

    from engine.degrade import degrade
    from gui_helpers import clean_crop

    img = degrade(clean_crop(3, 128), "noise", 0.6, seed=3)
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x8827] = iso
    Image.fromarray(np.rint(img * 255).astype(np.uint8)).save(path, format="JPEG", quality=80, exif=exif.tobytes())
    return path


@pytest.mark.gui
@pytest.mark.timeout(300)
def test_gui_and_cli_write_byte_identical_files(qtbot, qapp, tmp_path):
    pytest.importorskip("PySide6")
    pytest.importorskip("pytestqt")
    from gui_helpers import isolate_settings, open_and_wait

    from app.settings import AppSettings
    from app.window import MainWindow, default_restorer
    from engine.cli import main
    from engine.imageio import load_photo

    (tmp_path / "in").mkdir()
    photo = _camera_jpeg(tmp_path / "in" / "noisy.jpg", iso=3200)
    assert main(["restore", str(photo), "-o", str(tmp_path / "cli"), "--format", "png"]) == 0
    cli_out = tmp_path / "cli" / "noisy.png"

    isolate_settings(qapp, tmp_path / "settings")
    restorer, _ = default_restorer("cpu")
    window = MainWindow(AppSettings(), restorer=restorer)
    window.confirm_close = lambda what: True
    qtbot.addWidget(window)
    doc = open_and_wait(qtbot, window, photo, timeout_ms=240000)
    assert doc.auto_plan.names(), "the photo must need restoring, else the test proves nothing"
    gui_out = tmp_path / "gui.png"
    with qtbot.waitSignal(window.jobs.finished, timeout=60000):
        window.export_to(gui_out, "png", 8)

    assert gui_out.read_bytes() == cli_out.read_bytes()
    assert not np.array_equal(load_photo(cli_out).pixels, load_photo(photo).pixels)


def test_a_smoothing_stage_is_not_judged_by_the_blur_it_reveals():
    """Removing noise (the noise stage, or the JPEG stage with its denoiser prior) widens the edges
    the noise made look sharp: that blur rise is not held against the stage. A deblurrer's rise in
    another kind still is."""
    from engine.analysis.report import DegradationReport, KindAssessment
    from engine.kinds import KINDS
    from engine.pipeline.orchestrator import judge
    from engine.pipeline.plan import Stage
    from engine.pipeline.session import StageResult

    def report(**severities: float) -> DegradationReport:
        return DegradationReport({k: KindAssessment(severities.get(k, 0.0)) for k in KINDS})

    def dropped(stage: str, before: DegradationReport, after: DegradationReport) -> bool:
        result = StageResult(stage, "x", "k", np.zeros((2, 2, 3), np.float32), 0.0, output_report=after)
        judge(result, Stage(stage, "x"), before)
        return result.dropped

    # measured on a real camera JPEG: jpeg 0.94 → 0.55 while blur read 0.07 → 0.73
    assert not dropped("jpeg", report(jpeg=0.94, blur=0.07), report(jpeg=0.55, blur=0.73))
    assert not dropped("noise", report(noise=0.6, blur=0.07), report(noise=0.1, blur=0.6))
    assert dropped("blur", report(blur=0.6, jpeg=0.1), report(blur=0.3, jpeg=0.9))
    assert dropped("jpeg", report(jpeg=0.94, haze=0.1), report(jpeg=0.55, haze=0.9))


def test_a_dehazer_that_drives_many_pixels_to_black_or_white_is_dropped():
    """Removing a veil the haze model explains keeps the scene displayable; a "dehazed" bright warm page
    runs out of range (orchestrator.MAX_NEWLY_CLIPPED). The severities alone would keep this stage."""
    from engine.analysis.report import DegradationReport, KindAssessment
    from engine.kinds import KINDS
    from engine.pipeline.orchestrator import MAX_NEWLY_CLIPPED, judge
    from engine.pipeline.plan import Stage
    from engine.pipeline.session import StageResult

    def report(**severities: float) -> DegradationReport:
        return DegradationReport({k: KindAssessment(severities.get(k, 0.0)) for k in KINDS})

    page = np.full((40, 40, 3), (0.9, 0.8, 0.6), np.float32)
    yellow = page.copy()
    yellow[:24, :, 2] = 0.0  # 60 % of the pixels lose their blue entirely
    assert 0.6 > MAX_NEWLY_CLIPPED["haze"]

    def judged(out: np.ndarray, image=page) -> StageResult:
        result = StageResult("haze", "x", "k", out - page, 0.0, output_report=report(haze=0.05))
        judge(result, Stage("haze", "x"), report(haze=0.6), image)
        return result

    result = judged(yellow)
    assert result.dropped and "black or white" in result.reason and result.delta is None
    assert not judged(yellow, image=None).dropped  # the severities alone keep it
    assert not judged(np.clip(page * 1.05 - 0.05, 0, 1)).dropped  # a stretch that stays in range


class Recorder(Shift):
    """A shift that keeps the contexts it was run with."""

    def __init__(self, eid: str, task: str, amount: float):
        super().__init__(eid, task, amount)
        self.contexts: list[ExpertContext] = []

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        self.contexts.append(ctx)
        return super().run(image, ctx)


def test_a_stage_after_another_is_told_the_photo_as_loaded_its_noise_and_whether_it_was_asked_for():
    """The deblurrer checks its blur on the photo as loaded at that photo's own noise level (not the
    denoised input's) and may act on an ambiguous case only when the user asked for the stage."""
    noise = {"sigma_told_255": 4.0, "sigma_two_scale_255": 3.0}

    def analyser(image: np.ndarray) -> DegradationReport:
        noisy = float(image.mean()) >= 0.5  # the denoiser (−0.02) clears it, so its stage is kept
        return DegradationReport({k: KindAssessment(0.6 if k == "blur" or (k == "noise" and noisy) else 0.0, 1.0,
                                                    noise if k == "noise" else {}) for k in KINDS})

    deblur = Recorder("deblur", "blur", 0.01)
    registry = ExpertRegistry([Shift("denoise", "noise", -0.02), deblur])
    orchestrator = Orchestrator(registry, analyser=analyser)
    photo = np.full((16, 16, 3), 0.5, np.float32)
    for choices, asked in ((PlanChoices(use_generalist=False), False),
                           (PlanChoices(auto=False, strengths={"noise": 1.0, "blur": 1.0}), True)):
        deblur.contexts.clear()
        orchestrator.restore(orchestrator.session(photo), choices)
        ctx = deblur.contexts[0]
        assert ctx.requested is asked
        assert np.array_equal(ctx.original, photo)
        assert np.allclose(np.asarray(ctx.original_noise_sigma).reshape(-1, 3).mean(axis=0), 3.0 / 255)
