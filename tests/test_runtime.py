"""Device choice and the torch / ONNX Runtime backends of the neural runtime."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import RestoraError
from engine.runtime import device as devices
from engine.runtime.tiling import FixedTiles, TileOutOfMemory, run_tiled

torch = pytest.importorskip("torch")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(devices, "gpu_possible", lambda: True)
    monkeypatch.setattr(devices, "cuda_available", lambda: False)
    monkeypatch.setattr(devices, "mps_available", lambda: False)
    assert devices.choose_device("auto") == "cpu"
    monkeypatch.setattr(devices, "mps_available", lambda: True)
    assert devices.choose_device("auto") == "mps"
    monkeypatch.setattr(devices, "cuda_available", lambda: True)
    assert devices.choose_device("auto") == "cuda"
    assert devices.choose_device("CPU") == "cpu"


def test_auto_without_a_gpu_driver_never_asks_torch(monkeypatch):
    monkeypatch.setattr(devices, "gpu_possible", lambda: False)
    monkeypatch.setattr(devices, "cuda_available", lambda: pytest.fail("torch was asked"))
    assert devices.choose_device("auto") == "cpu"


def test_unavailable_or_unknown_device_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(devices, "cuda_available", lambda: False)
    monkeypatch.setattr(devices, "mps_available", lambda: False)
    with pytest.raises(RestoraError, match="'cuda' was requested"):
        devices.choose_device("cuda")
    with pytest.raises(RestoraError, match="MPS"):
        devices.choose_device("mps")
    with pytest.raises(RestoraError, match="unknown device 'tpu'"):
        devices.choose_device("tpu")


def test_cpu_memory_and_precision():
    assert devices.free_memory("cpu") > 0
    assert not devices.supports_fp16("cpu")


def test_cpu_free_memory_fallback(monkeypatch):
    monkeypatch.setattr(devices, "meminfo_available", lambda: None)
    monkeypatch.delattr(devices.os, "sysconf", raising=False)
    assert devices.cpu_free_memory() == devices.FALLBACK_FREE_BYTES


def tiny_compact(scale=2):
    from spandrel import ModelLoader
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    return ModelLoader().load_from_state_dict(Compact(num_feat=8, num_conv=2, upscale=scale).state_dict())


def test_torch_runner_matches_model_and_clamps():
    from engine.runtime.torch_backend import TorchRunner

    desc = tiny_compact(2)
    runner = TorchRunner(desc, "cpu")
    assert not runner.fp16 and not runner.channels_last
    x = np.random.default_rng(0).random((1, 3, 11, 13), dtype=np.float32)
    y = runner(x)
    assert y.shape == (1, 3, 22, 26) and y.dtype == np.float32
    with torch.inference_mode():
        ref = desc.model(torch.from_numpy(x)).clamp(0, 1).numpy()
    np.testing.assert_allclose(y, ref, atol=1e-6)


def test_load_image_model_roundtrip_and_refusals(tmp_path):
    from safetensors.torch import save_file

    from engine.errors import ModelError
    from engine.runtime.torch_backend import load_image_model

    desc = tiny_compact(4)
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in desc.model.state_dict().items()}, str(path))
    loaded = load_image_model(path)
    assert loaded.scale == 4 and loaded.architecture.id == "Compact"
    bogus = tmp_path / "bogus.safetensors"
    save_file({"nothing.weight": torch.zeros(2)}, str(bogus))
    with pytest.raises(ModelError):
        load_image_model(bogus)
    with pytest.raises(ModelError, match="not found"):
        load_image_model(tmp_path / "missing.pth")


def save_onnx(graph, path):
    """Check and save an ONNX graph as an opset-17 model; returns ``path``."""
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def conv_onnx(path, channels=3, scale_by=2.0):
    """A one-convolution ONNX model (3x3 box blur times ``scale_by``) with dynamic H and W."""
    from onnx import TensorProto, helper, numpy_helper

    weight = np.zeros((channels, channels, 3, 3), dtype=np.float32)
    for c in range(channels):
        weight[c, c] = scale_by / 9.0
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "blur",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, "h", "w"])],
        initializer=[numpy_helper.from_array(weight, "w")])
    return save_onnx(graph, path)


def test_onnx_runner_tiled_equals_whole(tmp_path):
    from engine.runtime.onnx_backend import OnnxRunner, choose_providers

    runner = OnnxRunner(conv_onnx(tmp_path / "blur.onnx"), "cpu", threads=1)
    assert runner.providers[-1] == "CPUExecutionProvider"
    img = np.random.default_rng(2).random((45, 70, 3), dtype=np.float32)
    whole = runner(np.ascontiguousarray(img.transpose(2, 0, 1)[None]))[0].transpose(1, 2, 0)
    tiled = run_tiled(img, runner, overlap=1, strategy=FixedTiles(16))
    assert np.abs(tiled - whole).max() < 1e-5
    assert choose_providers("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("cuda", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers("mps", ["CoreMLExecutionProvider", "CPUExecutionProvider"])[0] == "CoreMLExecutionProvider"


def test_onnx_runtime_failure_becomes_tile_oom(tmp_path, monkeypatch):
    from engine.runtime import onnx_backend

    runner = onnx_backend.OnnxRunner(conv_onnx(tmp_path / "blur.onnx"), "cpu", threads=1)
    error_type = onnx_backend.runtime_error_types()[0]

    class FailingSession:
        def run(self, *args, **kwargs):
            raise error_type("Failed to allocate memory for requested buffer")

    monkeypatch.setattr(runner, "session", FailingSession())
    with pytest.raises(TileOutOfMemory):
        runner(np.zeros((1, 3, 8, 8), dtype=np.float32))


def test_onnx_bad_file_is_a_model_error(tmp_path):
    from engine.errors import ModelError
    from engine.runtime.onnx_backend import OnnxRunner

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="bad.onnx"):
        OnnxRunner(bad)


def conditioned_onnx(path):
    """A 'conditioned generalist': y = x + 0.1 · Σ strengths (a per-image constant), N x 3 x h x w."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("ReduceSum", ["strengths", "axes"], ["total"], keepdims=1),
             helper.make_node("Mul", ["total", "tenth"], ["shift"]),
             helper.make_node("Reshape", ["shift", "shape"], ["shift4"]),
             helper.make_node("Add", ["x", "shift4"], ["y"])]
    graph = helper.make_graph(
        nodes, "conditioned",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"]),
         helper.make_tensor_value_info("strengths", TensorProto.FLOAT, ["n", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        initializer=[numpy_helper.from_array(np.array([1], np.int64), "axes"),
                     numpy_helper.from_array(np.array(0.1, np.float32), "tenth"),
                     numpy_helper.from_array(np.array([-1, 1, 1, 1], np.int64), "shape")])
    return save_onnx(graph, path)


def test_a_conditioned_onnx_model_gets_the_strengths_of_the_context(tmp_path):
    from engine.errors import ModelError
    from engine.experts.base import ExpertContext
    from engine.experts.neural import NeuralExpert
    from engine.runtime.onnx_backend import OnnxRunner

    path = conditioned_onnx(tmp_path / "cond.onnx")
    runner = OnnxRunner(path, threads=1)
    assert runner.conditioned
    with pytest.raises(ModelError, match="strengths"):
        runner(np.zeros((1, 3, 8, 8), np.float32))
    expert = NeuralExpert.from_file(path, expert_id="neural.cond", tasks=("generalist",), model_id="cond", scale=1,
                                    conditioned=True)  # declared, as the catalog entry does
    img = np.full((40, 50, 3), 0.2, np.float32)
    # tiled (16-px tiles): every tile gets the same strengths; kinds not named count 0, values clip to [0, 1]
    out = expert.run(img, ExpertContext(strengths={"noise": 0.5, "haze": 2.0, "nonsense": 1.0}, tile=16))
    assert np.allclose(out, 0.2 + 0.1 * 1.5, atol=1e-6)
    assert np.allclose(expert.run(img, ExpertContext(tile=16)), img)
