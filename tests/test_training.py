"""Training code: data pipeline invariants and tiny resumable smoke runs of both training scripts."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.kinds import KINDS
from training import data as tdata
from training.common import load_checkpoint, save_checkpoint

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clean"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="shared/data/clean is not available")


def test_split_is_by_image_deterministic_and_about_ten_percent():
    paths = tdata.list_images(DATA)
    train, val = tdata.split(paths)
    assert set(train).isdisjoint(val)
    assert len(train) + len(val) == len(paths)
    assert 0.05 < len(val) / len(paths) < 0.15
    # the split depends only on the file name, not on the folder or the order of the list
    assert sorted(tdata.split(list(reversed(paths)))[1]) == sorted(val)
    assert all(tdata.is_validation(Path("/elsewhere") / p.name) for p in val)


def test_recipes_follow_physical_order_and_labels_match():
    sampler = tdata.RecipeSampler()
    rng = np.random.default_rng(3)
    seen_sizes = set()
    for _ in range(300):
        recipe = sampler.sample(rng)
        seen_sizes.add(len(recipe))
        ranks = [tdata.PHYSICAL_RANK[k] for k, _ in recipe]
        assert ranks == sorted(ranks)
        assert all(sampler.min_strength <= s <= sampler.max_strength for _, s in recipe)
        presence, severity = tdata.labels(recipe)
        assert set(np.flatnonzero(presence)) == {KINDS.index(k) for k, _ in recipe}
        assert np.all((severity > 0) == (presence > 0))
    assert seen_sizes == {0, 1, 2, 3}


def test_crop_pool_is_deterministic_and_degrades():
    train, _ = tdata.load_split(DATA, limit=2)
    images = [tdata.load_uint8(p) for p in train]
    a = tdata.CropPool(images, 8, 64)
    b = tdata.CropPool(images, 8, 64)
    a.refresh(5)
    b.refresh(5)
    assert np.array_equal(a.degraded, b.degraded) and np.array_equal(a.presence, b.presence)
    degraded = a.presence.sum(1) > 0
    diff = np.abs(a.degraded.astype(int) - a.clean.astype(int)).mean(axis=(1, 2, 3))
    assert np.all(diff[degraded] > 0) and np.all(diff[~degraded] == 0)
    deg, clean, _, _ = a.batch(np.arange(4), np.random.default_rng(0))
    assert deg.shape == clean.shape == (4, 3, 64, 64) and deg.dtype == np.float32


@pytest.fixture
def keep_torch_threads():
    """The training scripts set torch's thread count; give the rest of the test session its own back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_generalist_training_smoke_resumes(tmp_path, keep_torch_threads):
    from training import train_generalist

    args = ["--data", str(DATA), "--out", str(tmp_path), "--limit", "2", "--pool", "8", "--batch", "2",
            "--crop", "64", "--val-every", "2", "--ckpt-every", "2", "--refresh-every", "100"]
    assert train_generalist.main(args + ["--steps", "2"]) == 0
    first = load_checkpoint(tmp_path / "last.pt")
    assert first["step"] == 2
    assert train_generalist.main(args + ["--steps", "4"]) == 0
    second = load_checkpoint(tmp_path / "last.pt")
    assert second["step"] == 4
    assert not all(torch.equal(first["model"][k], second["model"][k]) for k in first["model"])
    rows = _rows(tmp_path / "log.csv")
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert all(np.isfinite(float(r["val_psnr"])) for r in rows)


def test_conditioned_generalist_training_smoke(tmp_path, keep_torch_threads):
    """v2's recipe: start from saved weights (the FiLM head is new and starts at zero, so the first
    forward pass equals the saved model's), half the samples told what the analysis finds."""
    from safetensors.torch import save_file

    from engine.nets.generalist import GeneralistConfig, RestoraGeneralist, init_from, load_generalist
    from training import train_generalist

    plain = RestoraGeneralist(GeneralistConfig())
    torch.nn.init.normal_(plain.outro.weight, std=0.01)
    save_file({k: v.contiguous() for k, v in plain.state_dict().items()}, str(tmp_path / "v1.safetensors"))
    conditioned = RestoraGeneralist(GeneralistConfig(cond_dim=6))
    init_from(conditioned, tmp_path / "v1.safetensors")
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(conditioned(x, torch.rand(1, 6)), load_generalist(tmp_path / "v1.safetensors")(x))

    out = tmp_path / "run"
    args = ["--data", str(DATA), "--out", str(out), "--limit", "2", "--pool", "8", "--batch", "2", "--crop", "64",
            "--val-every", "2", "--refresh-every", "100", "--steps", "2", "--condition", "--p-analysed", "0.5",
            "--init", str(tmp_path / "v1.safetensors")]
    assert train_generalist.main(args) == 0
    (row,) = _rows(out / "log.csv")
    assert np.isfinite(float(row["val_psnr"])) and np.isfinite(float(row["val_psnr_analysed"]))
    assert load_checkpoint(out / "last.pt")["config"]["cond_dim"] == 6


def test_analyser_training_smoke_resumes(tmp_path, keep_torch_threads):
    from training import train_analyser

    args = ["--data", str(DATA), "--out", str(tmp_path), "--limit", "2", "--pool", "8", "--batch", "4",
            "--val-every", "1", "--ckpt-every", "1", "--refresh-every", "100"]
    assert train_analyser.main(args + ["--steps", "1"]) == 0
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 1
    assert train_analyser.main(args + ["--steps", "2"]) == 0
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 2
    rows = _rows(tmp_path / "log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert all(0.0 <= float(r[f"f1_{k}"]) <= 1.0 for r in rows for k in KINDS)


def test_realistic_degradation_labels_camera_noise_by_its_measured_level():
    """Through the camera pipeline, a strong noise step is labelled present with a severity from the
    measured noise; a recipe without noise still gets the camera's processing and no noise label."""
    y, x = np.mgrid[0:96, 0:96].astype(np.float32)
    photo = np.stack([0.2 + 0.6 * x / 96, 0.3 + 0.4 * y / 96, np.full_like(x, 0.5)], axis=2)
    noisy, presence, severity = tdata.degrade_realistic(photo, [("noise", 0.9)], seed=3, p_camera=1.0)
    i = KINDS.index("noise")
    assert noisy.shape == photo.shape and presence[i] == 1.0 and 0.15 <= severity[i] <= 1.0
    processed, presence, severity = tdata.degrade_realistic(photo, [], seed=3, p_camera=1.0)
    assert not presence.any() and not severity.any()
    assert np.abs(processed - photo).mean() < np.abs(noisy - photo).mean()
    _, _, strong = tdata.degrade_realistic(photo, [("noise", 0.9)], seed=3, p_camera=1.0)
    _, _, faint = tdata.degrade_realistic(photo, [("noise", 0.05)], seed=3, p_camera=1.0)
    assert faint[i] < strong[i]


def test_frozen_trunk_tail_equals_the_full_network():
    """--freeze trains on cached outputs of the first layers: tail(trunk(x)) must be forward(x)."""
    from engine.nets.analyser import RestoraAnalyser
    from training.train_analyser import _input_stats, _tail, _trunk_cache

    torch.manual_seed(0)
    model = RestoraAnalyser().eval()
    x = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    cache = _trunk_cache(model, 5, x)
    with torch.no_grad():
        got = _tail(model, 5, torch.from_numpy(cache["feats"]).float(), torch.from_numpy(cache["xstats"]))
        want = model(torch.from_numpy(x))
    assert torch.allclose(got, want, atol=2e-2)
    assert torch.allclose(_input_stats(torch.from_numpy(x))[:, :3], torch.from_numpy(x).mean(dim=(2, 3)))


class _RunsOnLoad:
    """A pickled object that would call ``print`` when unpickled."""

    def __reduce__(self):
        return (print, ("unpickled",))


def test_checkpoints_hold_plain_data_and_refuse_code(tmp_path):
    save_checkpoint(tmp_path / "ok.pt", {"step": np.int64(3), "best": np.float32(0.5),
                                         "args": {"data": tmp_path, "sizes": (1, 2)}, "w": torch.ones(2)})
    ckpt = load_checkpoint(tmp_path / "ok.pt")
    assert ckpt["step"] == 3 and type(ckpt["step"]) is int and ckpt["best"] == 0.5
    assert ckpt["args"] == {"data": str(tmp_path), "sizes": (1, 2)}
    torch.save({"evil": _RunsOnLoad()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        load_checkpoint(tmp_path / "evil.pt")
    assert load_checkpoint(tmp_path / "missing.pt") is None
