"""The realistic-mixture sampler and the resumable generalist fine-tuning (training/realistic.py,
training/finetune_generalist.py): deterministic for a seed, resume continues exactly,
checkpoints are safetensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from engine.degrade.blur import convolve_linear, gaussian_kernel, shake_kernel  # noqa: E402
from engine.degrade.weather import rain_layers, varied_depth  # noqa: E402
from engine.kinds import KINDS  # noqa: E402
from training.data import RecipeSampler, is_validation  # noqa: E402
from training.realistic import RealisticSampler, degrade_realistic_mix  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
INIT = REPO / "models" / "restora-generalist-v2.safetensors"


def _photo(seed: int, h: int = 80, w: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.random((6, 6, 3)).astype(np.float32)
    import cv2

    img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 0.03, img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


def test_kernels_are_normalised_and_seeded():
    a = shake_kernel(15, np.random.default_rng(3))
    b = shake_kernel(15, np.random.default_rng(3))
    c = shake_kernel(15, np.random.default_rng(4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert abs(a.sum() - 1) < 1e-5 and a.min() >= 0
    assert a.shape[0] % 2 == 1 and a.shape[0] >= 15
    # the trajectory is spread, not a point: its support spans most of the extent
    ys, xs = np.nonzero(a > a.max() * 0.05)
    assert max(np.ptp(ys), np.ptp(xs)) >= 10
    g = gaussian_kernel(2.0)
    assert abs(g.sum() - 1) < 1e-5 and g.shape == (13, 13)
    img = _photo(0)
    out = convolve_linear(img, g)
    assert out.shape == img.shape and out.dtype == np.float32
    assert np.abs(np.diff(out, axis=1)).mean() < np.abs(np.diff(img, axis=1)).mean()


def test_weather_generators_are_seeded():
    img = _photo(1)
    d1, d2 = varied_depth(img, np.random.default_rng(5)), varied_depth(img, np.random.default_rng(5))
    assert np.array_equal(d1, d2) and d1.min() >= 0 and d1.max() <= 1
    r1, r2 = rain_layers(img, 0.7, np.random.default_rng(6)), rain_layers(img, 0.7, np.random.default_rng(6))
    assert np.array_equal(r1, r2)
    assert r1.mean() > img.mean()  # bright streaks and a veil
    assert np.array_equal(rain_layers(img, 0.0, np.random.default_rng(6)), img)


@pytest.mark.parametrize("recipe", [[(k, 0.6)] for k in KINDS] + [[("haze", 0.4), ("blur", 0.4), ("noise", 0.5),
                                                                   ("jpeg", 0.4)]])
def test_realistic_mix_is_deterministic_for_a_seed(recipe):
    img = _photo(2)
    a, pa, sa = degrade_realistic_mix(img, recipe, seed=17)
    b, pb, sb = degrade_realistic_mix(img, recipe, seed=17)
    c, _, _ = degrade_realistic_mix(img, recipe, seed=18)
    assert np.array_equal(a, b) and np.array_equal(pa, pb) and np.array_equal(sa, sb)
    assert not np.array_equal(a, c)
    assert a.shape == img.shape and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    assert np.abs(a - img).mean() > 1e-3  # it degrades
    for kind, s in recipe:
        if kind != "noise":  # camera noise is labelled by its measured level
            assert sa[KINDS.index(kind)] == pytest.approx(s)


def test_sampler_pool_is_deterministic():
    img = (_photo(3, 96, 128) * 255).astype(np.uint8)
    from training.data import CropPool

    sampler = RealisticSampler()
    pools = []
    for _ in range(2):
        pool = CropPool([img], 12, 32, sampler=RecipeSampler(), crops_per_image=4, align=8, degrade=sampler)
        pool.refresh(42)
        pools.append(pool)
    assert np.array_equal(pools[0].degraded, pools[1].degraded)
    assert np.array_equal(pools[0].severity, pools[1].severity)
    pools[1].refresh(43)
    assert not np.array_equal(pools[0].degraded, pools[1].degraded)


def test_clean_recipe_is_identity():
    img = _photo(4)
    out, presence, severity = degrade_realistic_mix(img, [], seed=1)
    assert np.array_equal(out, img) and presence.sum() == 0 and severity.sum() == 0


@pytest.fixture()
def photo_folder(tmp_path: Path) -> Path:
    """Six training photos and one validation photo (by the file-name hash split)."""
    from PIL import Image

    folder = tmp_path / "clean"
    folder.mkdir()
    train = val = 0
    i = 0
    while train < 6 or val < 1:
        name = f"photo_{i:03d}.png"
        v = is_validation(name)
        if (v and val < 1) or (not v and train < 6):
            Image.fromarray((_photo(i, 144, 160) * 255).astype(np.uint8)).save(folder / name)
            val += v
            train += not v
        i += 1
    return folder


def _run(folder: Path, out: Path, max_steps: int) -> None:
    from training.finetune_generalist import main

    assert main(["--data", str(folder), "--out", str(out), "--init", str(INIT), "--steps", "6",
                 "--max-steps", str(max_steps), "--batch", "2", "--crop", "32", "--pool", "16",
                 "--crops-per-image", "4", "--refresh-every", "4", "--val-every", "3", "--warmup", "2",
                 "--no-analysis"]) == 0


@pytest.mark.skipif(not INIT.exists(), reason="bundled generalist weights not present")
def test_resume_continues_with_identical_state(photo_folder, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    from engine.nets.generalist import load_generalist
    from training.finetune_generalist import load_state

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _run(photo_folder, straight, 6)
    _run(photo_folder, resumed, 3)
    meta, _ = load_state(resumed / "last.safetensors")
    assert meta["step"] == 3
    _run(photo_folder, resumed, 6)
    a, b = load_file(str(straight / "last.safetensors")), load_file(str(resumed / "last.safetensors"))
    assert a.keys() == b.keys()
    assert any(k.startswith("opt/") for k in a) and any(k.startswith("model/") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    with safe_open(str(resumed / "last.safetensors"), framework="pt") as f:
        assert f.metadata()["restora"]
    assert load_state(resumed / "last.safetensors")[0]["step"] == 6
    # the log continues (step 0 = the starting model, then every 3 steps) and matches the straight run
    log_a = (straight / "log.csv").read_text().splitlines()
    log_b = (resumed / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in log_b[1:]] == ["0", "3", "6"]
    strip = [lambda r: [c for i, c in enumerate(r.split(",")) if i not in (2, 3)]][0]  # drop wall/CPU minutes
    assert [strip(r) for r in log_a] == [strip(r) for r in log_b]
    # every checkpoint is safetensors (no pickle anywhere in the run folder) and the best loads as a model
    assert not [p for p in resumed.iterdir() if p.suffix in (".pt", ".pth", ".pkl", ".ckpt")]
    model = load_generalist(resumed / "best.safetensors")
    assert model.config.cond_dim == len(KINDS)
    from training.finetune_generalist import main

    assert main(["--out", str(resumed), "--report", str(tmp_path / "curve.md")]) == 0
    curve = (tmp_path / "curve.md").read_text().splitlines()
    assert [line.split("|")[1].strip() for line in curve[2:]] == ["input", "0", "3", "6"]
