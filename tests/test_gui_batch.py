"""The batch queue: dropping a folder fills it (recursively), the batch writes the expected
outputs, a corrupt file fails alone, pause and cancel stop the worker, and "current settings"
applies the open photo's controls."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from gui_helpers import (SlowExpert, analyser, cheap_restorer, isolate_settings, open_and_wait,  # noqa: E402
                         write_photo, write_synthetic_photo)

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


# -- issue 18 and the GUI halves of issue 9 (items 1, 8, 10, 18) ---------------------------------

def _run(panel, qtbot, out) -> None:
    panel.outdir.setText(str(out))
    assert panel.start()
    qtbot.waitUntil(lambda: not panel.runner.is_running(), timeout=60000)


def test_failure_reason_is_visible_and_a_finished_row_never_silently_does_nothing(make_panel, qtbot, tmp_path):
    from app.batch import Status

    panel = make_panel(cheap_restorer())
    good = write_photo(tmp_path / "in" / "good.png", "noise", 0.5, size=64)
    bad = tmp_path / "in" / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0garbage" * 20)
    panel.add_paths([good, bad])
    _run(panel, qtbot, tmp_path / "out")
    rows = {e.item.path.name: i for i, e in enumerate(panel.model.entries)}
    bad_entry = panel.model.entries[rows["bad.png"]]
    assert bad_entry.status == Status.FAILED and bad_entry.error
    # the reason is in the row's text (not only a tooltip) and in full under the table
    assert bad_entry.error in panel.model.index(rows["bad.png"], 1).data()
    panel.table.selectRow(rows["bad.png"])
    assert bad_entry.error in panel.detail.text()
    # double-click on a finished row with no external viewer: shown here, and said
    opened, said = [], []
    panel.openRequested.connect(opened.append)
    panel.message.connect(said.append)
    panel.open_external = lambda path: False
    assert panel.activate(rows["good.png"]) == "viewer"
    assert opened == [tmp_path / "out" / "good.png"] and "No external viewer" in said[-1]
    panel.open_external = lambda path: True
    assert panel.activate(rows["good.png"]) == "external"
    assert panel.activate(rows["bad.png"]) == "reason" and bad_entry.error in said[-1]


def test_existing_outputs_name_the_gui_controls_and_skip_existing_resumes(make_panel, qtbot, tmp_path):
    from app.batch import OVERWRITE_LABEL, SKIP_LABEL, Status

    panel = make_panel(cheap_restorer())
    src = [write_photo(tmp_path / "in" / f"{n}.png", "noise", 0.5, index=i, size=64) for i, n in enumerate("ab")]
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"earlier run")
    panel.add_paths(src)
    _run(panel, qtbot, out)
    a, b = panel.model.entries
    assert a.status == Status.FAILED and b.status == Status.DONE
    assert "--overwrite" not in a.error and OVERWRITE_LABEL in a.error and SKIP_LABEL in a.error
    assert (out / "a.png").read_bytes() == b"earlier run"
    # resume: skip existing reports the existing outputs as skipped and leaves them alone
    panel.model.reset_unfinished()
    panel.model.update(b.id, status=Status.WAITING)
    panel.skip_existing.setChecked(True)
    assert not panel.overwrite.isChecked()
    _run(panel, qtbot, out)
    assert [e.status for e in panel.model.entries] == [Status.SKIPPED, Status.SKIPPED]
    assert "2 skipped" in panel.summary.text() and "failed" not in panel.summary.text()
    assert (out / "a.png").read_bytes() == b"earlier run"
    panel.overwrite.setChecked(True)
    assert not panel.skip_existing.isChecked()


def test_an_output_that_would_replace_an_input_is_refused_before_any_work(make_panel, qtbot, tmp_path):
    from app.batch import Status

    restorer = cheap_restorer()
    panel = make_panel(restorer)
    folder = tmp_path / "photos"
    src = [write_photo(folder / f"{n}.png", "noise", 0.5, index=i, size=64) for i, n in enumerate("ab")]
    before = [p.read_bytes() for p in src]
    panel.add_paths([folder])
    panel.overwrite.setChecked(True)
    panel.outdir.setText(str(folder))
    assert not panel.start()
    assert panel.summary.text().startswith("Not started:") and "would replace the input" in panel.summary.text()
    assert "a.png" in panel.summary.text()
    assert all(e.status == Status.WAITING for e in panel.model.entries)
    assert [p.read_bytes() for p in src] == before
    assert sum(e.runs for e in restorer.registry.for_task("noise")) == 0
    # another format into the same folder writes new files beside the originals
    panel.format.setCurrentIndex(panel.format.findData("tiff"))
    _run(panel, qtbot, folder)
    assert all(e.status == Status.DONE for e in panel.model.entries) and (folder / "a.tif").is_file()
    assert [p.read_bytes() for p in src] == before


def test_one_file_fails_alone_whatever_the_error(make_panel, qtbot, tmp_path):
    from app.batch import Status
    from engine.experts.base import Expert, ExpertInfo

    class Crashes(Expert):
        info = ExpertInfo(id="test-crash", name="Crashes", tasks=("noise",))

        calls = 0

        def run(self, image, ctx=None):
            Crashes.calls += 1
            if Crashes.calls == 1:  # the first photo hits a bug that is not a RestoraError
                raise ZeroDivisionError("a bug in an expert")
            return np.clip(image * 0.9, 0, 1)

    from engine.experts.base import ExpertRegistry
    from engine.pipeline import Restorer

    panel = make_panel(Restorer(ExpertRegistry([Crashes()]), analyser=analyser()))
    a = write_photo(tmp_path / "in" / "a.png", "noise", 0.8, index=0, size=64)
    b = write_photo(tmp_path / "in" / "b.png", "noise", 0.8, index=1, size=64)
    panel.add_paths([a, b])
    panel.format.setCurrentIndex(panel.format.findData("png"))
    _run(panel, qtbot, tmp_path / "out")
    first, second = panel.model.entries
    assert first.status == Status.FAILED and "ZeroDivisionError" in first.error and "a bug" in first.error
    assert second.status == Status.DONE and (tmp_path / "out" / "b.png").is_file()


def test_per_photo_settings_bit_depth_and_jpeg_quality(qtbot, qapp, tmp_path):
    from PIL import Image

    from app.batch import Status
    from app.settings import AppSettings
    from app.window import MainWindow

    isolate_settings(qapp, tmp_path / "settings")
    w = MainWindow(AppSettings(), restorer=cheap_restorer())
    w.confirm_close = lambda what: True
    qtbot.addWidget(w)
    w.show()
    doc = open_and_wait(qtbot, w, write_synthetic_photo(tmp_path / "open.png", "noise", 0.7))
    w.controls.controls["noise"].toggle.click()     # noise off ...
    w.controls.controls["lowlight"].toggle.click()  # ... low light on
    qtbot.waitUntil(lambda: not w.jobs.is_busy() and w._pending is None, timeout=30000)
    assert doc.state.enabled["lowlight"] and not doc.state.enabled["noise"]
    panel = w.batch
    photos = [write_synthetic_photo(tmp_path / "in" / f"{n}.png", "noise", 0.7, seed=i, size=64)
              for i, n in enumerate("abc")]
    panel.add_paths(photos)
    panel.table.selectRow(1)
    assert panel.apply_current_to_selected() == 1
    assert "low light" in panel.model.entries[1].settings_label
    assert panel.model.index(1, 3).data().startswith("own settings")
    assert panel.model.index(0, 3).data() == "batch choice"
    panel.format.setCurrentIndex(panel.format.findData("jpeg"))
    assert not panel.bit_depth.model().item(panel.bit_depth.findData("16")).isEnabled()
    panel.quality.setValue(40)
    _run(panel, qtbot, tmp_path / "out")
    assert all(e.status == Status.DONE for e in panel.model.entries), [e.error for e in panel.model.entries]
    def mean(path) -> float:
        return float(np.asarray(Image.open(path).convert("RGB"), np.float32).mean())

    # b got the open photo's low-light lift, a its own (noise) plan, which keeps its brightness
    assert mean(tmp_path / "out" / "b.jpg") > mean(photos[1]) + 10
    assert abs(mean(tmp_path / "out" / "a.jpg") - mean(photos[0])) < 5
    # JPEG quality reached the files: quality 40 is far smaller than 95
    panel.model.reset_unfinished()
    for e in panel.model.entries:
        panel.model.update(e.id, status=Status.WAITING)
    panel.quality.setValue(95)
    panel.overwrite.setChecked(True)
    small = (tmp_path / "out" / "a.jpg").stat().st_size
    _run(panel, qtbot, tmp_path / "out")
    assert (tmp_path / "out" / "a.jpg").stat().st_size > small * 1.3
    # 16-bit PNG outputs
    for e in panel.model.entries:
        panel.model.update(e.id, status=Status.WAITING)
    panel.format.setCurrentIndex(panel.format.findData("png"))
    panel.bit_depth.setCurrentIndex(panel.bit_depth.findData("16"))
    _run(panel, qtbot, tmp_path / "out16")
    from engine.imageio import load_photo

    assert load_photo(tmp_path / "out16" / "a.png").bit_depth == 16


def test_what_an_output_could_not_keep_is_said_in_its_row(make_panel, qtbot, tmp_path):
    from PIL import Image

    from app.batch import Status

    rgba = np.zeros((48, 48, 4), np.uint8)
    rgba[..., :3] = 120
    rgba[..., 3] = np.linspace(0, 255, 48, dtype=np.uint8)[None, :]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "with_alpha.png")
    panel = make_panel(cheap_restorer())
    panel.add_paths([tmp_path / "with_alpha.png"])
    panel.format.setCurrentIndex(panel.format.findData("jpeg"))
    _run(panel, qtbot, tmp_path / "out")
    (entry,) = panel.model.entries
    assert entry.status == Status.DONE and entry.not_kept
    assert "not kept" in panel.model.index(0, 1).data() and "alpha" in panel.model.index(0, 1).data().lower()
