"""Neural networks as experts: spandrel (torch) or ONNX models run tiled on the chosen device.

* :class:`NeuralExpert` wraps one model file (or an already loaded spandrel descriptor). Its
  :class:`ExpertInfo` is declared once and never changes: from the model for a loaded
  descriptor, from the catalog entry for a file (loaded on the first run, so that building a
  registry costs nothing). Loading checks the declaration (scale, per-kind conditioning) and
  refuses a model that contradicts it; what only the loaded model can tell (its exact size
  multiple, receptive field and memory use per pixel) is kept with the loaded runner and given
  to the tiler, not written back into the description.
* :class:`DownscaledExpert` runs an upscaling model and reduces each tile's output with an
  area (box) filter, e.g. a 4x model as a 2x upscaler or as a 1x restorer. The reduction is per
  tile, so memory stays bounded by the tile size; for integer factors the box filter of a tile
  equals the box filter of the whole image.
* :class:`RealESRGANGeneralist` is Real-ESRGAN x4plus used as a 1x generative generalist.
* :func:`experts_for_installed_models` builds the experts for what the weights manager has.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from ..errors import ModelError
from ..kinds import ANALYSIS, FACE, GENERALIST, KINDS, UPSCALE
from .base import Backend, Expert, ExpertContext, ExpertInfo

log = logging.getLogger(__name__)

#: Context pixels each tile needs per spandrel architecture id (input pixels); deep CNNs and
#: window transformers see far, but past these distances their influence is below 8-bit steps.
ARCH_OVERLAP: dict[str, int] = {
    "ESRGAN": 16, "Compact": 16, "SPAN": 16, "DRUNet": 32, "SCUNet": 32, "NAFNet": 32,
    "SwinIR": 32, "Swin2SR": 32, "HAT": 32, "DAT": 32, "ATD": 32, "Restormer": 32,
    # Restora's own U-Net: three stride-2 levels of 3x3 depthwise blocks; 16 px left visible seams
    "RestoraGeneralist": 48,
    # published plain CNNs converted by engine.convert.published: their exact receptive fields
    "DnCNN": 20,
}
DEFAULT_OVERLAP = 16

#: Live float32 feature tensors assumed at the widest layer, for the memory estimate.
LIVE_TENSORS = 4

#: Tile edge caps (input pixels) for automatic tiling: on the CPU larger tiles only cost memory.
MAX_TILE = {"cpu": 512, "cuda": 2048, "mps": 1024}

TORCH_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")
ONNX_SUFFIXES = (".onnx",)


def estimate_memory_factor(descriptor: Any) -> float:
    """Rough peak bytes per input pixel of a spandrel model in float32: ``LIVE_TENSORS`` tensors
    as wide as its widest convolution at output resolution. The out-of-memory fallback of the
    tiler catches underestimates."""
    import torch

    widest = max((m.out_channels for m in descriptor.model.modules() if isinstance(m, torch.nn.Conv2d)),
                 default=64)
    return float(4 * LIVE_TENSORS * widest * max(int(descriptor.scale), 1) ** 2)


def info_from_descriptor(descriptor: Any, *, expert_id: str, tasks: Sequence[str], model_id: Optional[str],
                         name: Optional[str] = None, generative: bool = False, description: str = "") -> ExpertInfo:
    """An :class:`ExpertInfo` describing a spandrel ``ImageModelDescriptor``."""
    arch = str(descriptor.architecture.id)
    return ExpertInfo(
        id=expert_id, name=name or f"{descriptor.architecture.name} ({model_id or expert_id})",
        tasks=tuple(tasks), backend=Backend.TORCH, scale=int(descriptor.scale),
        size_multiple=int(descriptor.size_requirements.multiple_of),
        tile_overlap=ARCH_OVERLAP.get(arch, DEFAULT_OVERLAP), memory_factor=estimate_memory_factor(descriptor),
        generative=generative, model_id=model_id, description=description)


class NeuralExpert(Expert):
    """A torch (spandrel) or ONNX model run through the tiler.

    Build it with :meth:`from_descriptor` (model already loaded) or :meth:`from_file` (loaded on
    the first :meth:`run`). ``run`` takes float32 HxWx3 in [0, 1] and returns float32
    ``(H*scale)x(W*scale)x3`` clipped to [0, 1]; ``ctx.device`` picks the device (the model moves
    when it changes) and ``ctx.tile`` fixes the tile edge (``None``: from free memory).
    ``notify`` receives user-facing messages such as "out of memory … retrying with smaller tiles".
    ``threads``: ONNX Runtime intra-op threads (``None``: its default, one per core).
    ``verify``: called right before the file is loaded; raises :class:`ModelError` when the file
    no longer matches its sha256 (the weights manager's ``check_intact``), so a damaged file is
    never run.
    An ONNX model with a second input ``strengths`` is a conditioned generalist: each run passes
    ``ctx.strengths`` to it (see :func:`strength_vector`).
    """

    def __init__(self, info: ExpertInfo, *, path: Optional[Path] = None, descriptor: Any = None,
                 device: str = "cpu", minimum_size: int = 0,
                 notify: Optional[Callable[[str], None]] = None, threads: Optional[int] = None,
                 verify: Optional[Callable[[], Any]] = None) -> None:
        if path is None and descriptor is None:
            raise ValueError("a NeuralExpert needs a model file or a loaded descriptor")
        self.info = info
        self.path = Path(path) if path is not None else None
        self.device = device
        self.minimum_size = minimum_size
        self.notify = notify
        self.threads = threads
        self.verify = verify
        self._descriptor = descriptor
        self._runner: Any = None
        self._runner_device: Optional[str] = None
        self._lock = threading.Lock()
        #: What the loaded model needs from the tiler (size multiple, overlap, memory factor);
        #: until it is loaded, the declared values.
        self._needs = _Needs(info.size_multiple, info.tile_overlap, info.memory_factor)
        if descriptor is not None:
            self._needs = _needs_of(descriptor)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_descriptor(cls, descriptor: Any, *, expert_id: str, tasks: Sequence[str],
                        model_id: Optional[str] = None, device: str = "cpu", generative: bool = False,
                        name: Optional[str] = None) -> "NeuralExpert":
        info = info_from_descriptor(descriptor, expert_id=expert_id, tasks=tasks, model_id=model_id,
                                    name=name, generative=generative)
        return cls(info, descriptor=descriptor, device=device,
                   minimum_size=int(descriptor.size_requirements.minimum))

    @classmethod
    def from_file(cls, path: Path, *, expert_id: str, tasks: Sequence[str], model_id: Optional[str],
                  scale: int, size_multiple: int = 1, architecture: str = "", name: str = "",
                  generative: bool = False, device: str = "cpu", description: str = "",
                  lead_kinds: Sequence[str] = (), conditioned: bool = False, threads: Optional[int] = None,
                  verify: Optional[Callable[[], Any]] = None) -> "NeuralExpert":
        """Lazy: the file is read on the first run. The description is declared here from the
        catalog entry (``scale``, ``size_multiple``, ``architecture`` for the tile overlap,
        ``conditioned``: an ONNX model that takes per-kind strengths); the loaded model must
        agree on the scale and on the conditioning, else running it raises :class:`ModelError`."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in ONNX_SUFFIXES:
            backend = Backend.ONNX
        elif suffix in TORCH_SUFFIXES:
            backend = Backend.TORCH
        else:
            raise ModelError(f"{path.name}: unsupported model file type {suffix!r}")
        info = ExpertInfo(id=expert_id, name=name or (model_id or expert_id), tasks=tuple(tasks), backend=backend,
                          scale=int(scale), size_multiple=max(int(size_multiple), 1),
                          tile_overlap=ARCH_OVERLAP.get(architecture, DEFAULT_OVERLAP),
                          memory_factor=float(4 * LIVE_TENSORS * 64 * max(int(scale), 1) ** 2),
                          generative=generative, conditioned=bool(conditioned), model_id=model_id,
                          description=description, lead_kinds=tuple(lead_kinds))
        return cls(info, path=path, device=device, threads=threads, verify=verify)

    # ------------------------------------------------------------------ Expert API
    def is_available(self) -> bool:
        if self._descriptor is not None:
            return True
        module = "onnxruntime" if self.info.backend is Backend.ONNX else "spandrel"
        return self.path is not None and self.path.is_file() and importlib.util.find_spec(module) is not None

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        return self.run_reduced(image, ctx, reduction=1)

    def run_variants(self, image: np.ndarray, ctx: Optional[ExpertContext],
                     variants: Sequence[Mapping[str, float]]) -> list[np.ndarray]:
        """:meth:`run` once per ``{kind: strength}`` in ``variants`` (``ctx.strengths`` ignored).
        A conditioned 1x model runs them as one batch per tile (one network call, one window
        read), the outputs as float32 HxWx3 views of one array; other models run them in turn."""
        ctx = ctx or ExpertContext(device=self.device)
        runner = self.runner(ctx.device or self.device)
        if not getattr(runner, "conditioned", False) or self.info.scale != 1 or len(variants) < 2:
            return [self.run(image, replace(ctx, strengths=v)) for v in variants]
        out = self.run_reduced(image, ctx, batch=np.stack([strength_vector(v) for v in variants]))
        c = out.shape[2] // len(variants)
        return [out[..., i * c:(i + 1) * c] for i in range(len(variants))]

    def run_reduced(self, image: np.ndarray, ctx: Optional[ExpertContext] = None, reduction: int = 1,
                    batch: Optional[np.ndarray] = None) -> np.ndarray:
        """Like :meth:`run`, with each tile's output area-downscaled by the integer ``reduction``
        (which must divide the model's scale): output is ``H*scale/reduction``. ``batch``: for a
        conditioned model, N strength vectors run as one batch per tile; the output then holds
        the N results side by side on the channel axis (HxWx3N)."""
        from ..runtime.tiling import AutoTiles, FixedTiles, default_oom_errors, run_tiled

        ctx = ctx or ExpertContext(device=self.device)
        device = ctx.device or self.device
        runner = self.runner(device)
        scale = self.info.scale
        if reduction < 1 or scale % reduction:
            raise ValueError(f"reduction {reduction} does not divide the model scale {scale}")
        copies = 1
        if getattr(runner, "conditioned", False) and batch is not None:
            copies = len(batch)
            runner = _batched(runner, np.asarray(batch, np.float32))
        elif getattr(runner, "conditioned", False):
            runner = functools.partial(runner, strengths=strength_vector(ctx.strengths))
        fn = runner if reduction == 1 else _area_reduced(runner, reduction)
        fp16 = bool(getattr(runner, "fp16", False))
        needs = self._needs
        memory_factor = needs.memory_factor * copies / (2 if fp16 else 1)
        strategy = (FixedTiles(int(ctx.tile)) if ctx.tile else
                    AutoTiles(device=device, max_tile=MAX_TILE.get(device, 1024)))
        channels = int(getattr(getattr(runner, "descriptor", None), "input_channels", 3) or 3)
        planes = [image] if channels == image.shape[2] else [image[..., c:c + 1] for c in range(image.shape[2])]
        if len(planes) > 1 and channels != 1:
            raise ModelError(f"{self.info.name} takes {channels}-channel images; this photo has {image.shape[2]}")
        outs = []
        for i, plane in enumerate(planes):
            progress = ctx.progress.sub(i / len(planes), (i + 1) / len(planes))
            outs.append(run_tiled(plane, fn, scale=scale // reduction, size_multiple=needs.size_multiple,
                                  minimum_size=self.minimum_size, overlap=needs.overlap,
                                  strategy=strategy, memory_factor=memory_factor, progress=progress,
                                  notify=self.notify, oom_errors=default_oom_errors(),
                                  on_oom=getattr(runner, "release_memory", None)))
        out = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=2)
        return np.clip(out, 0.0, 1.0, out=out)

    # ------------------------------------------------------------------ loading
    def runner(self, device: str) -> Any:
        """The loaded model as a tile function on ``device`` (loads or moves it on first use)."""
        with self._lock:
            if self._runner is None or self._runner_device != device:
                self._runner = self._load(device)
                self._runner_device = device
            return self._runner

    def _load(self, device: str) -> Any:
        if self.verify is not None and self.path is not None:
            self.verify()
        if self.info.backend is Backend.ONNX:
            from ..runtime.onnx_backend import OnnxRunner

            assert self.path is not None
            runner = OnnxRunner(self.path, device=device, threads=self.threads)
            if runner.conditioned != self.info.conditioned:
                raise ModelError(f"{self.path.name}: the model {'takes' if runner.conditioned else 'does not take'} "
                                 f"per-kind strengths, but its catalog entry says it "
                                 f"{'does not' if runner.conditioned else 'does'} (conditioned)")
            return runner
        from ..runtime.torch_backend import TorchRunner, load_image_model

        if self._descriptor is None:
            assert self.path is not None
            descriptor = load_image_model(self.path)
            if int(descriptor.scale) != self.info.scale:
                raise ModelError(f"{self.path.name}: the model upscales {descriptor.scale}x but its catalog "
                                 f"entry says {self.info.scale}x")
            self._descriptor = descriptor
            self.minimum_size = int(descriptor.size_requirements.minimum)
            self._needs = _needs_of(descriptor)
        return TorchRunner(self._descriptor, device=device)


def strength_vector(strengths: Mapping[str, float]) -> np.ndarray:
    """``{kind: strength}`` → float32 vector in :data:`KINDS` order, clipped to [0, 1] (kinds not
    named are 0: leave them alone)."""
    return np.array([min(max(float(strengths.get(k, 0.0)), 0.0), 1.0) for k in KINDS], np.float32)


@dataclass(frozen=True)
class _Needs:
    """What the tiler must give a model: input sides padded to a multiple of ``size_multiple``,
    ``overlap`` pixels of context per tile side, ``memory_factor`` peak bytes per input pixel."""

    size_multiple: int
    overlap: int
    memory_factor: float


def _needs_of(descriptor: Any) -> _Needs:
    arch = str(descriptor.architecture.id)
    return _Needs(int(descriptor.size_requirements.multiple_of), ARCH_OVERLAP.get(arch, DEFAULT_OVERLAP),
                  estimate_memory_factor(descriptor))


def area_downscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Box-filter downscale of a float32 HxWxC image by the integer ``factor`` (cv2.INTER_AREA;
    H and W must be multiples of ``factor``). Anti-aliased: every output pixel is the mean of a
    ``factor x factor`` block."""
    import cv2

    if factor == 1:
        return image
    h, w = image.shape[:2]
    out = cv2.resize(image, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    return out.reshape(h // factor, w // factor, -1)


def _batched(runner: Callable[..., np.ndarray], vectors: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A tile function running ``runner`` on N copies of each tile, copy i told ``vectors[i]``,
    and returning the N outputs stacked on the channel axis: (1, C, h, w) → (1, N*C', h, w)."""
    def fn(tile: np.ndarray) -> np.ndarray:
        y = runner(np.repeat(tile, len(vectors), axis=0), strengths=vectors)
        return y.reshape(1, -1, *y.shape[2:])
    return fn


def _area_reduced(fn: Callable[[np.ndarray], np.ndarray], factor: int) -> Callable[[np.ndarray], np.ndarray]:
    def reduced(tile: np.ndarray) -> np.ndarray:
        y = fn(tile)[0].transpose(1, 2, 0)
        return area_downscale(np.ascontiguousarray(y), factor).transpose(2, 0, 1)[None]
    return reduced


class DownscaledExpert(Expert):
    """An upscaling :class:`NeuralExpert` run at a smaller output scale: each tile's output is
    area-downscaled by ``base.scale / out_scale`` (e.g. 4x → 2x upscaler, or 4x → 1x restorer)."""

    def __init__(self, base: NeuralExpert, out_scale: int, tasks: Sequence[str], expert_id: str,
                 name: Optional[str] = None, generative: Optional[bool] = None) -> None:
        if out_scale < 1 or base.info.scale % out_scale:
            raise ValueError(f"cannot make a {out_scale}x expert from a {base.info.scale}x model")
        self.base = base
        self.out_scale = out_scale
        #: The base model's description at this expert's scale.
        self.info = replace(base.info, scale=out_scale, id=expert_id, name=name or f"{base.info.name} at {out_scale}x",
                            tasks=tuple(tasks), generative=base.info.generative if generative is None else generative)

    def is_available(self) -> bool:
        return self.base.is_available()

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        return self.base.run_reduced(image, ctx, reduction=self.base.info.scale // self.out_scale)


class RealESRGANGeneralist(DownscaledExpert):
    """Real-ESRGAN x4plus as a 1x generative generalist: upscale 4x, then area-downscale back
    (per tile). It sharpens and denoises plausibly rather than faithfully, hence ``generative``."""

    def __init__(self, base: NeuralExpert, expert_id: Optional[str] = None) -> None:
        super().__init__(base, 1, (GENERALIST,), expert_id or f"neural.{base.info.model_id}.x1",
                         name=f"{base.info.name} (1x generalist)", generative=True)


def realesrgan_experts(base: NeuralExpert) -> list[Expert]:
    """The three uses of a 4x Real-ESRGAN model: 4x upscaler, 2x upscaler, 1x generalist."""
    model_id = base.info.model_id
    return [base, DownscaledExpert(base, 2, (UPSCALE,), f"neural.{model_id}.x2"), RealESRGANGeneralist(base)]


def experts_for_installed_models(manager: Any, device: str = "cpu") -> list[Expert]:
    """Experts for every model ``manager.installed_models()`` lists (lazy: nothing is loaded).

    A 1x model serves its catalog tasks directly. A model with scale S > 1 serves ``upscale`` at
    S and at every smaller scale dividing S (area-downscaled), and its other tasks (e.g.
    ``generalist``) at 1x. Architectures with an expert of their own (FFDNet's noise map:
    ``engine.experts.published``) get that expert. Face models are skipped (they need face detection and alignment).
    Expert ids are ``neural.<model id>`` (native scale) and ``neural.<model id>.x<scale>``.
    """
    from .published import published_experts

    experts: list[Expert] = []
    for model_id in getattr(manager, "damaged_models", lambda: [])():
        log.warning("model %s is damaged (its file no longer matches its sha256); not using it. %s",
                    model_id, manager.repair_hint(model_id))
    check = getattr(manager, "check_intact", None)
    for entry, path in manager.installed_models():
        if ANALYSIS in entry.tasks:
            continue  # the analyser is used by engine.analysis, not as a restorer
        tasks = tuple(t for t in entry.tasks if t != FACE)
        if not tasks:
            log.info("model %s: face restoration models are not run by the tiler; skipped", entry.id)
            continue
        try:
            special = published_experts(entry, Path(path), device)
        except ModelError as err:
            log.warning("model %s: %s", entry.id, err)
            continue
        if special is not None:
            experts += special
            continue
        scale = int(entry.scale)
        others = tuple(t for t in tasks if t != UPSCALE)
        try:
            base = NeuralExpert.from_file(Path(path), expert_id=f"neural.{entry.id}",
                                          tasks=(UPSCALE,) if scale > 1 and UPSCALE in tasks else tasks,
                                          model_id=entry.id, scale=int(entry.scale),
                                          size_multiple=int(getattr(entry, "size_multiple", 1) or 1),
                                          architecture=str(entry.architecture), name=str(entry.name),
                                          generative=bool(getattr(entry, "generative", False)), device=device,
                                          description=str(getattr(entry, "description", "")),
                                          lead_kinds=tuple(getattr(entry, "lead_kinds", ())),
                                          conditioned=bool(getattr(entry, "conditioned", False)),
                                          verify=functools.partial(check, entry.id) if check else None)
        except ModelError as err:
            log.warning("model %s: %s", entry.id, err)
            continue
        if scale == 1:
            experts.append(base)
            continue
        if UPSCALE in tasks:
            experts.append(base)
            experts += [DownscaledExpert(base, s, (UPSCALE,), f"neural.{entry.id}.x{s}")
                        for s in range(scale - 1, 1, -1) if scale % s == 0]
        if others == (GENERALIST,) and str(entry.architecture) == "ESRGAN":
            experts.append(RealESRGANGeneralist(base))
        elif others:
            experts.append(DownscaledExpert(base, 1, others, f"neural.{entry.id}.x1"))
    return experts
