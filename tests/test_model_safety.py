"""Models are used only while intact and only when they are image models; a model that fails at
run time fails its stage only; runtime errors are told apart from out-of-memory; unsafe pickles
are refused with a plain reason (issue 9, items 12-15)."""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

from engine.errors import ModelError  # noqa: E402
from engine.weights import ModelStatus, WeightsManager  # noqa: E402
from engine.weights.catalog import parse_catalog  # noqa: E402


# ------------------------------------------------------------------------------ model files


def _save(graph, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _image_io(channels_in: int = 3, channels_out: int = 3):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels_in, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels_out, "h", "w"])
    return x, y


def identity_conv_onnx(path: Path) -> Path:
    """A 3x3 convolution that returns its input (weights: 1.0 at each channel's centre tap)."""
    w = np.zeros((3, 3, 3, 3), np.float32)
    for c in range(3):
        w[c, c, 1, 1] = 1.0
    x, y = _image_io()
    conv = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    init = helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.tobytes(), raw=True)
    return _save(helper.make_graph([conv], "identity_conv", [x], [y], [init]), path)


def identity_vector_onnx(path: Path) -> Path:
    """``Identity`` on a float[3]: a valid ONNX model, but not an image model."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])
    return _save(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "vec", [x], [y]), path)


def to_grey_onnx(path: Path) -> Path:
    """A 1x1 convolution from 3 channels to 1 (a colour photo in, a grey plane out)."""
    x, y = _image_io(3, 1)
    w = np.full((1, 3, 1, 1), 1 / 3, np.float32)
    init = helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.tobytes(), raw=True)
    return _save(helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "grey", [x], [y], [init]), path)


def fixed_reshape_onnx(path: Path, side: int = 64) -> Path:
    """Declares dynamic height and width but reshapes to a fixed ``side``: right at that size,
    an ONNX Runtime error (not a memory error) at any other."""
    x, y = _image_io()
    shape = helper.make_tensor("shape", TensorProto.INT64, [4], [1, 3, side, side])
    node = helper.make_node("Reshape", ["x", "shape"], ["y"])
    return _save(helper.make_graph([node], "fixed", [x], [y], [shape]), path)


def times_four_onnx(path: Path) -> Path:
    """y = 4·x through two Mul nodes (each output needs a fresh buffer as large as the tile)."""
    x, y = _image_io()
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    nodes = [helper.make_node("Mul", ["x", "two"], ["t"]), helper.make_node("Mul", ["t", "two"], ["y"])]
    return _save(helper.make_graph(nodes, "times4", [x], [y], [two]), path)


def flip_weight_byte(path: Path) -> None:
    """Turn the first 1.0 weight (bytes 00 00 80 3f) into ~1.7e38 by flipping one exponent bit."""
    data = bytearray(path.read_bytes())
    at = data.index(np.float32(1.0).tobytes()) + 3
    data[at] ^= 0x40
    path.write_bytes(bytes(data))


def _photo(path: Path, seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:72, 0:96]
    img = np.stack([xx / 96, yy / 72, 0.5 + 0 * xx], axis=2) * 200 + rng.normal(0, 12, (72, 96, 3))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def manager(tmp_path, monkeypatch):
    monkeypatch.setenv("RESTORA_CACHE_DIR", str(tmp_path / "cache"))
    return WeightsManager(cache_dir=tmp_path / "cache", catalog=parse_catalog({"models": []}))


def _restore_json(args: list[str], caplog) -> tuple[int, dict, str]:
    """Run ``restora restore ... --json`` in this process; returns (rc, the JSON object, log text).
    The tests plan ``rain``: no bundled network serves it, so an imported model is its expert."""
    import contextlib
    import io

    from engine.cli import main

    out = io.StringIO()
    with caplog.at_level(logging.WARNING), contextlib.redirect_stdout(out):
        rc = main(["restore", *args, "--json"])
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    return rc, lines[0], "\n".join(r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------ item 12


def test_one_flipped_byte_makes_the_model_damaged_and_restore_use_the_classical_expert(
        manager, tmp_path, caplog):
    from PIL import Image

    entry, installed = manager.import_file(identity_conv_onnx(tmp_path / "tinyrain.onnx"), tasks=["rain"])
    photo = _photo(tmp_path / "photo.png")
    args = [str(photo), "-o", str(tmp_path / "out"), "--only", "rain", "--no-generalist", "--device", "cpu"]

    rc, result, _ = _restore_json(args, caplog)
    assert rc == 0 and [s["expert"] for s in result["stages"]] == ["neural.tinyrain"]

    flip_weight_byte(installed)
    caplog.clear()
    assert WeightsManager().status("tinyrain") is ModelStatus.CORRUPT
    assert "tinyrain" not in [e.id for e, _ in WeightsManager().installed_models()]

    rc, result, logs = _restore_json(args + ["--overwrite"], caplog)

    assert rc == 0 and result["error"] is None
    assert [s["expert"].split(".")[0] for s in result["stages"]] == ["classical"]
    assert "model tinyrain is damaged" in logs
    assert "restora models remove tinyrain` and import the file again" in logs  # imported: no download source
    out = np.asarray(Image.open(result["output"]), np.float32)
    src = np.asarray(Image.open(photo), np.float32)
    assert np.abs(out - src).mean() < 20  # a restored photo, not the saturated channel of the damaged net


def test_models_list_says_corrupt_and_verify_fails(manager, tmp_path, capsys):
    from engine.cli import main

    _, installed = manager.import_file(identity_conv_onnx(tmp_path / "tinynoise.onnx"), tasks=["noise"])
    flip_weight_byte(installed)

    assert main(["models", "list", "--json"]) == 0
    rows = {r["id"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["tinynoise"]["status"] == "corrupt" and rows["tinynoise"]["path"] is None
    with pytest.raises(ModelError, match="damaged .*not loading it"):
        WeightsManager().check_intact("tinynoise")


def test_a_change_with_the_mtime_put_back_is_still_caught(manager, tmp_path):
    _, installed = manager.import_file(identity_conv_onnx(tmp_path / "m.onnx"), tasks=["noise"])
    assert WeightsManager().status("m") is ModelStatus.INSTALLED
    st = installed.stat()
    flip_weight_byte(installed)
    os.utime(installed, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime

    assert WeightsManager().status("m") is ModelStatus.CORRUPT


def test_the_verified_digest_is_remembered_across_runs(manager, tmp_path, monkeypatch):
    import engine.weights.manager as manager_module

    manager.import_file(identity_conv_onnx(tmp_path / "m.onnx"), tasks=["noise"])
    hashed = []
    real = manager_module.sha256_file
    monkeypatch.setattr(manager_module, "sha256_file", lambda p, *a: hashed.append(Path(p).name) or real(p, *a))

    for _ in range(3):  # three "runs": new managers, same cache
        fresh = WeightsManager()
        assert fresh.status("m") is ModelStatus.INSTALLED and fresh.path_for("m") is not None
    assert hashed == []  # verified at import; later runs only stat the file
    stamps = json.loads((tmp_path / "cache" / "verified.json").read_text())["files"]
    assert any(k.endswith("m.onnx") for k in stamps)


def test_a_model_damaged_after_the_registry_was_built_is_not_loaded(manager, tmp_path):
    from engine.experts.default import build_registry
    from engine.pipeline.plan import Plan, Stage
    from engine.pipeline.session import RestorationSession

    _, installed = manager.import_file(identity_conv_onnx(tmp_path / "m.onnx"), tasks=["noise"])
    registry = build_registry(manager=WeightsManager())
    flip_weight_byte(installed)  # between planning and loading

    session = RestorationSession(np.full((48, 48, 3), 0.5, np.float32), registry, assess=False,
                                 analyser=_flat_report)
    (result,) = session.run(Plan((Stage("noise", "neural.m", 1.0, auto=False),)))

    assert result.expert_id.startswith("classical.")
    assert "neural.m could not run (model 'm' is damaged" in result.reason
    assert float(np.abs(result.delta).max()) < 0.1


def _flat_report(image):
    from engine.analysis.report import DegradationReport, KindAssessment
    from engine.kinds import KINDS

    return DegradationReport({k: KindAssessment(0.0) for k in KINDS})


# ------------------------------------------------------------------------------ item 13


def test_import_refuses_an_onnx_model_that_is_not_an_image_model(manager, tmp_path):
    with pytest.raises(ModelError, match=r"not an image-to-image model \(its input is .*\[3\]"):
        manager.import_file(identity_vector_onnx(tmp_path / "vec.onnx"))
    assert manager.known_ids() == [] and not (manager.cache_dir / "vec").exists()


def test_import_refuses_a_colour_to_grey_model(manager, tmp_path):
    with pytest.raises(ModelError, match="turns 3-channel images into 1-channel ones"):
        manager.import_file(to_grey_onnx(tmp_path / "grey.onnx"))
    assert manager.known_ids() == []


def test_import_refuses_a_torch_model_with_other_output_channels(manager, tmp_path):
    from safetensors.torch import save_file
    from spandrel.architectures.Compact import Compact

    model = Compact(num_in_ch=3, num_out_ch=1, num_feat=8, num_conv=2, upscale=1)
    src = tmp_path / "grey-compact.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(src))
    with pytest.raises(ModelError, match="turns 3-channel images into 1-channel ones"):
        manager.import_file(src)


def test_import_measures_the_scale_of_a_dynamic_onnx_model(manager, tmp_path):
    from spandrel.architectures.Compact import Compact

    model = Compact(num_feat=8, num_conv=2, upscale=2).eval()
    src = tmp_path / "x2.onnx"
    torch.onnx.export(model, torch.rand(1, 3, 16, 16), str(src), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {2: "h", 3: "w"}, "y": {2: "h2", 3: "w2"}})
    entry, _ = manager.import_file(src)
    assert entry.scale == 2  # the declared shape says nothing; the probe measured it
    assert entry.tasks == ("upscale",) and not entry.conditioned  # it enlarges: an upscaler, not a generalist
    from engine.experts.neural import experts_for_installed_models

    experts = {e.info.id: e for e in experts_for_installed_models(manager)}
    assert experts["neural.x2"].info.scale == 2 and experts["neural.x2"].info.tasks == ("upscale",)


def test_a_model_failing_at_run_time_fails_its_stage_only(manager, tmp_path, caplog, monkeypatch):
    """An Identity-on-float[3] model installed before imports were probed: every restore used to
    abort the whole batch with an ONNX Runtime traceback."""
    import engine.weights.manager as manager_module
    from engine.weights.probe import ProbeResult

    monkeypatch.setattr(manager_module, "probe_onnx", lambda path: ProbeResult(3, 1))  # an old import
    manager.import_file(identity_vector_onnx(tmp_path / "vec.onnx"), tasks=["rain"])
    monkeypatch.undo()
    monkeypatch.setenv("RESTORA_CACHE_DIR", str(tmp_path / "cache"))
    photos = [_photo(tmp_path / f"p{i}.png", seed=i) for i in range(2)]

    rc, result, logs = _restore_json([*map(str, photos), "-o", str(tmp_path / "out"), "--only", "rain",
                                      "--no-generalist", "--device", "cpu"], caplog)

    assert rc == 0 and result["error"] is None
    (stage,) = result["stages"]
    assert stage["expert"].startswith("classical.")
    assert stage["reason"].startswith("neural.vec could not run (vec.onnx: ONNX Runtime failed")
    assert "Traceback" not in logs
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0.png", "p1.png"]


def test_a_failing_stage_without_a_classical_expert_is_skipped_with_its_reason(tmp_path):
    from engine.experts.base import ExpertRegistry
    from engine.experts.neural import NeuralExpert
    from engine.pipeline.plan import Plan, Stage
    from engine.pipeline.session import RestorationSession

    expert = NeuralExpert.from_file(identity_vector_onnx(tmp_path / "vec.onnx"), expert_id="neural.vec",
                                    tasks=("rain",), model_id="vec", scale=1)
    session = RestorationSession(np.full((40, 40, 3), 0.5, np.float32), ExpertRegistry([expert]),
                                 assess=False, analyser=_flat_report)
    (result,) = session.run(Plan((Stage("rain", "neural.vec", 1.0, auto=False),)))
    assert result.dropped and result.delta is None
    assert "no classical expert for rain, stage skipped" in result.reason


# ------------------------------------------------------------------------------ item 14


def test_an_onnx_runtime_error_is_raised_at_once_not_retried_at_smaller_tiles(tmp_path):
    from engine.experts.neural import NeuralExpert
    from engine.experts.base import ExpertContext

    expert = NeuralExpert.from_file(fixed_reshape_onnx(tmp_path / "fixed.onnx"), expert_id="neural.fixed",
                                    tasks=("noise",), model_id="fixed", scale=1)
    runner = expert.runner("cpu")
    calls = []
    real_run = runner.session.run
    runner.session = _Recording(runner.session, calls)
    notices = []
    expert.notify = notices.append

    with pytest.raises(ModelError, match=r"fixed.onnx: ONNX Runtime failed on a \d+x\d+ tile") as info:
        expert.run(np.full((200, 200, 3), 0.5, np.float32), ExpertContext(tile=128))

    assert len(calls) == 1 and notices == []  # no "out of memory, retrying with smaller tiles"
    assert "out of memory" not in str(info.value)
    assert real_run is not None


class _Recording:
    def __init__(self, session, calls):
        self._session, self._calls = session, calls

    def run(self, *args, **kw):
        self._calls.append(args[1][next(iter(args[1]))].shape)
        return self._session.run(*args, **kw)

    def __getattr__(self, name):
        return getattr(self._session, name)


def test_a_real_onnx_runtime_allocation_failure_halves_the_tile(tmp_path):
    """ONNX Runtime's CPU arena capped (about 1 MB): a 512 px tile cannot be allocated, 256 px can."""
    import onnxruntime as ort

    from engine.experts.base import ExpertContext
    from engine.experts.neural import NeuralExpert

    path = times_four_onnx(tmp_path / "times4.onnx")
    expert = NeuralExpert.from_file(path, expert_id="neural.t4", tasks=("noise",), model_id="t4", scale=1)
    runner = expert.runner("cpu")
    memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    ort.create_and_register_allocator(memory, ort.OrtArenaCfg(1 << 20, 1, -1, -1))
    options = ort.SessionOptions()
    options.add_session_config_entry("session.use_env_allocators", "1")  # only this session is capped
    options.log_severity_level = 4
    options.enable_mem_pattern = False  # else buffers planned for the failed size stay reserved
    runner.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    notices = []
    expert.notify = notices.append
    image = np.random.default_rng(0).random((512, 512, 3), dtype=np.float32) * 0.2

    out = expert.run(image, ExpertContext(tile=512))

    assert any("out of memory" in n.lower() for n in notices), notices
    np.testing.assert_allclose(out, image * 4, atol=1e-5)


def test_onnx_allocation_failures_are_told_from_other_errors():
    from engine.runtime.onnx_backend import is_allocation_failure

    assert is_allocation_failure(RuntimeError(
        "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running Conv node. "
        "Status Message: Failed to allocate memory for requested buffer of size 1073741824"))
    assert is_allocation_failure(RuntimeError("CUDA failure 2: out of memory ; GPU=0 ; hostname=x"))
    assert is_allocation_failure(MemoryError())
    assert not is_allocation_failure(RuntimeError(
        "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Invalid rank for input: x Got: 4 Expected: 1"))
    assert not is_allocation_failure(RuntimeError("Non-zero status code returned while running Reshape node"))


class _FailingModel(torch.nn.Module):
    def __init__(self, message: str, above: int):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)
        self.message, self.above, self.sizes = message, above, []

    def forward(self, x):
        self.sizes.append(x.shape[-1])
        if x.shape[-1] > self.above:
            raise RuntimeError(self.message)
        return x


def _torch_expert(model):
    from spandrel import ModelLoader  # noqa: F401 - spandrel is needed for a descriptor
    from spandrel.architectures.Compact import CompactArch
    from engine.experts.neural import NeuralExpert

    descriptor = CompactArch().load({k: v for k, v in _compact_state().items()})
    descriptor.model.forward = model.forward
    return NeuralExpert.from_descriptor(descriptor, expert_id="neural.fake", tasks=("noise",))


def _compact_state():
    from spandrel.architectures.Compact import Compact

    return Compact(num_feat=4, num_conv=1, upscale=1).state_dict()


def test_torch_cpu_allocation_failure_halves_the_tile():
    from engine.experts.base import ExpertContext

    model = _FailingModel("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                          "memory: you tried to allocate 1125899906842624 bytes. Error code 12", above=100)
    expert = _torch_expert(model)
    notices = []
    expert.notify = notices.append
    image = np.random.default_rng(0).random((160, 160, 3), dtype=np.float32)

    out = expert.run(image, ExpertContext(tile=160))

    assert notices and max(model.sizes) > 100 and model.sizes[-1] <= 100
    np.testing.assert_allclose(out, image, atol=1e-6)


def test_torch_error_that_is_not_memory_is_raised_at_once():
    from engine.experts.base import ExpertContext

    model = _FailingModel("mat1 and mat2 shapes cannot be multiplied (4x7 and 8x3)", above=0)
    expert = _torch_expert(model)
    with pytest.raises(ModelError, match="the model failed on a .* tile \\(mat1 and mat2"):
        expert.run(np.zeros((160, 160, 3), np.float32), ExpertContext(tile=64))
    assert len(model.sizes) == 1


# ------------------------------------------------------------------------------ item 15 (pickles)


class _System:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def test_unsafe_pickle_refusal_names_the_blocked_call_and_never_advises_weights_only_false(manager, tmp_path):
    src = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "trap": _System()}, str(src))
    with pytest.raises(ModelError) as info:
        manager.import_file(src)
    message = str(info.value)
    assert "refusing to load evil.pth: it would call" in message
    assert "posix.system" in message or "nt.system" in message
    assert "blocked that call; the file will not be loaded" in message
    assert "weights_only` set to `False" not in message and "Re-running" not in message
    assert "\n" not in message

    with open(src, "wb") as f:  # a bare pickle (not a torch zip) with the same trap
        pickle.dump(_System(), f, protocol=2)
    with pytest.raises(ModelError, match="would call .*system.*will not be loaded"):
        manager.import_file(src)


def test_an_unreadable_memo_of_verified_digests_only_costs_a_rehash(manager, tmp_path):
    _, installed = manager.import_file(identity_conv_onnx(tmp_path / "m.onnx"), tasks=["noise"])
    (tmp_path / "cache" / "verified.json").write_text("{ not json")
    assert WeightsManager().status("m") is ModelStatus.INSTALLED  # hashed again, still intact
    flip_weight_byte(installed)
    (tmp_path / "cache" / "verified.json").unlink()
    assert WeightsManager().status("m") is ModelStatus.CORRUPT
