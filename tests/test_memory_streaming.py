"""Memory of a one-shot restoration (the CLI, a batch): stage changes past a byte budget go to
disk, the result is composed band by band (into the decoded pixels), and the file written is the
same, byte for byte, as the full-resolution compose. The budget logic is asserted, never timings
or resident-memory numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.experts.base import Expert, ExpertInfo, ExpertRegistry
from engine.pipeline.plan import Plan, Stage
from engine.pipeline.session import RestorationSession
from engine.pipeline.spill import ChangeStore, SpilledArray, band_slices


def _photo(h: int = 150, w: int = 70, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / w, y / h, 0.5 + 0.3 * np.sin(x / 5)], 2) * 0.8 + rng.normal(0, 0.05, (h, w, 3))
    return np.clip(img, 0, 1).astype(np.float32)


class _Smooth(Expert):
    """Strength is a physical parameter (two knots), like FFDNet's σ."""

    info = ExpertInfo(id="test-smooth", name="smooth", tasks=("noise",), sigma_strength=True)

    def run(self, image, ctx=None):
        s = np.float32(ctx.strength if ctx is not None else 1.0)
        blurred = (image + np.roll(image, 1, 0) + np.roll(image, -1, 1)) / np.float32(3.0)
        return image + s * (blurred - image) + np.float32(0.01)


class _Brighten(Expert):
    info = ExpertInfo(id="test-brighten", name="brighten", tasks=("lowlight",))

    def run(self, image, ctx=None):
        return np.sqrt(image) * np.float32(1.02)


def _session(img, changes):
    from engine.analysis.analyser import analyse

    report = analyse(img)
    return RestorationSession(img.copy(), ExpertRegistry([_Smooth(), _Brighten()]), analyser=lambda image: report,
                              assess=False, changes=changes)


PLAN = Plan((Stage("noise", "test-smooth", 1.0, False), Stage("lowlight", "test-brighten", 1.0, False)))


def test_a_spilled_array_reads_back_what_was_written_and_deletes_its_file(tmp_path):
    data = _photo(130, 20)
    spilled = SpilledArray.create(tmp_path, data.shape)
    for band in band_slices(data.shape[0], 64):
        spilled.write_rows(band.start, data[band])
    assert np.array_equal(np.asarray(spilled), data)
    assert np.array_equal(spilled[10:75], data[10:75])
    assert np.array_equal(spilled[3:120:4, 2:17:3], data[3:120:4, 2:17:3])
    assert np.array_equal(spilled[::2, ::2], data[::2, ::2])
    with pytest.raises(ValueError):
        spilled.write_rows(129, data[:2])
    path = spilled.path
    assert path.is_file() and path.stat().st_size == data.nbytes
    from engine.imageio.atomic import remove_stale_partials

    assert remove_stale_partials(tmp_path) == []  # its writer (this process) is alive: kept
    spilled.close()
    assert not path.exists()


def test_the_change_store_keeps_changes_in_memory_up_to_its_budget_then_spills(tmp_path):
    change = _photo(10, 10)  # 1200 bytes
    store = ChangeStore(budget=2500, folder=tmp_path)
    assert store.keep(change) is change and store.keep(change) is change
    assert store.in_memory == 2400 and not store.fits(change.nbytes)
    third = store.keep(change)
    assert isinstance(third, SpilledArray) and np.array_equal(np.asarray(third), change)
    assert store.in_memory == 2400  # a spilled change costs no memory
    assert store.writer(change.shape) is not None  # past the budget: a file to fill
    assert ChangeStore(budget=1200, folder=tmp_path).writer(change.shape) is None  # fits: the caller keeps it
    assert len(list(tmp_path.iterdir())) == 2
    store.close()
    assert list(tmp_path.iterdir()) == [] and store.in_memory == 0


def test_the_change_budget_follows_the_override(monkeypatch):
    from engine.pipeline.spill import BUDGET_VARIABLE, DEFAULT_CHANGE_BUDGET, change_budget

    monkeypatch.delenv(BUDGET_VARIABLE, raising=False)
    assert change_budget() == DEFAULT_CHANGE_BUDGET == ChangeStore().budget
    monkeypatch.setenv(BUDGET_VARIABLE, "0")
    assert ChangeStore().budget == 0
    monkeypatch.setenv(BUDGET_VARIABLE, "1G")
    assert change_budget() == 2**30


@pytest.mark.parametrize("budget", [0, 130_000, None])
def test_spilled_changes_compose_to_the_same_bytes_as_changes_in_memory(tmp_path, budget):
    """Budget 0: every change on disk; 130 kB: the first knot in memory, the rest on disk;
    ``None`` (no store): today's in-memory session. Band-by-band composing (into a new array or
    into the input itself) equals the full-resolution compose for any strengths."""
    img = _photo()
    reference = _session(img, None)
    reference.run(PLAN)
    changes = None if budget is None else ChangeStore(budget=budget, folder=tmp_path)
    session = _session(img, changes)
    results = session.run(PLAN)
    if budget == 0:
        assert all(isinstance(r.delta, SpilledArray) for r in results)
        assert all(isinstance(d, SpilledArray) for d in results[0].knot_deltas.values())
        assert changes.in_memory == 0 and len(list(tmp_path.iterdir())) == 3  # knot 0.5, knot 1, lowlight
    if budget == 130_000:
        assert isinstance(results[0].knot_deltas[0.5], np.ndarray) and isinstance(results[1].delta, SpilledArray)
    for strengths in ({}, {"noise": 0.3, "lowlight": 0.6}, {"noise": 0.75}, {"noise": 0.0, "lowlight": 1.0}):
        expected = reference.compose(strengths)
        assert np.array_equal(session.compose_into(strengths), expected), strengths
        assert np.array_equal(session.compose(strengths), expected), strengths
    consumed = session.compose_into({"noise": 0.6}, out=session.image)
    assert consumed is session.image and np.array_equal(consumed, reference.compose({"noise": 0.6}))
    session.release()
    assert list(tmp_path.iterdir()) == []


def test_the_next_stage_runs_on_the_same_input_with_changes_on_disk(tmp_path):
    """The chain's intermediate images are the ones computed in memory: the second stage's
    change is the same array, byte for byte."""
    img = _photo()
    reference = _session(img, None).run(PLAN)
    spilled = _session(img, ChangeStore(budget=0, folder=tmp_path)).run(PLAN)
    for a, b in zip(reference, spilled, strict=True):
        assert np.array_equal(np.asarray(a.delta), np.asarray(b.delta)), a.name


def test_the_estimate_counts_only_the_changes_kept_in_memory():
    from engine.pipeline.memory import STAGE_BYTES_PER_PIXEL, estimate_bytes

    experts = ["classical.dehaze.dcp"] * 4
    all_in_memory = estimate_bytes(8000, 6000, cached_changes=4, experts=experts)
    capped = estimate_bytes(8000, 6000, cached_changes=4, change_budget=2**28, experts=experts)
    assert 0 < all_in_memory - capped <= int(4 * STAGE_BYTES_PER_PIXEL * 48e6 - 2**28)
    assert estimate_bytes(100, 100, cached_changes=4, change_budget=2**28, experts=experts) == \
        estimate_bytes(100, 100, cached_changes=4, experts=experts)


def test_quantize_in_bands_equals_one_pass():
    from engine.imageio.quantize import QUANTIZE_BAND_ROWS, quantize

    rng = np.random.default_rng(3)
    values = rng.uniform(-0.2, 1.2, (QUANTIZE_BAND_ROWS * 2 + 5, 9, 3)).astype(np.float32)
    values[0, 0, 0] = np.nan
    for depth, kind in ((8, np.uint8), (16, np.uint16)):
        top = np.float32(255.0 if depth == 8 else 65535.0)
        one_pass = np.rint(np.fmin(np.fmax(np.multiply(values, top, dtype=np.float32), 0.0), top)).astype(kind)
        assert np.array_equal(quantize(values, depth), one_pass)
        assert np.array_equal(quantize(values[:, :, 0], depth), one_pass[:, :, 0])
    assert quantize(np.float32(0.5), 8) == 128 and quantize(np.zeros((0, 4, 3), np.float32), 8).shape == (0, 4, 3)


def _restore_both_ways(source: Path, out: Path, monkeypatch, options, budget: str):
    """Restore ``source`` with restore_file (one shot: changes on disk past ``budget``, composed
    into the decoded pixels, saved) and, for reference, with the in-memory session and a
    full-resolution compose of the same plan; returns (file pixels, reference photo, result)."""
    from engine.experts.default import build_registry
    from engine.imageio import load_photo
    from engine.pipeline.job import Restorer

    monkeypatch.setenv("RESTORA_CHANGE_BUDGET", budget)
    restorer = Restorer(build_registry(), device="cpu")
    result = restorer.restore_file(source, lambda photo: out / (source.stem + ".png"), options)
    assert result.error is None, result.error
    photo = load_photo(source)
    session = restorer.session(photo.pixels, options, jpeg=photo.jpeg, metadata=photo.metadata)
    outcome = restorer.orchestrator.restore(session, options.choices())
    assert [r.name for r in outcome.results] == [s["stage"] for s in result.stages]
    reference = photo.with_pixels(session.compose(outcome.plan.strengths()))
    return load_photo(result.output), reference, result


@pytest.mark.parametrize("name", ["noisy_dog.png", "jpeg_q75_beach_ade_val_00000114.jpg"])
def test_a_real_photo_restored_in_one_shot_is_the_full_resolution_compose(shared_data, tmp_path, monkeypatch, name):
    """Real photos with their real automatic plans (FFDNet at strength 0.84, between its knots;
    JPEG, noise and blur stages on a real JPEG with its tables), every change on disk: the file
    holds exactly the full-resolution compose of the in-memory session, quantised."""
    from engine.imageio.quantize import quantize
    from engine.pipeline.job import RestoreOptions

    written, reference, result = _restore_both_ways(shared_data / "real" / name, tmp_path / "out", monkeypatch,
                                                    RestoreOptions(), "0")
    assert any(not s["dropped"] for s in result.stages), result.stages  # a real change was composed
    assert np.array_equal(quantize(written.pixels, 8), quantize(reference.pixels, 8))
    assert not list((tmp_path / "out").glob(".restora-change.*"))  # the spilled changes are gone


def test_sixteen_bit_alpha_and_a_set_strength_survive_the_one_shot_path(tmp_path, monkeypatch):
    """16-bit RGBA in → 16-bit RGBA out, alpha untouched, pixels equal to the full compose with
    a slider below 1 (the knots' interpolation read from disk)."""
    import cv2

    from engine.imageio.quantize import quantize
    from engine.pipeline.job import RestoreOptions

    img = _photo(96, 128, seed=5)
    alpha = np.linspace(0, 1, 96 * 128, dtype=np.float32).reshape(96, 128)
    rgba = np.dstack([img, alpha])[:, :, [2, 1, 0, 3]]
    source = tmp_path / "in16.png"
    cv2.imwrite(str(source), np.round(rgba * 65535).astype(np.uint16))
    options = RestoreOptions(auto=False, only=("noise",), strengths={"noise": 0.4}, use_generalist=False)
    written, reference, _ = _restore_both_ways(source, tmp_path / "out", monkeypatch, options, "0")
    assert written.bit_depth == 16 and written.alpha is not None
    assert np.array_equal(quantize(written.alpha, 16), quantize(reference.alpha, 16))
    assert np.array_equal(quantize(written.pixels, 16), quantize(reference.pixels, 16))
    assert not list((tmp_path / "out").glob(".restora-change.*"))  # the spilled changes are gone
