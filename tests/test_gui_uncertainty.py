"""The viewer's Uncertainty mode (a layer and legend of its own), the analysis panel's
uncertainty sentence, and the Caution slider (live, no expert run, exported as previewed)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from gui_helpers import cheap_restorer, isolate_settings, open_and_wait, write_photo  # noqa: E402

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
    assert "of the photo is uncertain" in w.controls.uncertainty.text()
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
