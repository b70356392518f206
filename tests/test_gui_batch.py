"""The batch queue: dropping a folder fills it (recursively), the batch writes the expected
outputs, a corrupt file fails alone, pause and cancel stop the worker, and "current settings"
applies the open photo's controls."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from gui_helpers import SlowExpert, analyser, cheap_restorer, isolate_settings, open_and_wait, write_photo  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120)]


@pytest.fixture
def make_panel(qtbot, qapp, tmp_path):
    from app.batch import BatchPanel
    from app.settings import AppSettings
    from engine.imageio import is_supported

    isolate_settings(qapp, tmp_path / "settings")

    def make(restorer):
        panel = BatchPanel(lambda: restorer, AppSettings(), is_supported=is_supported)
        qtbot.addWidget(panel)
        panel.show()
        return panel

    return make


def _drop(widget, paths) -> None:
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    widget.dropEvent(event)  # offscreen Qt delivers no Drop without a real drag; call the handler
    assert event.isAccepted()


def _folder(tmp_path):
    src = tmp_path / "in"
    write_photo(src / "a.png", "noise", 0.6, index=1, size=64)
    write_photo(src / "trip" / "b.png", "noise", 0.4, index=2, size=64)
    write_photo(src / "trip" / "deep" / "c.png", "lowlight", 0.6, index=3, size=64)
    (src / "trip" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0garbage" * 20)
    (src / "notes.txt").write_text("not a photo")
    return src


def test_dropped_folder_is_restored_and_a_corrupt_file_fails_alone(make_panel, qtbot, tmp_path):
    from app.batch import Status
    from engine.imageio import load_photo

    panel = make_panel(cheap_restorer())
    _drop(panel, [_folder(tmp_path)])
    names = sorted(str(e.item.relative) for e in panel.model.entries)
    assert names == ["a.png", "trip/b.png", "trip/broken.png", "trip/deep/c.png"]
    assert all(e.status == Status.WAITING for e in panel.model.entries)
    assert panel.start_button.isEnabled()

    out = tmp_path / "out"
    panel.outdir.setText(str(out))
    panel.format.setCurrentIndex(panel.format.findData("png"))
    assert panel.start()
    qtbot.waitUntil(lambda: not panel.runner.is_running(), timeout=60000)
    by_name = {str(e.item.relative): e for e in panel.model.entries}
    bad = by_name.pop("trip/broken.png")
    assert bad.status == Status.FAILED and "broken.png" in bad.error
    assert "failed: " in panel.model.data(panel.model.index(panel.model.entries.index(bad), 1))
    for rel, entry in by_name.items():
        assert entry.status == Status.DONE, (rel, entry.error)
        expected = out / rel
        assert entry.output == expected and expected.is_file()
        assert load_photo(expected).width == 64
    assert "3 done" in panel.summary.text() and "1 failed" in panel.summary.text()
    # A second run does not overwrite: the queue is empty until retried.
    assert not panel.start_button.isEnabled()
    panel.model.reset_unfinished()
    assert [e.status for e in panel.model.entries].count(Status.WAITING) == 1


def test_pause_and_cancel_stop_the_batch(make_panel, qtbot, tmp_path):
    from engine.experts.base import ExpertRegistry
    from engine.pipeline import Restorer

    from app.batch import Status

    slow = SlowExpert(seconds=30.0)
    panel = make_panel(Restorer(ExpertRegistry([slow]), analyser=analyser()))
    src = tmp_path / "in"
    for i in range(3):
        write_photo(src / f"p{i}.png", "noise", 0.7, index=i, size=64)
    panel.add_paths([src])
    panel.outdir.setText(str(tmp_path / "out"))
    assert panel.start()
    first = panel.model.entries[0]
    qtbot.waitUntil(lambda: first.status == Status.RUNNING and first.progress > 0.1, timeout=30000)
    panel.model.remove_rows([0, 2])  # the running entry stays; the last one leaves the queue
    assert [str(e.item.relative) for e in panel.model.entries] == ["p0.png", "p1.png"]
    panel.pause_button.setChecked(True)
    qtbot.wait(300)
    held = first.progress
    qtbot.wait(400)
    assert first.progress == held and "paused" in panel.summary.text()
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: not panel.runner.is_running(), timeout=10000)
    assert first.status == Status.CANCELLED
    assert [e.status for e in panel.model.entries[1:]] == [Status.WAITING]
    assert slow.finished == 0
    assert not (tmp_path / "out" / "p0.png").exists()


def test_current_settings_apply_the_open_photo_controls(qtbot, qapp, tmp_path):
    from app.settings import AppSettings
    from app.window import MainWindow
    from engine.imageio import load_photo

    isolate_settings(qapp, tmp_path / "settings")
    w = MainWindow(AppSettings(), restorer=cheap_restorer())
    qtbot.addWidget(w)
    open_and_wait(qtbot, w, write_photo(tmp_path / "open.png", "noise", 0.6))
    w.controls.controls["noise"].toggle.setChecked(False)
    w.controls.controls["lowlight"].toggle.setChecked(True)
    qtbot.waitUntil(lambda: not w.jobs.is_busy(), timeout=20000)

    photo = write_photo(tmp_path / "in" / "x.png", "noise", 0.6, index=4, size=64)
    w.handle_paths([tmp_path / "in"])
    assert len(w.batch.model.entries) == 1
    w.batch.plan_current.setChecked(True)
    options = w.batch.options()
    assert not options.auto and dict(options.strengths) == {"lowlight": 1.0}
    w.batch.outdir.setText(str(tmp_path / "out"))
    assert w.batch.start()
    qtbot.waitUntil(lambda: not w.batch.runner.is_running(), timeout=30000)
    entry = w.batch.model.entries[0]
    assert entry.error == "" and entry.output is not None
    restored, original = load_photo(entry.output).pixels, load_photo(photo).pixels
    assert restored.mean() > original.mean() + 0.05  # the gamma lift ran, the box filter did not
    assert np.abs(restored - np.clip(original, 0, 1) ** 0.6).max() < 2 / 255


def test_entries_removed_during_a_run_are_skipped(make_panel, qtbot, tmp_path):
    from engine.experts.base import ExpertRegistry
    from engine.pipeline import Restorer

    from app.batch import Status

    slow = SlowExpert(seconds=1.0)
    panel = make_panel(Restorer(ExpertRegistry([slow]), analyser=analyser()))
    for i in range(3):
        write_photo(tmp_path / "in" / f"p{i}.png", "noise", 0.7, index=i, size=48)
    panel.add_paths([tmp_path / "in"])
    panel.outdir.setText(str(tmp_path / "out"))
    assert panel.start()
    qtbot.waitUntil(lambda: slow.started == 1, timeout=30000)
    panel.model.remove_rows([1])
    qtbot.waitUntil(lambda: not panel.runner.is_running(), timeout=30000)
    assert [(str(e.item.relative), e.status) for e in panel.model.entries] == [
        ("p0.png", Status.DONE), ("p2.png", Status.DONE)]
    assert slow.started == 2 and not (tmp_path / "out" / "p1.png").exists()
