"""The window shows a restored photo after one denoiser run: a stage whose strength is a physical
parameter (FFDNet's σ·s) runs only its full-strength knot when the plan runs, and the half-strength
knot its slider composes from follows in the background (``RestorationSession.defer_knots``,
``complete_knots``). Strengths 0 and 1 compose exactly either way; in between, the picture is the
linear interpolation until the knot lands and then the same bytes as a session that ran both knots
at once; an export waits for the knot; a one-shot restoration (the CLI) never defers."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engine.analysis.report import DegradationReport
from engine.errors import Cancelled
from engine.experts.base import Expert, ExpertInfo, ExpertRegistry
from engine.pipeline.plan import Plan, Stage
from engine.pipeline.session import RestorationSession
from engine.progress import CancelToken, Progress

from gui_helpers import GammaLift, SigmaBox, analyser, write_photo

pytestmark = pytest.mark.timeout(120)


class Lift(Expert):
    """A non-σ stage before the denoiser, so that its input is recomposed from a change."""

    def __init__(self) -> None:
        self.info = ExpertInfo(id="lift", name="lift", tasks=("lowlight",))

    def run(self, image, ctx=None):
        return np.clip(image, 0, 1).astype(np.float32) ** np.float32(0.7)


def _noisy(seed: int = 0, shape=(40, 52, 3)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(0.35 + 0.3 * rng.random(shape), 0, 1).astype(np.float32)


def _session(image, defer: bool, sigma: SigmaBox, one_shot: bool = False) -> RestorationSession:
    session = RestorationSession(image, ExpertRegistry([Lift(), sigma]), analyser=lambda im: DegradationReport({}),
                                 assess=False)
    session.defer_knots = defer
    session.one_shot = one_shot
    session.run(Plan((Stage("lowlight", "lift", 1.0, auto=False), Stage("noise", sigma.info.id, 1.0, auto=False))))
    return session


def test_a_deferred_stage_runs_once_then_its_knot_gives_the_same_bytes_as_running_both_at_once():
    image = _noisy()
    eager_expert, lazy_expert = SigmaBox(), SigmaBox()
    eager, lazy = _session(image, False, eager_expert), _session(image, True, lazy_expert)
    assert eager_expert.strengths == [0.5, 1.0] and lazy_expert.strengths == [1.0]
    assert lazy.knots_pending() and not eager.knots_pending()
    # strengths 0 and 1 (the automatic plan's) need no knot and are exact already
    assert not lazy.knots_pending({"noise": 1.0}) and not lazy.knots_pending({"noise": 0.0, "lowlight": 0.4})
    assert lazy.knots_pending({"noise": 0.5})
    for strengths in ({}, {"noise": 0.0}, {"noise": 1.0, "lowlight": 0.3}):
        assert np.array_equal(lazy.compose(strengths), eager.compose(strengths))
    # in between: the full-strength change scaled linearly until the knot lands
    (noise,) = [r for r in lazy.results if r.name == "noise"]
    linear = np.clip(lazy.compose({"noise": 0.0}) + 0.5 * np.asarray(noise.delta), 0, 1)
    assert np.allclose(lazy.compose({"noise": 0.5}), linear, atol=1e-6)
    assert not np.allclose(eager.compose({"noise": 0.5}), linear, atol=1e-3), "the stand-in must be non-linear"
    revision = lazy.knots_revision
    assert lazy.complete_knots() is True
    assert lazy_expert.strengths == [1.0, 0.5] and not lazy.knots_pending()
    assert lazy.knots_revision == revision + 1 and lazy.expert_runs == eager.expert_runs
    for strengths in ({"noise": 0.5}, {"noise": 0.3}, {"noise": 0.8, "lowlight": 0.6}):
        assert np.array_equal(lazy.compose(strengths), eager.compose(strengths))
    assert lazy.complete_knots() is False and lazy_expert.strengths == [1.0, 0.5]  # nothing left to run


def test_the_screen_copies_are_remade_when_the_knot_lands(monkeypatch):
    from engine.pipeline import session as session_module

    monkeypatch.setattr(session_module, "SUBSAMPLED_COPIES_FROM", 0)
    image = _noisy(1)
    eager, lazy = _session(image, False, SigmaBox()), _session(image, True, SigmaBox())
    before = lazy.compose({"noise": 0.5}, step=2)  # builds the step-2 copies without the knot
    region = (slice(4, 30), slice(6, 40))
    lazy.compose({"noise": 0.5}, region=region)  # and a crop
    lazy.complete_knots()
    assert not np.array_equal(lazy.compose({"noise": 0.5}, step=2), before)
    assert np.array_equal(lazy.compose({"noise": 0.5}, step=2), eager.compose({"noise": 0.5}, step=2))
    assert np.array_equal(lazy.compose({"noise": 0.5}, region=region), eager.compose({"noise": 0.5}, region=region))


def test_a_cancelled_completion_leaves_the_knot_pending_and_runs_again_later():
    image = _noisy(2)
    sigma = SigmaBox(seconds=2.0)
    lazy = _session(image, True, sigma)
    token = CancelToken()
    timer = threading.Timer(0.3, token.cancel)
    timer.start()
    with pytest.raises(Cancelled):
        lazy.complete_knots(Progress(cancel=token))
    timer.join()
    assert lazy.knots_pending({"noise": 0.5})
    assert all(not r.knot_deltas for r in lazy.results)
    sigma.seconds = 0.0
    assert lazy.complete_knots() is True
    assert np.array_equal(lazy.compose({"noise": 0.5}), _session(image, False, SigmaBox()).compose({"noise": 0.5}))


def test_a_one_shot_restoration_never_defers():
    sigma = SigmaBox()
    session = RestorationSession(_noisy(3), ExpertRegistry([sigma]), analyser=lambda im: DegradationReport({}),
                                 assess=False)
    session.defer_knots = session.one_shot = True
    session.run(Plan((Stage("noise", sigma.info.id, 0.7, auto=False),)))  # a strength between the knots
    assert sigma.strengths == [0.5, 1.0] and not session.knots_pending()


# -- the window ---------------------------------------------------------------------------------
pytest.importorskip("PySide6")


def _restorer(sigma: SigmaBox):
    from engine.pipeline import Restorer

    return Restorer(ExpertRegistry([sigma, GammaLift()]), device="cpu", analyser=analyser())


def test_a_document_opens_after_one_denoiser_run_and_its_export_waits_for_the_knot(tmp_path):
    from app.document import Document
    from engine.imageio import load_photo

    photo = load_photo(write_photo(tmp_path / "noisy.png", "noise", 0.7, size=96))
    sigma = SigmaBox()
    doc = Document.open(photo, _restorer(sigma))
    try:
        assert sigma.strengths == [1.0], "the opening ran the half-strength knot too"
        assert doc.knots_pending() and not doc.knots_pending(doc.state)  # the automatic plan's strength is 1
        doc.restored_photo()
        assert sigma.strengths == [1.0], "an export at strength 1 needs no knot"
        doc.set_state(doc.state.with_strength("noise", 0.6))
        revision = doc.revision
        exported = doc.restored_photo().pixels
        assert sigma.strengths == [1.0, 0.5] and doc.revision == revision + 1 and not doc.knots_pending()
        eager = RestorationSession(photo.pixels, ExpertRegistry([SigmaBox(), GammaLift()]), analyser=analyser(),
                                   jpeg=photo.jpeg)
        eager.run(doc.plan_for(doc.state))
        assert np.array_equal(exported, eager.compose(doc.state.effective_strengths()))
    finally:
        doc.close()
    assert doc.complete_knots() is False  # a closed document runs nothing


def test_the_window_completes_the_knot_in_the_background_and_a_restoration_job_cancels_it(qapp, qtbot, tmp_path):
    from gui_helpers import isolate_settings, open_and_wait, show_window

    from app.window import KNOTS_PENDING_MESSAGE

    isolate_settings(qapp, tmp_path / "settings")
    sigma = SigmaBox(seconds=1.0)
    w = show_window(qtbot, _restorer(sigma))
    doc = open_and_wait(qtbot, w, write_photo(tmp_path / "noisy.png", "noise", 0.7, size=96))
    assert sigma.strengths == [1.0]
    # a strength between the knots: a linear preview, said so, until the knot lands
    w.apply_state(doc.state.with_strength("noise", 0.5))
    assert w.statusBar().currentMessage() == KNOTS_PENDING_MESSAGE
    revision = doc.revision
    qtbot.waitUntil(lambda: not doc.knots_pending() and not w.knots.is_busy(), timeout=30000)
    assert sigma.strengths == [1.0, 0.5] and doc.revision > revision
    qtbot.waitUntil(lambda: w.statusBar().currentMessage() != KNOTS_PENDING_MESSAGE, timeout=5000)
    qtbot.waitUntil(doc.uncertainty_measured, timeout=30000)  # measured on the exact result
    # a slow knot of a second photo is cancelled by the restoration job that opens a third
    slow = SigmaBox(seconds=20.0)
    w._restorer = _restorer(slow)
    second = open_and_wait(qtbot, w, write_photo(tmp_path / "second.png", "noise", 0.7, index=1, size=96))
    qtbot.waitUntil(w.knots.is_busy, timeout=10000)
    started = len(slow.strengths)
    w.export_to(tmp_path / "out.png", "PNG", 8)  # a job: the knot run is cancelled at once
    qtbot.waitUntil(lambda: not w.knots.is_busy(), timeout=5000)
    assert second.knots_pending() and len(slow.strengths) == started
    qtbot.waitUntil(lambda: (tmp_path / "out.png").is_file() and not w.jobs.is_busy(), timeout=30000)
