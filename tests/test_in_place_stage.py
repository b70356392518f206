"""A one-shot restoration of a large photo runs an in-place expert over its input: one full-size
float array instead of two, the input on disk meanwhile. Asserted: the same tiles, the same
changes and the same composed bytes as the ordinary path; the input comes back when the stage is
dropped, when the expert fails, and for a second round; no file is left behind. Never timings
or resident-memory numbers."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import Cancelled
from engine.experts.base import Expert, ExpertInfo, ExpertRegistry
from engine.experts.classical.tiles import map_tiles
from engine.pipeline.plan import Plan, Stage
from engine.pipeline.session import RestorationSession
from engine.pipeline.spill import ChangeStore, SpilledArray
from engine.progress import Progress


def _photo(h: int = 190, w: int = 90, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / w, y / h, 0.5 + 0.3 * np.sin(x / 5)], 2) * 0.8 + rng.normal(0, 0.05, (h, w, 3))
    return np.clip(img, 0, 1).astype(np.float32)


def _local(tile: np.ndarray) -> np.ndarray:
    """A neighbourhood operator (it reads 3 pixels around each one) with a tile-wide mean in it,
    so a tile that saw other input values would give other output values."""
    k = (tile + np.roll(tile, 3, 0) + np.roll(tile, -3, 1)) / np.float32(3.0)
    return k * np.float32(1.05) - tile.mean(dtype=np.float32) * np.float32(0.02)


@pytest.mark.parametrize("tile,overlap", [(32, 8), (50, 20), (16, 40), (400, 8)])
def test_tiles_in_place_equal_tiles_into_a_new_array(tile, overlap):
    img = _photo()
    expected = map_tiles(img, _local, tile, overlap, Progress())
    work = img.copy()
    got = map_tiles(work, _local, tile, overlap, Progress(), in_place=True)
    assert got is work and np.array_equal(got, expected)
    with pytest.raises(ValueError):
        map_tiles(img[:, ::2], _local, tile, overlap, Progress(), in_place=True)  # not contiguous


class _Deblur(Expert):
    """Tile-local (like the Wiener deblurrer), with ``run_in_place``."""

    info = ExpertInfo(id="test-local", name="local", tasks=("blur",))
    fail = False

    def run(self, image, ctx=None):
        return map_tiles(image, _local, 40, 8, Progress())

    def run_in_place(self, image, ctx=None):
        progress = Progress()
        if self.fail:
            def progress(fraction, *_):
                if fraction > 0.5:
                    raise Cancelled("stop")
        return map_tiles(image, _local, 40, 8, progress, in_place=True)


class _Brighten(Expert):
    info = ExpertInfo(id="test-brighten", name="brighten", tasks=("lowlight",))

    def run(self, image, ctx=None):
        return np.sqrt(image) * np.float32(1.02)


def _session(img, changes, overwrite=True, expert=None):
    from engine.analysis.analyser import analyse

    report = analyse(img)
    session = RestorationSession(img.copy(), ExpertRegistry([expert or _Deblur(), _Brighten()]),
                                 analyser=lambda image: report, assess=False, changes=changes)
    session.overwrite_input = overwrite
    return session


PLANS = [Plan((Stage("blur", "test-local", 1.0, False), Stage("lowlight", "test-brighten", 1.0, False))),
         Plan((Stage("lowlight", "test-brighten", 1.0, False), Stage("blur", "test-local", 1.0, False)))]


@pytest.mark.parametrize("plan", PLANS)
def test_a_stage_run_in_place_gives_the_same_changes_and_composition(tmp_path, plan):
    img = _photo()
    reference = _session(img, None, overwrite=False)
    ref_results = reference.run(plan)
    changes = ChangeStore(budget=0, folder=tmp_path)
    session = _session(img, changes)
    buffer = session._image
    results = session.run(plan)
    for a, b in zip(ref_results, results, strict=True):
        assert np.array_equal(np.asarray(a.delta), np.asarray(b.delta)), a.name
    if plan.stages[0].name == "blur":  # the input's own array now holds the stage's output
        assert session._input_on_disk is not None and not np.array_equal(buffer, img)
    strengths = {"blur": 0.7, "lowlight": 0.4}
    composed = session.compose_into(strengths, into_input=True)
    assert composed is buffer and np.array_equal(composed, reference.compose(strengths))
    session.release()
    changes.close()
    assert list(tmp_path.iterdir()) == []


def test_without_overwrite_or_within_the_budget_the_input_is_left_alone(tmp_path):
    img = _photo()
    for session in (_session(img, ChangeStore(budget=0, folder=tmp_path), overwrite=False),
                    _session(img, ChangeStore(budget=10**9, folder=tmp_path))):
        session.run(PLANS[0])
        assert session._input_on_disk is None and np.array_equal(session.image, img)


def test_a_dropped_stage_run_in_place_puts_its_input_back(tmp_path):
    img = _photo()
    changes = ChangeStore(budget=0, folder=tmp_path)
    session = _session(img, changes)
    stage = PLANS[0].stages[0]
    expert = session.registry.get(stage.expert_id)
    current = session._image
    result = session.run_stage(stage, expert, current, 0.5, {}, {}, "k1", Progress())
    assert isinstance(result.delta, SpilledArray) and not np.array_equal(current, img)
    assert session.take_after("k1", kept=False) is None
    assert np.array_equal(current, img) and session._input_on_disk is None
    assert len(list(tmp_path.iterdir())) == 1  # the change only; the parked input is gone
    changes.close()


def test_an_expert_failing_in_place_leaves_the_input_as_it_was(tmp_path):
    img = _photo()
    failing = _Deblur()
    failing.fail = True
    changes = ChangeStore(budget=0, folder=tmp_path)
    session = _session(img, changes, expert=failing)
    with pytest.raises(Cancelled):
        session.run(PLANS[0])
    assert np.array_equal(session._image, img) and session._input_on_disk is None
    assert list(tmp_path.iterdir()) == []


def test_the_input_is_read_back_for_a_second_round(tmp_path):
    """A follow-up round starts again from ``session.image``: the input, not the stage's output."""
    img = _photo()
    reference = _session(img, None, overwrite=False)
    reference.run(PLANS[0])
    changes = ChangeStore(budget=0, folder=tmp_path)
    session = _session(img, changes)
    session.run(PLANS[0])
    assert session._input_on_disk is not None
    assert np.array_equal(session.image, img) and session._input_on_disk is None
    results = session.run(PLANS[0])  # from the cache, on the input
    assert np.array_equal(session.compose_into({}), reference.compose({}))
    assert all(not r.dropped for r in results)
    changes.close()


def test_the_wiener_deblurrer_in_place_equals_its_ordinary_run():
    import cv2

    from engine.experts.base import ExpertContext
    from engine.experts.classical.deblur import WienerDeblur

    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(rng.random((300, 420, 3), dtype=np.float32), (0, 0), 2.0)
    img = np.ascontiguousarray(np.clip(img + rng.normal(0, 0.01, img.shape).astype(np.float32), 0, 1))
    expert = WienerDeblur(tile=128)
    expected = expert.run(img.copy(), ExpertContext())
    work = img.copy()
    assert expert.run_in_place(work, ExpertContext()) is work
    assert np.array_equal(work, expected) and not np.array_equal(work, img)


def test_a_one_shot_ffdnet_stage_at_full_strength_runs_in_place_with_the_same_bytes(tmp_path):
    """FFDNet's strength is a physical parameter (σ·s): a one-shot session runs it once at full
    strength, so it may write over its input (issue 14); at another strength it runs as before."""
    from engine.experts.published import FFDNetExpert
    from testdata import REPO

    onnx = REPO / "models" / "ffdnet-color.onnx"
    if not onnx.is_file():
        pytest.skip("the bundled FFDNet is not present")
    expert = FFDNetExpert(onnx, model_id="ffdnet-color", threads=1)
    img = _photo(160, 124)
    for strength, in_place in ((1.0, True), (0.6, False)):
        plan = Plan((Stage("noise", expert.info.id, strength, False),))
        reference = _session(img, None, overwrite=False, expert=expert)
        reference.one_shot = True
        reference.tile = 48
        ref = reference.run(plan)
        changes = ChangeStore(budget=0, folder=tmp_path)
        session = _session(img, changes, expert=expert)
        session.one_shot = True
        session.tile = 48
        results = session.run(plan)
        assert (session._input_on_disk is not None) is in_place
        assert np.asarray(ref[0].delta).tobytes() == np.asarray(results[0].delta).tobytes()
        assert session.compose_into({}).tobytes() == reference.compose({}).tobytes()
        session.release()
        changes.close()


class _Deblock(Expert):
    """Reads the JPEG file's decoding, as the JPEG stage's experts do."""

    info = ExpertInfo(id="test-deblock", name="deblock", tasks=("jpeg",))
    seen: list = []

    def run(self, image, ctx=None):
        self.seen.append(ctx.jpeg.decoded.copy())
        return np.clip(image * np.float32(0.99) + ctx.jpeg.decoded * np.float32(0.01), 0, 1)


def _jpeg_photo(tmp_path, h=124, w=160):
    from PIL import Image

    from engine.imageio import load_photo

    path = tmp_path / "photo.jpg"
    Image.fromarray((_photo(h, w) * 255).round().astype(np.uint8)).save(path, "JPEG", quality=80)
    return load_photo(path)


def test_a_jpeg_photo_runs_in_place_unless_a_later_stage_reads_its_decoding(tmp_path):
    """A JPEG photo's input is the JPEG stage's ``jpeg.decoded``: a stage may write over it only
    when no later stage reads that (issue 14); then with the same bytes as the ordinary path, and
    a later JPEG-stage expert still sees the file's own decoding."""
    from engine.pipeline.orchestrator import run_plan

    photo = _jpeg_photo(tmp_path)
    work = tmp_path / "spill"
    work.mkdir()
    registry = ExpertRegistry([_Deblur(), _Brighten(), _Deblock()])
    from engine.analysis.analyser import analyse

    report = analyse(photo.pixels)
    plans = {False: Plan((Stage("blur", "test-local", 1.0, False),)),  # nothing reads the decoding later
             True: Plan((Stage("blur", "test-local", 1.0, False), Stage("jpeg", "test-deblock", 1.0, False)))}
    for later_reader, plan in plans.items():
        _Deblock.seen = []
        sessions = []
        for overwrite in (False, True):
            changes = ChangeStore(budget=0, folder=work) if overwrite else None
            session = RestorationSession(photo.pixels.copy(), registry, analyser=lambda image: report,
                                         assess=False, changes=changes, jpeg=photo.jpeg)
            session.overwrite_input = overwrite
            run_plan(session, plan)
            sessions.append((session, changes))
        (reference, _), (session, changes) = sessions
        assert (session._input_on_disk is not None) is (not later_reader)
        for a, b in zip(reference.results, session.results, strict=True):
            assert np.asarray(a.delta).tobytes() == np.asarray(b.delta).tobytes()
        if later_reader:
            assert len(_Deblock.seen) == 2 and all(np.array_equal(s, photo.pixels) for s in _Deblock.seen)
        assert session.compose_into({}, into_input=True).tobytes() == reference.compose({}).tobytes()
        session.release()
        changes.close()
    assert list(work.iterdir()) == []


def test_ffdnet_in_place_on_a_releasable_photo_reads_its_input_from_disk(tmp_path, monkeypatch):
    """Through the session, a decoded photo's own (releasable) array: FFDNet gets its input on disk
    (``ExpertContext.input_on_disk``) and the run gives the same bytes as the ordinary path."""
    import engine.experts.published as published
    import engine.imageio.quantize as quantize
    from engine.experts.published import FFDNetExpert
    from testdata import REPO

    onnx = REPO / "models" / "ffdnet-color.onnx"
    if not onnx.is_file():
        pytest.skip("the bundled FFDNet is not present")
    monkeypatch.setattr(quantize, "RELEASABLE_MIN_BYTES", 0)
    calls = []
    original = published.FFDNetExpert._chroma_pass_from_disk
    monkeypatch.setattr(published.FFDNetExpert, "_chroma_pass_from_disk",
                        lambda self, *a: calls.append(1) or original(self, *a))
    expert = FFDNetExpert(onnx, model_id="ffdnet-color", threads=1)
    img = _photo(160, 124)
    plan = Plan((Stage("noise", expert.info.id, 1.0, False),))
    reference = _session(img, None, overwrite=False, expert=expert)
    reference.one_shot, reference.tile = True, 48
    ref = reference.run(plan)
    changes = ChangeStore(budget=0, folder=tmp_path)
    session = _session(img, changes, expert=expert)
    own = quantize.releasable_empty(img.shape, np.float32)
    own[...] = img
    session._image = own
    session.one_shot, session.tile = True, 48
    results = session.run(plan)
    assert calls and session._image is own and session._input_on_disk is not None
    assert np.asarray(ref[0].delta).tobytes() == np.asarray(results[0].delta).tobytes()
    assert session.compose_into({}, into_input=True).tobytes() == reference.compose({}).tobytes()
    session.release()
    changes.close()
    assert list(tmp_path.iterdir()) == []
