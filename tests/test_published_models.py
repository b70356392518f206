"""Every published network Restora bundles (``tools.convert_published.BUNDLED``): the files in
models/ match the catalog and the card, the licence text is there, the safetensors hold exactly
the authors' tensors, and ONNX computes what our torch module computes from the authors' file."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from testdata import REPO, SHARED_WEIGHTS

from tools.convert_published import BUNDLED

MODELS = REPO / "models"
IDS = [m.id for m in BUNDLED]


def _model(model_id):
    return next(m for m in BUNDLED if m.id == model_id)


@pytest.mark.parametrize("model_id", IDS)
def test_bundled_files_match_catalog_card_and_licence(model_id):
    from engine.weights.manager import ModelStatus, WeightsManager

    model = _model(model_id)
    manager = WeightsManager()
    entry = manager.entry(model_id)
    (source,) = entry.sources
    onnx = REPO / source.path
    assert onnx == MODELS / f"{model_id}.onnx" and entry.license == model.license
    assert onnx.stat().st_size == entry.size_for(source) < 20 * 1024 * 1024
    assert hashlib.sha256(onnx.read_bytes()).hexdigest() == entry.sha256_for(source)
    assert manager.status(model_id) is ModelStatus.INSTALLED
    assert entry.upstream == model.url
    facts = json.loads((MODELS / "cards" / f"{model_id}.facts.json").read_text())
    card = (MODELS / "cards" / f"{model_id}.md").read_text()
    assert facts["source_sha256"] in card and model.url in card and f"models/licenses/{model.license_copy}" in card
    for f in facts["files"]:
        path = MODELS / f["file"]
        assert path.stat().st_size == f["size"] and hashlib.sha256(path.read_bytes()).hexdigest() == f["sha256"]
        assert f["sha256"] in card
    assert model.license.split("-")[0] in (MODELS / "licenses" / model.license_copy).read_text()[:200]


@pytest.mark.parametrize("model_id", IDS)
def test_bundled_onnx_and_safetensors_are_the_same_network(model_id):
    """Runs without ../shared: the bundled ONNX equals our torch module built from the bundled
    safetensors, at a size that is not the export size."""
    import onnxruntime as ort
    import torch

    from engine.convert.published import NETS, example_inputs, load_converted

    model = _model(model_id)
    net = NETS[model.architecture]
    module = load_converted(model.architecture, MODELS / f"{model_id}.safetensors")
    inputs = example_inputs(net, net.test_shape, seed=7)
    with torch.no_grad():
        ref = module(*inputs.values()).numpy()
    session = ort.InferenceSession(str(MODELS / f"{model_id}.onnx"), providers=["CPUExecutionProvider"])
    feed = {k: v.numpy() for k, v in inputs.items()}
    got = net.onnx_forward(session, feed) if net.onnx_forward else session.run(None, feed)[0]
    assert got.shape == ref.shape and np.abs(ref - got).max() < 1e-4


@pytest.mark.parametrize("model_id", IDS)
def test_published_file_loads_strictly_and_equals_the_bundled_tensors(model_id):
    import torch
    from safetensors.torch import load_file

    from engine.convert.published import NETS, read_published

    model = _model(model_id)
    source = SHARED_WEIGHTS / model.source
    if not source.is_file():
        pytest.skip("../shared/weights is not present")
    facts = json.loads((MODELS / "cards" / f"{model_id}.facts.json").read_text())
    assert hashlib.sha256(source.read_bytes()).hexdigest() == facts["source_sha256"]
    state = read_published(source)
    module = NETS[model.architecture].build(state)
    ours = module.state_dict()
    assert set(ours) == set(state) and all(ours[k].shape == state[k].shape for k in state)
    bundled = load_file(str(MODELS / f"{model_id}.safetensors"))
    assert set(bundled) == set(state) and all(torch.equal(bundled[k], state[k]) for k in state)
    first = next(iter(state))
    with pytest.raises(RuntimeError):
        NETS[model.architecture].build({**state, "unused.weight": torch.zeros(1), first: state[first]})
