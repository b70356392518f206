"""Folding two analysers that share their first layers into one model (training/fuse_analyser.py)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def _pair():
    from engine.nets.analyser import RestoraAnalyser

    torch.manual_seed(0)
    main, branch = RestoraAnalyser(), RestoraAnalyser()
    for m in (main, branch):  # non-trivial BatchNorm statistics
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
    stem = {k: v for k, v in main.state_dict().items() if k.startswith("features.") and int(k.split(".")[1]) < 5}
    branch.load_state_dict(branch.state_dict() | stem)
    return main.eval(), branch.eval()


def test_fused_model_reproduces_the_two_model_combination(tmp_path):
    from engine.nets.analyser import load_analyser
    from training.export import save_safetensors
    from training.fuse_analyser import combination_diff, fuse

    main, branch = _pair()
    fused = fuse(main, branch, ("blur", "haze"), 5)
    x = torch.rand(3, 3, 96, 128, generator=torch.Generator().manual_seed(3))
    assert combination_diff(fused, main, branch, ("blur", "haze"), x) < 1e-6
    with torch.no_grad():
        assert not torch.allclose(fused(x), main(x))  # the branch does answer for its kinds
    path = tmp_path / "fused.safetensors"
    save_safetensors(fused, path, {"architecture": "RestoraAnalyser"} | fused.metadata())
    again = load_analyser(path)
    assert again.branch_kinds == ("blur", "haze")
    with torch.no_grad():
        assert torch.equal(again(x), fused(x))


def test_models_with_different_stems_are_refused():
    from engine.nets.analyser import RestoraAnalyser
    from training.fuse_analyser import fuse

    main, _ = _pair()
    with pytest.raises(ValueError):
        fuse(main, RestoraAnalyser().eval(), ("blur",), 5)
