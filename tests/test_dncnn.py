"""DnCNN: the MatConvNet v7.3 reader (checked against KAIR's PyTorch copy of the same network),
CDnCNN-B as a blind colour denoiser, DnCNN-3 on the luma of colour JPEGs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from testdata import REPO, SHARED_DATA, SHARED_WEIGHTS

MODELS = REPO / "models"
GD_COLOR_MAT = SHARED_WEIGHTS / "dncnn" / "GD_Color_Blind.mat"
DNCNN3_MAT = SHARED_WEIGHTS / "dncnn" / "DnCNN3.mat"
KAIR_PTH = SHARED_WEIGHTS / "kair" / "dncnn_color_blind.pth"

needs_weights = pytest.mark.skipif(not GD_COLOR_MAT.is_file(), reason="../shared/weights is not present")
needs_data = pytest.mark.skipif(not (SHARED_DATA / "clean").is_dir(), reason="../shared/data is not present")


def _val_crops(n: int, size: int) -> list[np.ndarray]:
    from training.data import load_split, load_uint8, to_float

    _, val = load_split(SHARED_DATA / "clean")
    out = []
    for path in val[:n]:
        img = to_float(load_uint8(path))
        y, x = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        out.append(np.ascontiguousarray(img[y:y + size, x:x + size]))
    return out


def _psnr(a, b):
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def _jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((x * 255 + 0.5).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"), np.float32) / 255


@needs_weights
def test_matconvnet_reader_gives_exactly_kairs_tensors():
    """GD_Color_Blind.mat (MATLAB v7.3, column-major H x W x in x out) read and transposed
    equals KAIR's dncnn_color_blind.pth tensor for tensor, bit for bit."""
    import torch

    from engine.convert.matconvnet import read_simplenn, simplenn_state_dict

    layers = read_simplenn(GD_COLOR_MAT)
    assert [layer.type for layer in layers] == ["conv", "relu"] * 19 + ["conv"]
    ours = simplenn_state_dict(layers)
    kair = torch.load(KAIR_PTH, map_location="cpu", weights_only=True)
    assert set(ours) == set(kair)
    for k in kair:
        assert ours[k].shape == kair[k].shape and torch.equal(ours[k], kair[k]), k


@needs_weights
def test_dncnn3_mat_converts_to_safetensors_and_loads_strictly(tmp_path):
    from safetensors.torch import load_file

    from engine.convert.matconvnet import convert_mat
    from engine.nets.dncnn import load_published

    out = convert_mat(DNCNN3_MAT, tmp_path / "dncnn3.safetensors")
    state = load_file(str(out))
    net = load_published(state)
    assert set(net.state_dict()) == set(state) and len(state) == 40
    assert tuple(state["model.0.weight"].shape) == (64, 1, 3, 3)
    assert tuple(state["model.38.weight"].shape) == (1, 64, 3, 3)
    assert sum(p.numel() for p in net.parameters()) == 665_921
    assert [p.name for p in tmp_path.iterdir()] == ["dncnn3.safetensors"]  # no temporary left


def test_a_file_that_is_not_hdf5_is_refused_in_one_line(tmp_path):
    from engine.convert.matconvnet import read_simplenn
    from engine.errors import ModelError

    bad = tmp_path / "old.mat"
    bad.write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    with pytest.raises(ModelError, match="not a MATLAB v7.3"):
        read_simplenn(bad)


@needs_data
def test_bundled_cdncnn_b_removes_unknown_gaussian_noise():
    """Blind: not told σ. Measured on these three 160-px validation crops, AWGN σ 25:
    +9.25 dB mean, 7.2 … 11.0 (the bundled FFDNet told the true σ: +9.16 dB)."""
    from engine.experts.base import ExpertContext
    from engine.experts.neural import NeuralExpert

    expert = NeuralExpert.from_file(MODELS / "dncnn-color-blind.onnx", expert_id="cdncnn", tasks=("noise",),
                                    model_id="dncnn-color-blind", scale=1, architecture="DnCNN", threads=1)
    rng = np.random.default_rng(11)
    gains = []
    for clean in _val_crops(3, 160):
        noisy = np.clip(clean + rng.normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)
        gains.append(_psnr(expert.run(noisy, ExpertContext()), clean) - _psnr(noisy, clean))
    assert np.mean(gains) > 7.0, gains


@needs_weights
@needs_data
def test_dncnn3_on_luma_deblocks_a_colour_jpeg_and_keeps_its_chroma(tmp_path):
    """JPEG q10: luma PSNR rises (measured +1.1 dB on Y, +0.7 dB RGB on four 256-px validation
    crops); chroma is the decoded chroma, untouched."""
    import shutil

    from engine.experts.base import ExpertContext
    from engine.experts.published import LumaDnCNNExpert, to_ycbcr

    mat = tmp_path / "DnCNN3.mat"
    shutil.copyfile(DNCNN3_MAT, mat)
    expert = LumaDnCNNExpert(mat, model_id="dncnn3", threads=1)
    gains = []
    for clean in _val_crops(3, 160):
        jpeg = _jpeg(clean, 10)
        out = expert.run(jpeg, ExpertContext())
        ycc_in, ycc_out, ycc_clean = to_ycbcr(jpeg), to_ycbcr(out), to_ycbcr(clean)
        gains.append(_psnr(ycc_out[..., 0], ycc_clean[..., 0]) - _psnr(ycc_in[..., 0], ycc_clean[..., 0]))
        inside = (out > 0.002).all(axis=2) & (out < 0.998).all(axis=2)  # where clipping did not touch it
        assert np.abs(ycc_out[..., 1:] - ycc_in[..., 1:])[inside].max() < 1e-4
    assert np.mean(gains) > 0.5, gains
    assert (tmp_path / "DnCNN3.safetensors").is_file()  # converted once, next to the download


@needs_weights
@needs_data
def test_dncnn3_download_verify_convert_load_restore(tmp_path, monkeypatch):
    """The catalog's DnCNN-3 entry end to end against a local server speaking GitHub's protocol:
    download (size + sha256 verified, renamed into the cache), listed without a licence, built
    into the luma expert, converted from .mat to safetensors on first use, and it deblocks."""
    from urlserver import UrlServer

    from engine.experts.base import ExpertContext
    from engine.experts.neural import experts_for_installed_models
    from engine.experts.published import to_ycbcr
    from engine.weights.manager import ModelStatus, WeightsManager

    monkeypatch.setenv("RESTORA_CACHE_DIR", str(tmp_path / "cache"))
    with UrlServer() as server:
        manager = WeightsManager(url_mirror=server.url)
        entry = manager.entry("dncnn3")
        assert entry.license == "none stated" and entry.format == "mat"
        assert manager.status("dncnn3") is ModelStatus.NOT_INSTALLED
        (source,) = entry.sources
        server.add_url(source.url, DNCNN3_MAT)
        installed = manager.download("dncnn3")
    assert installed.name == "DnCNN3.mat" and manager.status("dncnn3") is ModelStatus.INSTALLED
    (expert,) = [e for e in experts_for_installed_models(manager) if e.info.model_id == "dncnn3"]
    assert expert.info.tasks == ("jpeg",) and expert.is_available()
    clean = _val_crops(1, 160)[0]
    jpeg = _jpeg(clean, 10)
    out = expert.run(jpeg, ExpertContext())
    y = lambda a: to_ycbcr(a)[..., 0]  # noqa: E731
    assert _psnr(y(out), y(clean)) - _psnr(y(jpeg), y(clean)) > 0.5
    assert (installed.parent / "DnCNN3.safetensors").is_file()
    assert [v.ok for v in manager.verify("dncnn3")] == [True]
