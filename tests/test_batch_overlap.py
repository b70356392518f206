"""A batch overlaps files (issue 14 item 2): the next file decodes and the last one encodes while
one is restored; outputs are the same bytes as one file after the other, reported in order, and
a cancelled batch leaves complete outputs only (never a half-written file)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from gui_helpers import BoxDenoiser, GammaLift, analyser, write_photo

from engine.errors import Cancelled
from engine.experts.base import ExpertRegistry
from engine.pipeline import Restorer
from engine.pipeline.batch import Batch
from engine.pipeline.job import RestoreOptions
from engine.progress import CancelToken, Progress


def _restorer(*extra) -> Restorer:
    return Restorer(ExpertRegistry([BoxDenoiser(), GammaLift(), *extra]), device="cpu", analyser=analyser())


def _inputs(folder: Path, n: int = 4) -> list[Path]:
    kinds = ["noise", "lowlight", "noise", "lowlight"]
    return [write_photo(folder / f"p{i}.png", kinds[i % 4], 0.7, index=i, size=80) for i in range(n)]


def _batch(inputs, out: Path) -> Batch:
    from engine.imageio import is_supported

    return Batch.collect(inputs, out, RestoreOptions(), is_supported)


def test_overlapped_outputs_equal_one_after_the_other_and_come_in_order(tmp_path, monkeypatch):
    import engine.imageio as imageio

    inputs = _inputs(tmp_path / "in")
    plain = _batch(inputs, tmp_path / "plain")
    expected = [plain.run_item(_restorer(), item) for item in plain.items]
    assert all(r.error is None and r.output is not None for r in expected)

    threads: dict[str, set[str]] = {"load": set(), "save": set()}
    real_load, real_save = imageio.load_photo, imageio.save_photo

    def load(path, *a, **k):
        threads["load"].add(threading.current_thread().name.split("_")[0])
        return real_load(path, *a, **k)

    def save(*a, **k):
        threads["save"].add(threading.current_thread().name.split("_")[0])
        return real_save(*a, **k)

    monkeypatch.setattr(imageio, "load_photo", load)
    monkeypatch.setattr(imageio, "save_photo", save)
    batch = _batch(inputs, tmp_path / "overlapped")
    seen = []
    batch.run_overlapped(_restorer(), lambda i: Progress(), lambda i, r: seen.append((i, r)))
    assert [i for i, _ in seen] == [0, 1, 2, 3]
    for (i, result), reference in zip(seen, expected, strict=True):
        assert result.error is None and result.input == inputs[i]
        assert result.output.name == reference.output.name and result.output.read_bytes() == \
            reference.output.read_bytes()
        assert [s["stage"] for s in result.stages] == [s["stage"] for s in reference.stages]
    assert threads["load"] == {"restora-decode"} and threads["save"] == {"restora-encode"}


def test_cancel_finishes_the_file_being_written_and_leaves_no_partial_file(tmp_path, monkeypatch):
    import engine.imageio as imageio

    inputs = _inputs(tmp_path / "in")
    token = CancelToken()
    real_save = imageio.save_photo
    writing = threading.Event()

    def slow_save(*a, **k):  # the first output is still being written when the batch is cancelled
        writing.set()
        time.sleep(1.0)
        return real_save(*a, **k)

    class Canceller(BoxDenoiser):  # cancels from inside the second file's restoration
        def run(self, image, ctx=None):
            if self.runs == 1:
                assert writing.wait(10)
                token.cancel()
            return super().run(image, ctx)

    monkeypatch.setattr(imageio, "save_photo", slow_save)
    restorer = Restorer(ExpertRegistry([Canceller(), GammaLift()]), device="cpu", analyser=analyser())
    batch = _batch([inputs[0], inputs[2], inputs[1]], tmp_path / "out")  # noise, noise, low light
    seen = []
    with pytest.raises(Cancelled):
        batch.run_overlapped(restorer, lambda i: Progress(cancel=token), lambda i, r: seen.append((i, r)))
    assert [i for i, _ in seen] == [0]  # the file written before the cancel is reported
    first = seen[0][1]
    assert first.error is None and first.output.is_file()
    out_files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert out_files == [first.output.name]  # no half-written or temporary file, nothing for the rest
    reference = _batch([inputs[0]], tmp_path / "ref")
    ref = reference.run_item(_restorer(), reference.items[0])
    assert first.output.read_bytes() == ref.output.read_bytes()


def test_a_failed_write_fails_its_file_only(tmp_path, monkeypatch):
    import engine.imageio as imageio

    inputs = _inputs(tmp_path / "in", 3)
    real_save = imageio.save_photo

    def save(photo, path, *a, **k):
        if Path(path).stem.startswith("p1"):
            raise OSError(28, "No space left on device")
        return real_save(photo, path, *a, **k)

    monkeypatch.setattr(imageio, "save_photo", save)
    batch = _batch(inputs, tmp_path / "out")
    seen = []
    batch.run_overlapped(_restorer(), lambda i: Progress(), lambda i, r: seen.append((i, r)))
    assert [i for i, _ in seen] == [0, 1, 2]
    assert seen[1][1].error and "space" in seen[1][1].error.lower() and seen[1][1].output is None
    assert seen[0][1].output.is_file() and seen[2][1].output.is_file()


def test_large_photos_are_not_decoded_ahead(tmp_path, monkeypatch):
    import engine.pipeline.batch as batch_module

    small = write_photo(tmp_path / "s.png", "noise", 0.5, size=64)
    assert batch_module.prefetch_allowed(small)
    monkeypatch.setattr(batch_module, "PREFETCH_MAX_BYTES", 64 * 64 * 12 - 1)
    assert not batch_module.prefetch_allowed(small)
    assert not batch_module.prefetch_allowed(tmp_path / "missing.png")
    monkeypatch.setattr(batch_module, "PREFETCH_MAX_BYTES", 64 * 64 * 12)
    assert batch_module.prefetch_allowed(small) and not batch_module.prefetch_allowed(small, scale=2)


def test_large_outputs_are_written_before_the_next_file(tmp_path, monkeypatch):
    import engine.imageio as imageio
    import engine.pipeline.batch as batch_module

    monkeypatch.setattr(batch_module, "PREFETCH_MAX_BYTES", 1)  # every photo counts as large
    threads = set()
    real_save = imageio.save_photo

    def save(*a, **k):
        threads.add(threading.current_thread().name.split("_")[0])
        return real_save(*a, **k)

    monkeypatch.setattr(imageio, "save_photo", save)
    batch = _batch(_inputs(tmp_path / "in", 2), tmp_path / "out")
    seen = []
    batch.run_overlapped(_restorer(), lambda i: Progress(), lambda i, r: seen.append((i, r)))
    assert [i for i, _ in seen] == [0, 1] and all(r.output.is_file() for _, r in seen)
    assert threads == {threading.main_thread().name}
