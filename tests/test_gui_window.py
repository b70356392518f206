"""The window a photographer expects (issue 18) and what the panel says is in the pixels
(issue 9 item 3): histogram, navigator, loupe, change-map legend, actions that cannot act are
disabled, fixed toolbar, Space labels, CUDA fallback said, close asks mid-job, no "0.00 s",
progress that moves, the Open filter, locking the photo while another opens, Export's
replace question and format/extension agreement, drops of several photos."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from gui_helpers import (SlowExpert, ToldBoxGeneralist, cheap_restorer, isolate_settings,  # noqa: E402
                         open_and_wait, write_photo, write_synthetic_photo)

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120)]


@pytest.fixture
def window(qtbot, qapp, tmp_path):
    from app.settings import AppSettings
    from app.window import MainWindow

    isolate_settings(qapp, tmp_path / "settings")
    made = []

    def make(restorer=None, settings=None):
        w = MainWindow(settings or AppSettings(), restorer=restorer or cheap_restorer())
        w.confirm_close = lambda what: True
        qtbot.addWidget(w)
        w.resize(1200, 800)
        w.show()
        made.append(w)
        return w

    yield make
    for w in made:
        w.overview.histogram.wait(5000)
        w.batch.thumbnails.wait(5000)


def _after(w) -> np.ndarray:
    from app.imaging import to_display_uint8

    return to_display_uint8(w.doc.restored_photo().pixels)


def _drop(widget, paths) -> None:
    from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    widget.dragEnterEvent(enter)
    assert enter.isAccepted()
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    widget.dropEvent(event)  # offscreen Qt delivers no Drop without a real drag; call the handler
    assert event.isAccepted()


# -- issue 9 item 3: what the panel says is on is in the pixels ---------------------------------

def test_unticking_the_generalist_restores_the_kind_it_had_handled(window, qtbot, tmp_path):
    from app.imaging import to_display_uint8

    w = window(cheap_restorer(ToldBoxGeneralist()))
    doc = open_and_wait(qtbot, w, write_photo(tmp_path / "noisy.png", "noise", 0.7))
    noise = {r.name: r for r in doc.rows()}["noise"]
    assert noise.enabled and noise.handled_by == "generalist"
    original = to_display_uint8(doc.photo.pixels)
    with_generalist = _after(w)
    assert np.abs(with_generalist.astype(int) - original).mean() > 2

    w.controls.controls["generalist"].toggle.click()
    qtbot.waitUntil(lambda: not w.jobs.is_busy() and w._pending is None, timeout=30000)
    rows = {r.name: r for r in doc.rows()}
    assert rows["noise"].enabled and not rows["noise"].dropped and rows["noise"].handled_by is None
    assert "handled by" not in w.controls.controls["noise"].status.text()
    denoised = _after(w)
    assert np.abs(denoised.astype(int) - original).mean() > 2  # the noise stage is in the pixels
    # ... and in the exported file, which is what the preview composes
    out = tmp_path / "export.png"
    w.export_to(out, "png", 8)
    qtbot.waitUntil(lambda: out.is_file() and not w.jobs.is_busy(), timeout=20000)
    from engine.imageio import load_photo

    assert np.array_equal(to_display_uint8(load_photo(out).pixels), denoised)

    # Auto brings the generalist back; the noise row is its share again, and in the pixels
    w.reset_to_auto()
    qtbot.waitUntil(lambda: not w.jobs.is_busy() and w._pending is None, timeout=30000)
    assert np.array_equal(_after(w), with_generalist)
    for row in doc.rows():
        if row.enabled and row.choices:
            off = doc.state.with_enabled(row.name, False)
            assert not np.array_equal(doc.session.compose(off.effective_strengths()),
                                      doc.session.compose(doc.state.effective_strengths())), row.name


# -- histogram, navigator, loupe, legend ---------------------------------------------------------

def test_histogram_is_computed_off_the_ui_thread_and_follows_the_sliders(window, qtbot, tmp_path, monkeypatch):
    from app.document import Document

    threads = []
    real = Document.histograms

    def recording(self):
        threads.append(threading.current_thread() is threading.main_thread())
        return real(self)

    monkeypatch.setattr(Document, "histograms", recording)
    w = window()
    # noise: the cheap restorer's low-light stand-in (a plain gamma lift) amplifies the photo's
    # fine-scale noise, so the session's noise guard drops it and its slider would move nothing
    open_and_wait(qtbot, w, write_photo(tmp_path / "noisy.png", "noise", 0.7))
    panel = w.overview.histogram
    qtbot.waitUntil(lambda: panel.computed >= 1, timeout=10000)
    first = panel.view.after.luma.copy()
    assert panel.view.before is not None and "Shadows clipped" in panel.clip_label.text()
    assert threads and not any(threads)
    name = next(n for n, c in w.controls.controls.items() if c.toggle.isChecked())
    w.controls.controls[name].slider.setValue(0)
    qtbot.waitUntil(lambda: panel.computed >= 2, timeout=10000)
    assert not np.array_equal(panel.view.after.luma, first)
    assert np.array_equal(panel.view.after.luma, panel.view.before.luma) or name == "noise"


def test_clipped_highlights_light_the_indicator(window, qtbot, tmp_path):
    from PIL import Image

    img = np.full((64, 64, 3), 120, np.uint8)
    img[:16] = 255
    Image.fromarray(img).save(tmp_path / "blown.png")
    w = window()
    open_and_wait(qtbot, w, tmp_path / "blown.png")
    qtbot.waitUntil(lambda: w.overview.histogram.computed >= 1, timeout=10000)
    h = w.overview.histogram.view.after
    assert h.highlights_clipped >= 0.25
    assert "Highlights clipped: 25.0%" in w.overview.histogram.clip_label.text()


def test_navigator_shows_and_moves_the_visible_part(window, qtbot, tmp_path):
    w = window()
    doc = open_and_wait(qtbot, w, write_synthetic_photo(tmp_path / "n.png", "noise", 0.5, size=400))
    nav = w.overview.navigator
    w.viewer.set_zoom(8.0)
    view, area = nav.view_rect(), nav.image_rect()
    assert view.width() < area.width() / 2 and area.contains(view.center())
    # a click at the thumbnail's top-left quarter moves the viewer there
    target = area.topLeft() + (area.bottomRight() - area.topLeft()) * 0.25
    from PySide6.QtCore import Qt

    qtbot.mouseClick(nav, Qt.MouseButton.LeftButton, pos=target.toPoint())
    c = w.viewer.center()
    assert abs(c.x() - doc.width * 0.25) < 8 and abs(c.y() - doc.height * 0.25) < 8


def test_loupe_shows_actual_pixels_of_the_side_under_the_cursor(window, qtbot, tmp_path):
    from PySide6.QtCore import QPointF

    from app.viewer import AFTER, BEFORE

    w = window()
    w.resize(900, 600)
    open_and_wait(qtbot, w, write_synthetic_photo(tmp_path / "n.png", "noise", 0.5, size=800))
    v = w.viewer
    v.fit()
    assert v.zoom() < 1.0
    w.actions_by_name["loupe"].trigger()
    assert v.loupe()
    side, reg = v.loupe_region(QPointF(v.divider_x() + 40, v.height() / 2))
    n = round(v.LOUPE_SIZE * v.devicePixelRatioF())
    assert side == AFTER and reg.step == 1 and reg.right - reg.left == n and reg.bottom - reg.top == n
    assert v.loupe_region(QPointF(v.divider_x() - 40, v.height() / 2))[0] == BEFORE
    v._cursor = QPointF(v.divider_x() + 40, v.height() / 2)
    renders = v.renders
    v.repaint()  # draws the loupe without error
    assert v.renders >= renders


def test_change_map_has_a_legend_in_understandable_units(window, qtbot, tmp_path):
    from app.document import CHANGE_MAP_FULL_SCALE

    w = window()
    doc = open_and_wait(qtbot, w, write_photo(tmp_path / "n.png", "noise", 0.7))
    assert "levels" in w.viewer.legend_text and "%" in w.viewer.legend_text
    heat = doc.change_map(1)
    diff = np.abs(doc.restored_photo().pixels - doc.photo.pixels).mean(axis=2)
    assert np.allclose(heat, np.clip(diff / CHANGE_MAP_FULL_SCALE, 0, 1), atol=1e-5)
    w.actions_by_name["overlay"].trigger()
    w.viewer.repaint()


# -- actions, toolbar, labels, device, closing, status ------------------------------------------

def test_actions_that_cannot_act_are_disabled_and_the_toolbar_does_not_shift(window, qtbot, tmp_path):
    w = window()
    a = w.actions_by_name
    assert not a["export"].isEnabled() and not a["save"].isEnabled() and not a["auto"].isEnabled()
    tb = w.toolbar
    before = {k: tb.widgetForAction(a[k]).geometry() for k in ("undo_tb", "redo_tb", "mode_split", "models")}
    open_and_wait(qtbot, w, write_photo(tmp_path / "n.png", "noise", 0.7))
    assert a["export"].isEnabled() and a["save"].isEnabled() and a["auto"].isEnabled()
    w.controls.controls["noise"].slider.setValue(30)
    assert "strength" in a["undo"].text().lower() and a["undo_tb"].text() == "Undo"
    assert a["undo_tb"].isEnabled()
    after = {k: tb.widgetForAction(a[k]).geometry() for k in before}
    assert after == before


def test_side_by_side_says_before_on_both_panes_while_space_is_held(window, qtbot, tmp_path):
    from app.viewer import AFTER, BEFORE

    w = window()
    open_and_wait(qtbot, w, write_photo(tmp_path / "n.png", "noise", 0.7))
    w.set_view_mode("side")
    v = w.viewer
    assert (v.pane_caption(BEFORE), v.pane_caption(AFTER)) == ("Before", "After")
    from PySide6.QtCore import Qt

    qtbot.keyPress(v, Qt.Key.Key_Space)
    assert v.show_original()
    assert v.pane_caption(AFTER).startswith("Before") and v.pane_caption(BEFORE).startswith("Before")
    v.repaint()
    qtbot.keyRelease(v, Qt.Key.Key_Space)
    assert v.pane_caption(AFTER) == "After"


def test_choosing_cuda_without_cuda_says_so(window, qtbot, monkeypatch):
    import engine.experts.default as default
    import engine.runtime.device as device
    from app.settings import AppSettings

    monkeypatch.setattr(device, "cuda_available", lambda: False)
    monkeypatch.setattr(default, "build_registry", lambda device="cpu", **kw: cheap_restorer().registry)
    settings = AppSettings()
    settings.device = "cuda"
    from app.window import MainWindow

    w = MainWindow(settings)
    w.confirm_close = lambda what: True
    qtbot.addWidget(w)
    assert w.restorer().device == "cpu"
    w._update_status()
    assert "CUDA not available" in w.device_label.text()
    assert "cuda" in w.last_message.lower() and "cpu" in w.last_message.lower()


def test_the_original_is_on_screen_while_the_photo_opens(window, qtbot, tmp_path, monkeypatch):
    import threading

    from PIL import Image

    from app.document import Document, PhotoPreview

    w = window()
    gate = threading.Event()
    real_open = Document.open.__func__

    def slow_open(cls, photo, *args, **kwargs):
        gate.wait(30)
        return real_open(cls, photo, *args, **kwargs)

    monkeypatch.setattr(Document, "open", classmethod(slow_open))
    path = write_photo(tmp_path / "n.png", "noise", 0.7)
    w.open_file(path)
    qtbot.waitUntil(lambda: isinstance(w.viewer.source(), PhotoPreview), timeout=10000)
    preview = w.viewer.source()
    assert w.doc is None and (preview.width, preview.height) == (96, 96)
    original = np.asarray(Image.open(path).convert("RGB"))
    assert np.array_equal(preview.after(slice(0, 96), slice(0, 96), 1), original)  # the decoded original
    assert np.array_equal(preview.before(slice(0, 96), slice(0, 96), 2), original[::2, ::2])
    gate.set()
    qtbot.waitUntil(lambda: w.doc is not None, timeout=30000)
    assert w.viewer.source() is w.doc


def test_closing_mid_job_asks_first(window, qtbot, tmp_path):
    w = window(cheap_restorer(SlowExpert(task="haze", seconds=30)))
    open_and_wait(qtbot, w, write_synthetic_photo(tmp_path / "n.png", "noise", 0.7))
    w.controls.controls["haze"].toggle.click()  # runs the slow expert
    qtbot.waitUntil(w.jobs.is_busy, timeout=5000)
    asked = []
    w.confirm_close = lambda what: asked.append(what) or False
    w.close()
    assert asked == ["A restoration"] and w.isVisible()
    w.confirm_close = lambda what: True
    w.close()
    assert not w.isVisible()


def test_no_zero_seconds_after_open_and_progress_moves_during_a_long_step(window, qtbot, tmp_path):
    from engine.experts.base import Expert, ExpertInfo

    class Silent(Expert):
        info = ExpertInfo(id="test-silent", name="Silent", tasks=("haze",))

        def run(self, image, ctx=None):
            time.sleep(3.5)  # one long step with no progress report (a single big tile)
            return image.copy()

    w = window(cheap_restorer(Silent()))
    open_and_wait(qtbot, w, write_synthetic_photo(tmp_path / "n.png", "noise", 0.7))
    text = w.time_label.text()
    assert "0.00" not in text and (text == "" or text.startswith("restored in"))
    w.controls.controls["noise"].slider.setValue(40)  # a re-compose is not a run
    assert w.time_label.text() == text
    w.controls.controls["haze"].toggle.click()
    qtbot.waitUntil(lambda: w.progress.maximum() == 0, timeout=5000)  # the bar moves (busy animation)
    qtbot.waitUntil(lambda: w.elapsed_label.text().startswith(("2 s", "3 s")), timeout=5000)
    qtbot.waitUntil(lambda: not w.jobs.is_busy(), timeout=10000)
    assert w.progress.maximum() == 1000


def test_open_dialog_lists_every_readable_extension_from_the_engine_table():
    from app.window import open_dialog_filter
    from engine.imageio.formats import SUPPORTED_EXTENSIONS

    text = open_dialog_filter()
    photos = text.split(";;")[0]
    for ext in SUPPORTED_EXTENSIONS:
        assert f"*{ext} " in photos + " " and f"*{ext.upper()}" in photos
    for ext in (".cr3", ".raf", ".orf", ".rw2"):
        assert f"*{ext}" in photos
    assert ("heic" in text.lower()) == (".heic" in SUPPORTED_EXTENSIONS)


def test_the_photo_on_screen_is_locked_while_another_opens_and_cancel_keeps_it(window, qtbot, tmp_path,
                                                                                monkeypatch):
    import app.window as window_module

    w = window()
    first = open_and_wait(qtbot, w, write_photo(tmp_path / "a.png", "noise", 0.7))
    gate = threading.Event()
    real_load = window_module._load_photo

    def slow_load(path):
        gate.wait(20)
        return real_load(path)

    monkeypatch.setattr(window_module, "_load_photo", slow_load)
    w.open_file(write_photo(tmp_path / "big.png", "lowlight", 0.7))
    assert not w.controls.isEnabled()
    assert not w.actions_by_name["export"].isEnabled() and not w.actions_by_name["auto"].isEnabled()
    assert "big.png" in w.viewer.busy_text()
    w.actions_by_name["cancel"].trigger()
    assert w.doc is first and w.controls.isEnabled() and w.actions_by_name["export"].isEnabled()
    assert w.viewer.busy_text() == ""
    gate.set()
    qtbot.waitUntil(lambda: not w.jobs.is_busy(), timeout=20000)
    assert w.doc is first and w.viewer.source() is first


def test_export_asks_before_replacing_and_keeps_format_and_extension_in_step(window, qtbot, tmp_path):
    from PIL import Image

    from app.window import ExportDialog

    w = window()
    open_and_wait(qtbot, w, write_photo(tmp_path / "n.png", "noise", 0.7))
    existing = tmp_path / "keep.png"
    existing.write_bytes(b"precious")
    dialog = ExportDialog(tmp_path / "x.png", "png", 8, w)
    qtbot.addWidget(dialog)
    asked = []
    dialog.confirm_replace = lambda p: asked.append(p) or False
    dialog.path.setText(str(existing))
    dialog.accept()
    assert asked == [existing] and dialog.result() == 0 and existing.read_bytes() == b"precious"
    dialog.confirm_replace = lambda p: asked.append(p) or True
    dialog.accept()
    assert dialog.result() == 1 and dialog.choice()[0] == existing

    # a typed .png name with JPEG chosen: written as .jpg with JPEG bytes, never JPEG in a .png
    dialog = ExportDialog(tmp_path / "x.png", "png", 8, w)
    qtbot.addWidget(dialog)
    dialog.path.setText(str(tmp_path / "typed.png"))
    dialog.format.setCurrentIndex(dialog.format.findData("jpeg"))
    path, fmt, depth = dialog.choice()
    assert (path.name, fmt) == ("typed.jpg", "jpeg")
    # typing an extension picks its format
    other = ExportDialog(tmp_path / "x.png", "png", 8, w)
    qtbot.addWidget(other)
    other.path.clear()
    qtbot.keyClicks(other.path, str(tmp_path / "other.tif"))
    assert other.format.currentData() == "tiff" and other.choice()[0].name == "other.tif"
    w.export_to(path, fmt, depth)
    qtbot.waitUntil(lambda: path.is_file() and not w.jobs.is_busy(), timeout=20000)
    assert Image.open(path).format == "JPEG" and not (tmp_path / "typed.png").exists()


# -- several photos: drops, filmstrip ------------------------------------------------------------

def test_dropping_several_photos_fills_the_filmstrip_with_thumbnails(window, qtbot, tmp_path):
    w = window()
    photos = [write_photo(tmp_path / f"p{i}.png", "noise", 0.5, index=i, size=80) for i in range(3)]
    _drop(w, photos)
    assert w.filmstrip_dock.isVisible() and w.filmstrip.model().rowCount() == 3
    from app.batch import THUMBNAIL_ROLE

    qtbot.waitUntil(lambda: all(w.batch.model.index(r, 0).data(THUMBNAIL_ROLE) is not None for r in range(3)),
                    timeout=20000)
    img = w.batch.model.index(0, 0).data(THUMBNAIL_ROLE)
    assert max(img.width(), img.height()) == 80  # small photos keep their size
    qtbot.waitUntil(lambda: w.doc is not None and not w.jobs.is_busy(), timeout=30000)
    assert w.doc.photo.path == photos[0]  # the first opened, nothing was open
    # a folder dropped on the filmstrip joins the queue; a double-click opens that photo
    folder = tmp_path / "more"
    write_photo(folder / "q.png", "noise", 0.5, index=5, size=80)
    _drop(w.filmstrip, [folder])
    assert w.filmstrip.model().rowCount() == 4
    w.filmstrip.doubleClicked.emit(w.batch.model.index(3, 0))
    qtbot.waitUntil(lambda: w.doc.photo.path == folder / "q.png" and not w.jobs.is_busy(), timeout=30000)
    # selection is shared with the queue table
    from PySide6.QtCore import QItemSelectionModel

    w.filmstrip.selectionModel().select(w.batch.model.index(1, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect)
    assert w.batch.selected_rows() == [1]


def test_auto_or_esc_during_a_run_leave_panel_and_pixels_in_agreement(window, qtbot, tmp_path, monkeypatch):
    """Auto pressed while another state's run is in flight wins; Esc leaves what was shown."""
    import gui_helpers

    w = window(cheap_restorer(ToldBoxGeneralist()))
    doc = open_and_wait(qtbot, w, write_photo(tmp_path / "noisy.png", "noise", 0.7))
    with_generalist = _after(w)
    real_run = gui_helpers.BoxDenoiser.run

    def slow_run(self, image, ctx=None):
        time.sleep(1.5)
        return real_run(self, image, ctx)

    monkeypatch.setattr(gui_helpers.BoxDenoiser, "run", slow_run)
    # Auto while the generalist-off run is in flight
    w.controls.controls["generalist"].toggle.click()
    qtbot.waitUntil(w.jobs.is_busy, timeout=5000)
    w.reset_to_auto()
    qtbot.waitUntil(lambda: not w.jobs.is_busy() and w._pending is None, timeout=30000)
    qtbot.wait(200)
    assert doc.state == doc.auto_state and w.controls.controls["generalist"].toggle.isChecked()
    assert np.array_equal(_after(w), with_generalist)
    # Esc while it runs: the panel and the pixels stay as they were
    w.controls.controls["generalist"].toggle.click()
    qtbot.waitUntil(w.jobs.is_busy, timeout=5000)
    w.cancel_job()
    qtbot.waitUntil(lambda: not w.jobs.is_busy(), timeout=30000)
    assert w.controls.controls["generalist"].toggle.isChecked() == doc.state.enabled["generalist"]
    rows = {r.name: r for r in doc.rows()}
    if doc.state.enabled["generalist"]:
        assert rows["noise"].handled_by == "generalist" and np.array_equal(_after(w), with_generalist)


def test_the_summary_names_a_stage_held_back_that_can_be_asked_for():
    """A blur the automatic plan held back (sharp areas: maybe the scene's depth of field) is named in
    the panel's summary, whose row says why and how to ask; a stage that simply did not help is not."""
    from types import SimpleNamespace

    from app.window import MainWindow
    from engine.analysis.report import DegradationReport, KindAssessment
    from engine.pipeline.session import StageResult

    report = DegradationReport({"blur": KindAssessment(0.92, 1.0, {})})
    held = StageResult("blur", "deblur", "k", None, 0.0, dropped=True,
                       reason="left unchanged: 2 of 6 detailed areas are sharp; ask for blur removal (…)")
    doc = SimpleNamespace(report=report, session=SimpleNamespace(results=[held]))
    assert MainWindow._summary_text(doc) == "Detected: blur 92%; held back: blur (its row says why)"
    held.reason = "did not help: blur severity 0.92 → 0.92"
    assert MainWindow._summary_text(doc) == "Detected: blur 92%"
