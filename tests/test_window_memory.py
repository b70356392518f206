"""The window's memory (issue 14): its session keeps full-size stage changes in memory only within
a byte budget (``RESTORA_WINDOW_CHANGE_BUDGET``); past it they are in temporary files, the view is
composed from screen-resolution copies kept in memory, a crop at 100 % and the export read the
files, and the export is byte-identical to composing from memory. The files go when the photo is
closed. The budget logic is asserted, never timings or resident-memory numbers."""

from __future__ import annotations

import numpy as np
import pytest

from engine.pipeline.spill import WINDOW_BUDGET_VARIABLE, SpilledArray, window_change_budget

pytest.importorskip("PySide6")

from gui_helpers import GammaLift, SigmaBox, analyser, cheap_restorer, write_photo  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def _open(path, monkeypatch, budget: str):
    from app.document import Document
    from engine.imageio import load_photo

    monkeypatch.setenv(WINDOW_BUDGET_VARIABLE, budget)
    from engine.experts.base import ExpertRegistry
    from engine.pipeline import Restorer

    # a denoiser whose strength is a physical parameter: its half-strength knot is a change of its own
    restorer = Restorer(ExpertRegistry([SigmaBox(), GammaLift()]), device="cpu", analyser=analyser())
    doc = Document.open(load_photo(path), restorer)
    doc.complete_knots()  # a window runs them in the background: their changes follow the budget too
    return doc


@pytest.fixture
def two_docs(tmp_path, monkeypatch):
    """The same noisy photo opened twice: every change in memory, and every change on disk."""
    path = write_photo(tmp_path / "noisy.png", "noise", 0.7, size=160)
    memory = _open(path, monkeypatch, "1G")
    disk = _open(path, monkeypatch, "0")
    yield memory, disk
    memory.close()
    disk.close()


def _kept(doc):
    return [r for r in doc.session.results if not r.dropped and r.delta is not None]


def test_the_window_budget_comes_from_the_variable_else_from_the_free_memory(monkeypatch):
    from engine.pipeline import spill

    monkeypatch.setenv(WINDOW_BUDGET_VARIABLE, "3M")
    assert window_change_budget() == 3 * 2**20
    monkeypatch.delenv(WINDOW_BUDGET_VARIABLE)
    monkeypatch.setattr("engine.pipeline.memory.memory_budget", lambda: 800 * 2**20)
    assert window_change_budget() == 100 * 2**20  # an eighth of a small machine's room
    monkeypatch.setattr("engine.pipeline.memory.memory_budget", lambda: 64 * 2**30)
    assert window_change_budget() == spill.DEFAULT_WINDOW_CHANGE_BUDGET
    monkeypatch.setattr("engine.pipeline.memory.memory_budget", lambda: None)
    assert window_change_budget() == spill.DEFAULT_WINDOW_CHANGE_BUDGET


def test_under_budget_nothing_changes_every_change_stays_in_memory(two_docs):
    memory, _ = two_docs
    assert _kept(memory), "the plan kept no stage: nothing to compare"
    assert any(r.knot_deltas for r in _kept(memory)), "no stage with strength knots: nothing to compare"
    for r in _kept(memory):
        assert isinstance(r.delta, np.ndarray)
        assert all(isinstance(a, np.ndarray) for a in r.knot_deltas.values())
    assert memory.session.changes.spilled == []


def test_over_budget_the_changes_are_on_disk_and_compose_the_same_bytes(two_docs, monkeypatch):
    from engine.pipeline import session as session_module

    memory, disk = two_docs
    assert [r.key for r in disk.session.results] == [r.key for r in memory.session.results]
    for r in _kept(disk):
        assert isinstance(r.delta, SpilledArray) and r.delta.path.is_file()
        assert all(isinstance(a, SpilledArray) for a in r.knot_deltas.values())
    for doc in (memory, disk):
        doc.set_state(doc.state.with_strength("noise", 0.7))
    h, w = disk.height, disk.width
    # the export: a full-resolution compose from the files, byte-identical to composing from memory
    assert np.array_equal(disk.restored_photo().pixels, memory.restored_photo().pixels)
    assert np.array_equal(disk.session.compose_into(disk.state.effective_strengths()),
                          memory.restored_photo().pixels)
    # a crop at 100 % reads its rows and columns from the files
    crop = (slice(37, 121), slice(15, 90))
    assert np.array_equal(disk.after(*crop, 1), memory.after(*crop, 1))
    # the view at a sampling step: from screen-resolution copies kept in memory
    monkeypatch.setattr(session_module, "SUBSAMPLED_COPIES_FROM", 0)
    region = (slice(0, h), slice(0, w))
    for step in (2, 3):
        assert np.array_equal(disk.after(*region, step), memory.after(*region, step))
        base, terms = disk.session._parts(step)
        assert terms and all(isinstance(a, np.ndarray) and a.shape == (-(-h // step), -(-w // step), 3)
                             for _name, _weight, a in terms)
        # a slider move re-composes from those copies, reading nothing from disk
        disk.set_state(disk.state.with_strength("noise", 0.3))
        memory.set_state(memory.state.with_strength("noise", 0.3))
        monkeypatch.setattr(SpilledArray, "read_rows", lambda *a: pytest.fail("read the disk"))
        monkeypatch.setattr(SpilledArray, "_gather", lambda *a: pytest.fail("read the disk"))
        assert np.array_equal(disk.after(*region, step), memory.after(*region, step))
        monkeypatch.undo()
        monkeypatch.setattr(session_module, "SUBSAMPLED_COPIES_FROM", 0)


def test_closing_the_photo_deletes_its_temporary_files(tmp_path, monkeypatch):
    path = write_photo(tmp_path / "noisy.png", "noise", 0.7, size=96)
    doc = _open(path, monkeypatch, "0")
    files = [a.path for a in doc.session.changes.spilled]
    assert files and all(p.is_file() for p in files)
    doc.close()
    assert not any(p.exists() for p in files)


def test_a_cancelled_opening_leaves_no_temporary_files(tmp_path, monkeypatch):
    from app.document import Document
    from engine.errors import Cancelled
    from engine.imageio import load_photo
    from engine.pipeline.spill import ChangeStore
    from engine.progress import CancelToken, Progress

    monkeypatch.setenv(WINDOW_BUDGET_VARIABLE, "0")
    stores = []
    init = ChangeStore.__init__
    monkeypatch.setattr(ChangeStore, "__init__", lambda self, *a, **k: (init(self, *a, **k), stores.append(self))[0])
    token = CancelToken()
    seen = []

    def landed(session, plan, results):
        seen.extend(a.path for a in session.changes.spilled)
        token.cancel()

    photo = load_photo(write_photo(tmp_path / "noisy.png", "noise", 0.7, size=96))
    with pytest.raises(Cancelled):
        Document.open(photo, cheap_restorer(), Progress(cancel=token), on_stage=landed)
    assert seen and not any(p.exists() for p in seen)
    assert stores and all(s.spilled == [] for s in stores)


@pytest.mark.gui
def test_the_window_deletes_a_photos_files_when_another_replaces_it_or_it_closes(qtbot, qapp, tmp_path, monkeypatch):
    from gui_helpers import isolate_settings, open_and_wait, show_window

    isolate_settings(qapp, tmp_path / "settings")
    monkeypatch.setenv(WINDOW_BUDGET_VARIABLE, "0")
    w = show_window(qtbot, cheap_restorer())
    first = open_and_wait(qtbot, w, write_photo(tmp_path / "a.png", "noise", 0.7, size=96))
    files = [a.path for a in first.session.changes.spilled]
    assert files and all(p.is_file() for p in files)
    second = open_and_wait(qtbot, w, write_photo(tmp_path / "b.png", "noise", 0.7, index=1, size=96))
    assert second is not first and not any(p.exists() for p in files)
    files = [a.path for a in second.session.changes.spilled]
    assert files and all(p.is_file() for p in files)
    w.close()
    assert not any(p.exists() for p in files)


def test_only_the_last_few_steps_keep_subsampled_copies(two_docs, monkeypatch):
    from engine.pipeline import session as session_module

    _, disk = two_docs
    monkeypatch.setattr(session_module, "SUBSAMPLED_COPIES_FROM", 0)
    region = (slice(0, disk.height), slice(0, disk.width))
    for step in (2, 3, 4, 5, 3):
        disk.after(*region, step)
    assert list(disk.session._subsampled) == [4, 5, 3][-session_module.SUBSAMPLED_STEPS_KEPT:]


def test_a_view_at_100_percent_reads_its_crop_from_disk_once(two_docs, monkeypatch):
    memory, disk = two_docs
    crop = (slice(20, 100), slice(8, 120))
    first = disk.after(*crop, 1)
    assert np.array_equal(first, memory.after(*crop, 1))
    monkeypatch.setattr(SpilledArray, "read_rows", lambda *a: pytest.fail("read the disk"))
    monkeypatch.setattr(SpilledArray, "_gather", lambda *a: pytest.fail("read the disk"))
    for s in (0.2, 0.9):  # slider moves over the same view
        disk.set_state(disk.state.with_strength("noise", s))
        memory.set_state(memory.state.with_strength("noise", s))
        assert np.array_equal(disk.after(*crop, 1), memory.after(*crop, 1))
    monkeypatch.undo()
    # the export (the whole photo) is not a view's crop: composed from the files
    assert np.array_equal(disk.restored_photo().pixels, memory.restored_photo().pixels)


def test_opening_a_photo_removes_change_files_a_killed_window_left(tmp_path, monkeypatch):
    import subprocess
    import sys
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    stale = folder / f".restora-change.{dead}-0badf00d.partial"
    stale.write_bytes(b"\0" * 12)
    other = folder / "someone-elses.partial"
    other.write_bytes(b"kept")
    doc = _open(write_photo(tmp_path / "noisy.png", "noise", 0.7, size=96), monkeypatch, "0")
    assert not stale.exists() and other.exists()
    assert doc.session.changes.spilled and all(a.path.parent == folder for a in doc.session.changes.spilled)
    doc.close()
