"""The main window: open, analysis panel, slider re-composition without re-running experts,
adding a stage and switching experts, undo/redo, cancel, errors, export."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from gui_helpers import (SlowExpert, cheap_restorer, isolate_settings, open_and_wait, show_window,  # noqa: E402
                         write_photo)

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120)]


@pytest.fixture
def window(qtbot, qapp, tmp_path):
    isolate_settings(qapp, tmp_path / "settings")
    return lambda restorer=None: show_window(qtbot, restorer or cheap_restorer())


def _after_pixels(window) -> np.ndarray:
    """What the viewer shows on its restored side at full resolution (as uint8 RGB)."""
    from PySide6.QtGui import QImage

    window.viewer.settle()
    window.viewer.repaint()
    img = window.viewer.rendered_image("after").convertToFormat(QImage.Format.Format_RGB888)
    w, h = img.width(), img.height()
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(h, img.bytesPerLine())[:, :w * 3]
    return arr.reshape(h, w, 3).copy()


def test_open_fills_panel_and_slider_recomposes_without_rerun(window, qtbot, tmp_path):
    w = window()
    doc = open_and_wait(qtbot, w, write_photo(tmp_path / "noisy.png", "noise", 0.7))
    assert "noise" in doc.report.present()
    control = w.controls.controls["noise"]
    assert control.toggle.isChecked()
    assert control.severity.value() == round(doc.report.severity("noise") * 100)
    assert control.slider.value() == round(doc.auto_plan.stage("noise").strength * 100)
    assert control.expert.currentData() == "test-box"
    assert "oise" in w.controls.summary.text()
    assert w.size_label.text().startswith("96 × 96")
    assert "8-bit" in w.depth_label.text()

    runs = doc.session.expert_runs
    full = _after_pixels(w)
    control.slider.setValue(0)
    off = _after_pixels(w)
    original = np.rint(doc.photo.pixels * 255).astype(np.uint8)
    assert np.array_equal(off, original)  # strength 0 shows the input exactly
    control.slider.setValue(100)
    strong = _after_pixels(w)
    assert not np.array_equal(strong, off) and not np.array_equal(strong, full)
    assert doc.session.expert_runs == runs  # strengths never re-run an expert
    assert not w.jobs.is_busy()

    # Consecutive slider moves merge into one undo step; undo restores the analysis's strength.
    w.undo_stack.undo()
    assert control.slider.value() == round(doc.auto_plan.stage("noise").strength * 100)
    assert np.array_equal(_after_pixels(w), full)
    w.undo_stack.redo()
    assert control.slider.value() == 100
    # The switch turns the stage off without a run, and Auto brings back the plan.
    control.toggle.setChecked(False)
    assert np.array_equal(_after_pixels(w), original)
    w.reset_to_auto()
    assert control.toggle.isChecked() and np.array_equal(_after_pixels(w), full)
    assert doc.session.expert_runs == runs


def test_new_stage_and_other_expert_run_only_what_changed(window, qtbot, tmp_path):
    w = window()
    doc = open_and_wait(qtbot, w, write_photo(tmp_path / "noisy.png", "noise", 0.7))
    registry = doc.restorer.registry
    box, box2, gamma = registry.get("test-box"), registry.get("test-box2"), registry.get("test-gamma")
    assert (box.runs, box2.runs, gamma.runs) == (1, 0, 0)

    before = _after_pixels(w)
    w.controls.controls["lowlight"].toggle.setChecked(True)  # a stage the analysis did not ask for
    qtbot.waitUntil(lambda: not w.jobs.is_busy() and gamma.runs == 1, timeout=20000)
    assert box.runs == 1  # the earlier noise stage came from the cache
    assert not np.array_equal(_after_pixels(w), before)

    w.controls.controls["lowlight"].toggle.setChecked(False)
    w.controls.controls["lowlight"].toggle.setChecked(True)
    assert gamma.runs == 1 and not w.jobs.is_busy()  # kept in the cache: no run

    combo = w.controls.controls["noise"].expert
    combo.setCurrentIndex(combo.findData("test-box2"))
    combo.activated.emit(combo.currentIndex())
    qtbot.waitUntil(lambda: not w.jobs.is_busy() and box2.runs == 1, timeout=20000)
    assert gamma.runs == 2  # the stage after the changed one re-ran, on the new input
    assert box.runs == 1
    assert w.doc.state.experts["noise"] == "test-box2"
    w.undo_stack.undo()  # back to the first expert: a run, but every stage comes from the cache
    qtbot.waitUntil(lambda: not w.jobs.is_busy(), timeout=20000)
    assert w.doc.state.experts["noise"] == "test-box"
    assert w.controls.controls["noise"].expert.currentData() == "test-box"
    assert (box.runs, box2.runs, gamma.runs) == (1, 1, 2)


def test_cancel_stops_a_running_job(window, qtbot, tmp_path):
    slow = SlowExpert(seconds=30.0)
    from engine.experts.base import ExpertRegistry
    from engine.pipeline import Restorer

    from gui_helpers import analyser

    w = window(Restorer(ExpertRegistry([slow]), analyser=analyser()))
    w.open_file(write_photo(tmp_path / "noisy.png", "noise", 0.7))
    qtbot.waitUntil(lambda: slow.started == 1 and w.progress.value() > 0, timeout=20000)
    assert w.progress.isVisible() and w.cancel_button.isVisible()
    t0 = time.perf_counter()
    with qtbot.waitSignal(w.jobs.cancelled, timeout=10000):
        w.cancel_button.click()
    assert time.perf_counter() - t0 < 10
    w.jobs.wait(10000)
    assert slow.finished == 0  # it stopped in the middle, not at the end
    assert not w.jobs.is_busy() and not w.progress.isVisible()
    assert w.doc is None and w.last_message == "Cancelled."


def test_unreadable_photo_shows_a_message(window, qtbot, tmp_path):
    w = window()
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    with qtbot.waitSignal(w.jobs.failed, timeout=20000):
        w.open_file(bad)
    assert "broken.jpg" in w.last_error and "Traceback" not in w.last_error
    assert w.doc is None and not w.jobs.is_busy()


def test_export_writes_what_the_preview_shows(window, qtbot, tmp_path):
    from engine.imageio import load_photo

    w = window()
    doc = open_and_wait(qtbot, w, write_photo(tmp_path / "noisy.png", "noise", 0.7))
    w.controls.controls["noise"].slider.setValue(60)
    out = tmp_path / "out" / "restored.png"
    out.parent.mkdir()
    with qtbot.waitSignal(w.jobs.finished, timeout=20000):
        w.export_to(out, "png", 16)
    saved = load_photo(out)
    assert saved.bit_depth == 16 and (saved.width, saved.height) == (96, 96)
    expected = doc.session.compose({"noise": 0.6})
    assert np.abs(saved.pixels - expected).max() < 1 / 65535 * 2
    # Ctrl+S saves again to the same file without asking.
    out.unlink()
    with qtbot.waitSignal(w.jobs.finished, timeout=20000):
        w.save()
    assert out.is_file()


def test_dropping_one_photo_opens_it_and_recent_files_remember_it(window, qtbot, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    w = window()
    photo = write_photo(tmp_path / "drop.png", "noise", 0.5)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photo))])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    w.dropEvent(event)  # offscreen Qt delivers no Drop without a real drag; call the handler
    assert event.isAccepted()
    qtbot.waitUntil(lambda: w.doc is not None and not w.jobs.is_busy(), timeout=20000)
    assert w.windowTitle().startswith("drop.png")
    assert w.settings.recent_files()[0] == str(photo)
    assert [a.text() for a in w.recent_menu.actions()][0] == str(photo)


def test_status_bar_shows_exif_and_export_keeps_it(window, qtbot, tmp_path):
    from gui_helpers import REPO

    from engine.imageio import load_photo

    src = REPO.parent / "shared" / "data" / "exif" / "canon_eos40d_exif_icc.jpg"
    if not src.is_file():
        pytest.skip("../shared/data/exif is not present")
    w = window()
    doc = open_and_wait(qtbot, w, src)
    assert "Canon EOS 40D" in w.meta_label.text() and "ISO 100" in w.meta_label.text()
    assert w.depth_label.text() == "8-bit JPEG" and w.device_label.text() == "device: CPU"
    path, fmt, depth = w._suggested_export()
    assert path.name == "canon_eos40d_exif_icc_restored.jpg" and (fmt, depth) == ("jpeg", 8)
    out = tmp_path / "restored.jpg"
    with qtbot.waitSignal(w.jobs.finished, timeout=20000):
        w.export_to(out, "jpeg", 8)
    saved = load_photo(out)
    assert saved.metadata.camera == doc.photo.metadata.camera and saved.metadata.iso == 100
    assert saved.icc_profile == doc.photo.icc_profile
    assert src.read_bytes() != out.read_bytes()


def test_strength_change_during_a_run_does_not_restart_it(window, qtbot, tmp_path):
    slow = SlowExpert("test-slow-light", task="lowlight", seconds=1.5)
    w = window(cheap_restorer(slow))
    doc = open_and_wait(qtbot, w, write_photo(tmp_path / "noisy.png", "noise", 0.7))
    combo = w.controls.controls["lowlight"].expert
    combo.setCurrentIndex(combo.findData("test-slow-light"))
    combo.activated.emit(combo.currentIndex())
    w.controls.controls["lowlight"].toggle.setChecked(True)
    qtbot.waitUntil(lambda: slow.started == 1, timeout=10000)
    assert w.jobs.is_busy()
    w.controls.controls["noise"].slider.setValue(30)  # while the slow stage runs
    qtbot.waitUntil(lambda: not w.jobs.is_busy(), timeout=20000)
    assert (slow.started, slow.finished) == (1, 1)  # not cancelled and restarted
    assert doc.state.strengths["noise"] == 0.3 and doc.state.enabled["lowlight"]
    assert w.controls.controls["noise"].slider.value() == 30
    assert w.export_to(tmp_path / "x.png", "png", 8) > 0  # idle again: export is allowed
    qtbot.waitUntil(lambda: not w.jobs.is_busy(), timeout=20000)


def _box_for(task: str):
    from gui_helpers import BoxDenoiser

    return BoxDenoiser(f"test-box-{task}", task=task, name=f"Box for {task}")


def test_user_stages_keep_the_auto_plan_order_including_a_follow_up():
    from app.document import Document
    from engine.photo import Photo
    from engine.pipeline import Plan, Stage

    from gui_helpers import clean_crop

    restorer = cheap_restorer(_box_for("jpeg"), _box_for("haze"))
    photo = Photo(clean_crop(0, 32))
    session = restorer.session(photo.pixels)
    # An auto plan as the follow-up round leaves it: noise appended after low light.
    auto = Plan((Stage("lowlight", "test-gamma", 1.0), Stage("noise", "test-box", 0.8)))
    doc = Document(photo, restorer, session, auto)
    assert doc.plan_for(doc.state).names() == ["lowlight", "noise"]
    state = doc.state.with_enabled("jpeg", True).with_enabled("haze", True)
    assert doc.plan_for(state).names() == ["jpeg", "lowlight", "noise", "haze"]
    assert [s.auto for s in doc.plan_for(state).stages] == [False, True, True, False]


def test_expert_menu_shows_each_experts_declared_description(window, qtbot, tmp_path):
    from dataclasses import replace

    from PySide6.QtCore import Qt
    from gui_helpers import BoxDenoiser

    described = BoxDenoiser("test-box-described", name="Described box")
    described.info = replace(described.info, description="A 3x3 box filter, for tests.")
    w = window(cheap_restorer(described))
    open_and_wait(qtbot, w, write_photo(tmp_path / "noisy.png", "noise", 0.7))
    combo = w.controls.controls["noise"].expert
    index = combo.findData("test-box-described")
    assert index >= 0 and combo.itemData(index, Qt.ItemDataRole.ToolTipRole) == "A 3x3 box filter, for tests."
