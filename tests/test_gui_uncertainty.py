"""The viewer's Uncertainty mode (a layer and legend of its own), the analysis panel's
uncertainty sentence, and the Caution slider (live, no expert run, exported as previewed)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from gui_helpers import CLEAN, cheap_restorer, isolate_settings, open_and_wait, write_photo  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120)]


class MapSource:
    def __init__(self) -> None:
        self.width, self.height, self.revision = 200, 100, 0
        self.asked: list[int] = []

    def before(self, rows, cols, step):
        return np.zeros((len(range(rows.start, rows.stop, step)), len(range(cols.start, cols.stop, step)), 3),
                        np.float32)

    def after(self, rows, cols, step):
        return self.before(rows, cols, step) + 0.5

    def change_map(self, step):
        raise AssertionError("the uncertainty mode does not draw the change map")

    def uncertainty_map(self, step):
        self.asked.append(step)
        return np.full((-(-self.height // step), -(-self.width // step)), 0.75, np.float32)


def test_uncertainty_mode_draws_its_map_and_legend(qtbot):
    from app.viewer import AFTER, BeforeAfterViewer, ViewMode

    v = BeforeAfterViewer()
    qtbot.addWidget(v)
    v.resize(600, 400)
    v.show()
    qtbot.waitExposed(v)
    v.uncertainty_legend_text = "expected error: 0 to 16 of 255 levels or more"
    src = MapSource()
    v.set_source(src)
    v.set_overlay(True)  # the change overlay is not drawn over the uncertainty layer
    v.set_mode(ViewMode.UNCERTAINTY)
    shown = v.grab().toImage()  # paints now
    assert src.asked and set(v.panes()) == {"main"}
    centre = shown.pixelColor(shown.width() // 2, shown.height() // 2)
    plain = v.rendered_image(AFTER).pixelColor(10, 10)
    assert centre != plain  # the heat layer tints the restored photo
    v.set_show_original(True)
    v.grab()
    assert v.rendered_image("before") is not None


@pytest.fixture
def window(qtbot, qapp, tmp_path):
    from app.settings import AppSettings
    from app.window import MainWindow

    isolate_settings(qapp, tmp_path / "settings")
    w = MainWindow(AppSettings(), restorer=cheap_restorer())
    w.confirm_close = lambda what: True
    qtbot.addWidget(w)
    w.resize(1000, 700)
    w.show()
    return w


def test_caution_is_live_undoable_and_exported(window, qtbot, tmp_path):
    from engine.imageio import load_photo

    w = window
    doc = open_and_wait(qtbot, w, write_photo(tmp_path / "noisy.png", "noise", 0.9))
    # the opening's map follows it on the maps worker
    qtbot.waitUntil(lambda: "of the photo is uncertain" in w.controls.uncertainty.text(), timeout=10000)
    assert w.controls.caution.isEnabled() and w.controls.caution.value() == 0
    runs = doc.session.expert_runs
    strengths = doc.state.effective_strengths()
    plain = doc.after(slice(0, 96), slice(0, 96), 1)
    levels = doc.uncertainty.composed(strengths)
    w.controls.caution.setValue(100)
    assert doc.state.caution == 1.0 and doc.session.expert_runs == runs
    leaned = doc.after(slice(0, 96), slice(0, 96), 1)
    sure = levels <= 3.0
    assert np.array_equal(leaned[sure], plain[sure])
    if (~sure).any():
        closer = np.abs(leaned - doc.photo.pixels).sum() < np.abs(plain - doc.photo.pixels).sum()
        assert closer
    w.undo_stack.undo()
    assert w.controls.caution.value() == 0 and doc.state.caution == 0.0
    w.undo_stack.redo()
    assert w.controls.caution.value() == 100
    out = tmp_path / "out" / "restored.png"
    out.parent.mkdir()
    with qtbot.waitSignal(w.jobs.finished, timeout=20000):
        w.export_to(out, "png", 16)
    assert np.abs(load_photo(out).pixels - leaned).max() < 2 / 65535
    w.set_view_mode("uncertainty")
    w.viewer.repaint()
    assert w.viewer.mode().value == "uncertainty" and w.actions_by_name["mode_uncertainty"].isChecked()


def test_uncertainty_mode_keeps_the_last_map_until_the_next_is_made(qtbot):
    """A source that has no map yet for its new revision (it is made in the background): the
    viewer keeps drawing the last one and its caption says the map is being measured; when the
    source's owner says the map arrived (``refresh_layers``) the new one is drawn."""
    from app.viewer import AFTER, BeforeAfterViewer, ViewMode

    v = BeforeAfterViewer()
    qtbot.addWidget(v)
    v.resize(600, 400)
    v.show()
    qtbot.waitExposed(v)
    src = MapSource()
    v.set_source(src)
    v.set_mode(ViewMode.UNCERTAINTY)

    def centre():
        shown = v.grab().toImage()
        return shown.pixelColor(shown.width() // 2, shown.height() // 2)

    tinted = centre()
    plain = v.rendered_image(AFTER).pixelColor(10, 10)
    assert tinted != plain
    pending = {"map": None, "status": "measuring this setting…"}
    src.uncertainty_map = lambda step: pending["map"]
    src.uncertainty_status = lambda: pending["status"]
    src.revision += 1
    v.refresh()
    assert centre() == tinted  # the last map stays while the new one is made
    assert "measuring this setting" in v.uncertainty_caption()
    pending.update(map=np.zeros((100, 200), np.float32), status="")
    v.refresh_layers()
    assert centre() == plain and "measuring" not in v.uncertainty_caption()


class Gate:
    """Holds every full-resolution uncertainty map made off the UI thread until released (and every
    preview-grid map too while ``previews`` is set), and records any map made on the UI thread."""

    def __init__(self, monkeypatch) -> None:
        import threading

        from engine.uncertainty.session import SessionUncertainty

        self.on_ui_thread: list[str] = []
        self.waiting = 0
        self.previews = False
        self.hold_full = True
        self._open = threading.Semaphore(0)
        self._all_open = threading.Event()
        full, composed, predict = SessionUncertainty.full, SessionUncertainty.composed, SessionUncertainty._predict
        gate = self

        def hold(made) -> None:
            if threading.current_thread() is not threading.main_thread() and made is None:
                gate.waiting += 1
                while not gate._all_open.is_set() and not gate._open.acquire(timeout=0.02):
                    pass
                gate.waiting -= 1

        def gated_full(su, strengths, compute=True, progress=None):
            if compute and gate.hold_full:
                hold(su.full(strengths, compute=False))
            return full(su, strengths, compute, progress)

        def gated_composed(su, strengths, compute=True, progress=None):
            if compute and gate.previews:
                hold(composed(su, strengths, compute=False))
            return composed(su, strengths, compute, progress)

        def watched_predict(su, *args, **kwargs):
            if threading.current_thread() is threading.main_thread():
                gate.on_ui_thread.append("map")
            return predict(su, *args, **kwargs)

        monkeypatch.setattr(SessionUncertainty, "full", gated_full)
        monkeypatch.setattr(SessionUncertainty, "composed", gated_composed)
        monkeypatch.setattr(SessionUncertainty, "_predict", watched_predict)

    def release(self) -> None:
        self._open.release()

    def open_all(self) -> None:
        """Hold nothing from now on, and let every held map go."""
        self.previews = False
        self.hold_full = False
        self._all_open.set()


@pytest.fixture
def gated(window, qtbot, tmp_path, monkeypatch):
    """The window with a photo open whose preview map is on every other pixel (so the full map
    costs more than the preview), in Uncertainty mode, and the :class:`Gate` on the maps."""
    monkeypatch.setattr("app.document.UNCERTAINTY_PREVIEW_PIXELS", 96 * 96 // 4)
    doc = open_and_wait(qtbot, window, write_photo(tmp_path / "noisy.png", "noise", 0.95))
    assert doc.uncertainty.step == 2
    # the auto setting's map follows the opening on the maps worker
    qtbot.waitUntil(lambda: doc.uncertainty_measured() and not window.maps.is_busy(), timeout=10000)
    window.set_view_mode("uncertainty")
    return window, doc, Gate(monkeypatch)


def _slider(w, name):
    from PySide6.QtWidgets import QSlider

    return w.controls.findChild(QSlider, f"slider_{name}")


def _heat(doc, umap, shown):
    """``umap`` (on the uncertainty's grid) as the overlay of the shape ``shown`` shows it."""
    from app.document import UNCERTAINTY_FULL_SCALE

    step = -(-doc.height // shown.shape[0])
    grid = doc.uncertainty.step
    rows, cols = np.arange(0, doc.height, step) // grid, np.arange(0, doc.width, step) // grid
    return np.clip(umap[np.ix_(rows, cols)] / np.float32(UNCERTAINTY_FULL_SCALE), 0.0, 1.0)


def test_a_setting_change_shows_the_preview_map_then_the_full_one_made_off_the_ui_thread(gated, qtbot):
    w, doc, gate = gated
    shown: list[np.ndarray] = []
    ask = doc.uncertainty_map
    doc.uncertainty_map = lambda step: shown.append(ask(step)) or shown[-1]
    _slider(w, "noise").setValue(40)
    strengths = doc.state.effective_strengths()
    assert strengths["noise"] == 0.4
    w.viewer.settle()  # the hand stopped: the settled paint asks for the map
    w.viewer.repaint()  # no map made here
    assert gate.on_ui_thread == [] and shown[-1] is None
    assert w.controls.uncertainty.text().startswith("Measuring")
    assert "measuring this setting" in w.viewer.uncertainty_caption()
    qtbot.waitUntil(lambda: gate.waiting == 1, timeout=10000)  # the worker made the preview, holds the full map
    su = doc.uncertainty
    qtbot.waitUntil(lambda: "quick preview" in w.viewer.uncertainty_caption(), timeout=5000)
    w.viewer.repaint()
    assert np.array_equal(shown[-1], _heat(doc, su.composed(strengths, compute=False), shown[-1]))
    assert w.controls.uncertainty.text().startswith("Measuring")  # no number until the full map says it
    gate.release()
    qtbot.waitUntil(doc.uncertainty_measured, timeout=10000)
    qtbot.waitUntil(lambda: not w.maps.is_busy(), timeout=10000)
    w.viewer.repaint()
    full = su.full(strengths, compute=False)
    assert np.array_equal(shown[-1], _heat(doc, full, shown[-1]))  # the final state: the full-resolution map
    assert not np.array_equal(full, su.composed(strengths, compute=False))  # (a different map than the preview)
    assert "measuring" not in w.viewer.uncertainty_caption()
    assert gate.on_ui_thread == []


def test_the_sentence_ends_equal_to_the_clis(gated, qtbot):
    from engine.uncertainty import SessionUncertainty, describe, summarise

    w, doc, gate = gated
    _slider(w, "noise").setValue(100)
    strengths = doc.state.effective_strengths()
    qtbot.waitUntil(lambda: gate.waiting == 1, timeout=10000)
    gate.release()
    qtbot.waitUntil(lambda: "of the photo is uncertain" in w.controls.uncertainty.text(), timeout=10000)
    assert gate.on_ui_thread == []
    su = doc.uncertainty
    text = w.controls.uncertainty.text()
    assert text == describe(su.full(strengths), doc.session.compose(strengths, step=su.step),
                            faces=su.faces(strengths))
    cli = summarise(SessionUncertainty(doc.session).composed(strengths))  # what `restora --uncertainty` says
    percent = float(text.split(" %", 1)[0])
    assert abs(percent - 100 * cli["fraction_above"]) <= 0.5
    preview = summarise(su.composed(strengths))["fraction_above"]
    if not any(CLEAN.glob("*.jpg")):  # the stand-in gradient scene: every map says 100 %, so no contrast to check
        assert preview == cli["fraction_above"] == 1.0
    else:  # on the shared photo's crop the preview map (features on the subsampled photo) says several times more
        assert preview > 3 * cli["fraction_above"] > 0


def test_a_superseded_settings_map_is_never_shown(gated, qtbot):
    w, doc, gate = gated
    su = doc.uncertainty
    slider = _slider(w, "noise")
    slider.setValue(50)
    first = doc.state.effective_strengths()
    qtbot.waitUntil(lambda: gate.waiting == 1, timeout=10000)  # the first setting's full map is about to be made
    slider.setValue(20)
    second = doc.state.effective_strengths()
    gate.release()  # the first setting's map may start now, after the second setting superseded it: it stops
    qtbot.waitUntil(lambda: su.composed(second, compute=False) is not None, timeout=10000)
    qtbot.waitUntil(lambda: gate.waiting == 1, timeout=10000)  # the second's preview made, its full map held
    assert su.full(first, compute=False) is None and su.describe(first, compute=False) is None
    w.viewer.settle()
    w.viewer.repaint()
    assert w.controls.uncertainty.text().startswith("Measuring")
    assert su.describe(second, compute=False) is None
    shown = doc.uncertainty_map(1)
    assert np.array_equal(shown, _heat(doc, su.composed(second, compute=False), shown))
    gate.release()
    qtbot.waitUntil(lambda: doc.uncertainty_measured(), timeout=10000)
    qtbot.waitUntil(lambda: "of the photo is uncertain" in w.controls.uncertainty.text(), timeout=10000)
    assert w.controls.uncertainty.text() == su.describe(second, compute=False)
    assert gate.on_ui_thread == []


def test_caution_never_makes_its_map_on_the_ui_thread(gated, qtbot):
    """Caution leans on the preview-grid map, made per setting: a paint of a new setting shows the
    result without the blend (and says so) until a worker made the map, then the blended one;
    the export always leans."""
    w, doc, gate = gated
    w.set_view_mode("split")
    gate.previews = True
    su = doc.uncertainty
    strengths = doc.state.effective_strengths()
    assert su.composed(strengths, compute=False) is None  # the opening run made the full map, not this one
    region = (slice(0, 96), slice(0, 96))
    plain = doc.session.compose(strengths, region=region)
    w.controls.caution.setValue(100)
    w.viewer.settle()
    w.viewer.repaint()
    assert gate.on_ui_thread == [] and doc.caution_pending()
    assert np.array_equal(doc.after(*region, 1), plain)  # not leaned yet
    assert "Caution: measuring" in w.viewer.after_caption("After")
    renders, revision = w.viewer.renders, doc.revision
    qtbot.waitUntil(lambda: gate.waiting >= 1, timeout=10000)  # a worker is making the blend's map
    gate.open_all()
    qtbot.waitUntil(lambda: not doc.caution_pending() and doc.revision > revision, timeout=10000)
    w.viewer.repaint()
    assert w.viewer.renders > renders  # the picture was drawn again, with the blend
    leaned = doc.after(*region, 1)
    assert np.array_equal(leaned, su.compose(strengths, 1.0, region=region))
    assert not np.array_equal(leaned, plain) and "Caution" not in w.viewer.after_caption("After")
    assert gate.on_ui_thread == []
    assert np.array_equal(doc.restored_photo().pixels, su.compose(strengths, 1.0))  # the export leans


class BandGate:
    """Holds the map made off the UI thread at its ``hold_at``-th band (features of 16 rows) until
    that map's measurement is cancelled, then lets the band go on; counts, per measurement (its
    progress), the bands whose features were made."""

    def __init__(self, monkeypatch, hold_at: int = 2) -> None:
        import threading

        import engine.uncertainty.model as model_mod

        monkeypatch.setattr(model_mod, "BAND_ROWS", 16)
        self.armed = False
        self.held = threading.Event()
        self.held_progress = None
        self.made: dict[int, int] = {}
        real = model_mod.feature_stack
        gate = self

        def gated(*args, progress=None, **kwargs):
            if gate.armed and progress is not None and threading.current_thread() is not threading.main_thread():
                if gate.made.get(id(progress), 0) == hold_at - 1 and gate.held_progress is None:
                    gate.held_progress = progress
                    gate.held.set()
                    for _ in range(1000):  # until the window cancels this measurement (at most 10 s)
                        if progress.cancel.cancelled:
                            break
                        threading.Event().wait(0.01)
            stack = real(*args, progress=progress, **kwargs)
            if progress is not None:
                gate.made[id(progress)] = gate.made.get(id(progress), 0) + 1
            return stack

        monkeypatch.setattr(model_mod, "feature_stack", gated)

    def bands_made_by_the_held_measurement(self) -> int:
        return self.made.get(id(self.held_progress), 0)


@pytest.fixture
def banded(window, qtbot, tmp_path, monkeypatch):
    """The window with a photo open (96 rows: a full-resolution map of 6 bands), in Split mode (no
    preview map: the measurement makes only the full map), and the :class:`BandGate` on the maps."""
    monkeypatch.setattr("app.document.UNCERTAINTY_PREVIEW_PIXELS", 96 * 96 // 4)
    doc = open_and_wait(qtbot, window, write_photo(tmp_path / "noisy.png", "noise", 0.95))
    window.set_view_mode("split")
    gate = BandGate(monkeypatch)
    gate.armed = True
    return window, doc, gate


def test_a_superseded_map_stops_midway_and_the_newer_one_is_made(banded, qtbot):
    w, doc, gate = banded
    su = doc.uncertainty
    slider = _slider(w, "noise")
    slider.setValue(50)
    first = doc.state.effective_strengths()
    qtbot.waitUntil(gate.held.is_set, timeout=10000)  # the first setting's full map is in its second band
    assert gate.bands_made_by_the_held_measurement() == 1
    slider.setValue(20)  # supersedes it: the band in flight stops at its next check, no band after it runs
    second = doc.state.effective_strengths()
    qtbot.waitUntil(lambda: doc.uncertainty_measured(), timeout=10000)
    qtbot.waitUntil(lambda: "of the photo is uncertain" in w.controls.uncertainty.text(), timeout=10000)
    assert gate.bands_made_by_the_held_measurement() == 1  # of 6
    assert su.full(first, compute=False) is None and su.describe(first, compute=False) is None  # nothing cached
    assert w.controls.uncertainty.text() == su.describe(second, compute=False)
    assert max(gate.made.values()) == 6  # the newer setting's map was made whole


def test_closing_the_window_stops_a_map_in_flight(banded, qtbot):
    w, doc, gate = banded
    _slider(w, "noise").setValue(50)
    strengths = doc.state.effective_strengths()
    qtbot.waitUntil(gate.held.is_set, timeout=10000)
    w.close()  # cancels the measurement and waits for its worker
    assert w.maps.wait(0)  # the worker is idle when close returns
    assert gate.bands_made_by_the_held_measurement() == 1  # it stopped in its second band of 6
    assert doc.uncertainty.full(strengths, compute=False) is None


def test_esc_after_a_run_does_not_wait_for_its_map_and_the_window_stays_consistent(gated, qtbot):
    """A run ends when its pixels are done; the new setting's map follows on the maps worker, so Esc
    while that map is made has no run to wait for, and what is shown (the photo, its expert, the undo
    stack, the overlay and the sentence) is all the new setting's."""
    w, doc, gate = gated
    su = doc.uncertainty
    old = doc.state
    w._expert_changed("noise", "test-box2")  # another expert: a run
    qtbot.waitUntil(lambda: gate.waiting == 1, timeout=10000)  # the new setting's full map is held
    assert not w.jobs.is_busy()  # the run is over: its map is not part of it
    w.actions_by_name["cancel"].trigger()  # Esc
    assert not w.jobs.is_busy() and w._pending is None
    state = doc.state
    assert state.experts["noise"] == "test-box2" and state != old
    assert not doc.needs_run(state)
    assert w.undo_stack.count() == 1 and w.undo_stack.index() == 1
    assert [r.expert_id for r in w.doc.rows()] == [r.expert_id for r in doc.rows(state)]
    strengths = state.effective_strengths()
    assert w.controls.uncertainty.text().startswith("Measuring") and su.describe(strengths, compute=False) is None
    shown = doc.uncertainty_map(1)  # the overlay: the new setting's preview map, never the old setting's map
    assert np.array_equal(shown, _heat(doc, su.composed(strengths, compute=False), shown))
    gate.release()
    qtbot.waitUntil(lambda: "of the photo is uncertain" in w.controls.uncertainty.text(), timeout=10000)
    assert w.controls.uncertainty.text() == su.describe(strengths, compute=False)
    assert np.array_equal(doc.uncertainty_map(1), _heat(doc, su.full(strengths, compute=False), shown))
    gate.open_all()
    w.undo_stack.undo()
    qtbot.waitUntil(lambda: doc.state == old and not w.jobs.is_busy(), timeout=10000)
    qtbot.waitUntil(lambda: w.controls.uncertainty.text() == su.describe(old.effective_strengths(), compute=False),
                    timeout=10000)
    assert gate.on_ui_thread == []


def test_closing_while_a_runs_map_is_made_does_not_wait_for_it(banded, qtbot):
    w, doc, gate = banded
    w._expert_changed("noise", "test-box2")  # a run; its map follows on the maps worker
    strengths = w.current_state().effective_strengths()
    qtbot.waitUntil(gate.held.is_set, timeout=10000)
    assert not w.jobs.is_busy() and doc.state.experts["noise"] == "test-box2"
    w.close()  # cancels the map and waits for its worker
    assert w.maps.wait(0) and gate.held_progress.cancel.cancelled
    assert gate.bands_made_by_the_held_measurement() == 1  # it stopped in its second band of 6
    assert doc.uncertainty.full(strengths, compute=False) is None
