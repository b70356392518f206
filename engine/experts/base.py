"""The one interface every restorer implements: classical filters, bundled ONNX nets, torch models."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence

import numpy as np

from ..progress import Progress

if TYPE_CHECKING:
    from ..analysis.jpeg_tables import JpegSource


class Backend(str, enum.Enum):
    CLASSICAL = "classical"
    ONNX = "onnx"
    TORCH = "torch"


@dataclass(frozen=True)
class ExpertInfo:
    """What an expert is and what it needs, so callers ask the description, never the class.

    ``tasks``: degradation kinds it serves (``engine.kinds.KINDS``) or ``"generalist"`` /
    ``"upscale"`` / ``"face"``. ``scale``: output size / input size. ``size_multiple``: input
    height and width must be padded to a multiple of this. ``tile_overlap``: pixels of context
    each tile needs on every side. ``memory_factor``: peak bytes per input pixel, roughly, for
    choosing tile sizes (the tiler reads these three). ``version``: bump when outputs change
    (it is part of cache keys).
    ``generative``: the expert invents plausible detail rather than restoring faithfully (e.g.
    Real-ESRGAN); the default plan only uses such experts when asked to. ``conditioned``: the
    expert removes only the kinds named in ``ExpertContext.strengths``, as strongly as told (a
    conditioned generalist); the session then splits its change by kind so that each kind's
    slider scales that kind's share. ``lead_kinds``: where a generalist measured better than
    the specialists; the automatic plan includes it only when the analysis finds one of these
    kinds (empty: always). ``sigma_strength``: the stage's strength is a physical parameter of
    the expert (a denoiser told σ·s instead of its change being blended by s); it receives the
    strength in ``ExpertContext.strength``, and the session runs it at
    :data:`SIGMA_STRENGTH_KNOTS` and interpolates between those outputs when a slider moves.
    """

    id: str
    name: str
    tasks: tuple[str, ...]
    backend: Backend = Backend.CLASSICAL
    version: str = "1"
    scale: int = 1
    size_multiple: int = 1
    tile_overlap: int = 16
    memory_factor: float = 64.0
    generative: bool = False
    conditioned: bool = False
    lead_kinds: tuple[str, ...] = ()
    sigma_strength: bool = False
    model_id: Optional[str] = None
    description: str = ""


@dataclass
class ExpertContext:
    """Per-call inputs besides the pixels.

    ``severity`` in [0, 1] is the analyser's estimate for the kind being fixed (experts may use
    it to set their own parameters); ``measurements`` are the analyser's raw numbers for that
    kind (e.g. ``{"sigma": 0.04}``); ``strengths`` ``{kind: 0..1}`` tells a conditioned
    generalist how strongly to remove each kind (kinds not named: leave alone); ``noise_sigma``
    is the noise standard deviation the analysis measured, in [0, 1] pixel units, as a scalar,
    a per-channel ``(3,)`` array or a per-pixel ``HxWx1``/``HxWx3`` map matching the image
    (``None``: the expert estimates it itself); ``device`` is
    ``"cpu" | "cuda" | "mps"``; ``tile`` is a tile edge in pixels or ``None`` for automatic.
    ``strength`` in [0, 1] is the stage's strength, read only by experts whose
    ``info.sigma_strength`` is set (a denoiser then removes noise of σ·strength); others leave
    the strength to the session's blend and run at full effect.
    ``jpeg``: when the photo is a JPEG file's decoding, the file's quantisation tables and the
    decoded pixels (:class:`engine.analysis.jpeg_tables.JpegSource`), else ``None``.
    ``original``: the photo as loaded, before any stage ran (same size as the pixels given; ``None``:
    unknown, or no stage ran before): an expert can check on it that what it is about to remove
    was in the photo and was not made by the stages before it (a denoiser's smoothing reads as blur).
    ``original_noise``: gives the noise level the analysis measured on ``original`` (the same forms
    as ``noise_sigma``; ``None``: not measured), to judge the photo as loaded at its own noise; read
    it as :attr:`original_noise_sigma`. A callable because the level is a full-size map that only an
    expert checking ``original`` needs, so it is made when first read.
    ``requested``: the user asked for this stage explicitly (it was not chosen by the analysis), so
    an expert may act on a case the pixels leave ambiguous.
    ``notes``: what the expert says about this run for a person (why it was gentler, why it left
    the photo unchanged), appended with :meth:`note`; the session shows them as the stage's reason.
    ``input_on_disk``: given only to ``run_in_place``: a copy of the pixels it is handed, on disk
    (:class:`engine.pipeline.spill.SpilledArray`: ``read_rows``, and its ``path``'s folder takes
    more such files), so that the expert may give the pixels' memory back while it works on
    something smaller and read them back before it overwrites them (``None``: not on disk).
    """

    severity: float = 1.0
    measurements: Mapping[str, float] = field(default_factory=dict)
    strengths: Mapping[str, float] = field(default_factory=dict)
    noise_sigma: Optional[np.ndarray] = None
    progress: Progress = field(default_factory=Progress)
    device: str = "cpu"
    tile: Optional[int] = None
    strength: float = 1.0
    jpeg: Optional["JpegSource"] = None
    original: Optional[np.ndarray] = None
    original_noise: Optional[Callable[[], Optional[np.ndarray]]] = None
    requested: bool = False
    notes: list[str] = field(default_factory=list)
    input_on_disk: Optional[Any] = None

    @property
    def original_noise_sigma(self) -> Optional[np.ndarray]:
        """The noise level measured on ``original`` (see ``original_noise``); ``None`` if not given."""
        return None if self.original_noise is None else self.original_noise()

    def note(self, text: str) -> None:
        """Record one line for a person about this run (see ``notes``)."""
        self.notes.append(str(text))


#: A note of an expert that left the photo unchanged out of caution ends with these words and how
#: a person asks for the stage anyway (``"left unchanged: …; ask for blur removal (…) to deblur it
#: anyway"``); :func:`held_back` finds that part of a stage's reason for the CLI and the window.
ASK_FOR = "ask for "


def held_back(reason: str) -> str:
    """The part of a stage's ``reason`` that says why it was left unchanged and how to ask for it
    anyway (from ``"left unchanged: "`` before :data:`ASK_FOR` to the end), or ``""`` when the reason
    says nothing of asking."""
    ask = reason.find(ASK_FOR)
    if ask < 0:
        return ""
    start = reason.rfind("left unchanged: ", 0, ask)
    return reason[max(start, 0):]


#: Strengths at which the session runs an expert whose ``info.sigma_strength`` is set; the
#: output for any other strength is interpolated linearly between the neighbouring knots (0 is
#: the input itself). Two runs per photo instead of one, and no run when a slider moves.
SIGMA_STRENGTH_KNOTS: tuple[float, ...] = (0.5, 1.0)


class Expert(ABC):
    """A restorer: float32 HxWx3 in [0, 1] in → float32 (H*scale)x(W*scale)x3 in [0, 1] out.

    ``run`` must not modify its input, must report progress through ``ctx.progress`` (which also
    raises :class:`engine.errors.Cancelled` when the job is cancelled) and must return values
    clipped to [0, 1].
    """

    info: ExpertInfo

    @abstractmethod
    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        ...

    def is_available(self) -> bool:
        """Whether this expert can run here now (weights installed, runtime importable)."""
        return True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.info.id}>"


class ExpertRegistry:
    """The set of experts a pipeline may choose from. Built explicitly, never a mutable global."""

    def __init__(self, experts: Optional[list[Expert]] = None,
                 ranking: Optional[Mapping[str, Sequence[str]]] = None) -> None:
        self._experts: dict[str, Expert] = {}
        #: ``{task: [expert id, ...]}`` best first by measured quality (``engine.experts.ranking``).
        self.ranking: dict[str, list[str]] = {k: list(v) for k, v in (ranking or {}).items()}
        for e in experts or []:
            self.register(e)

    def register(self, expert: Expert) -> None:
        if expert.info.id in self._experts:
            raise ValueError(f"expert {expert.info.id!r} is already registered")
        self._experts[expert.info.id] = expert

    def get(self, expert_id: str) -> Expert:
        try:
            return self._experts[expert_id]
        except KeyError:
            raise KeyError(f"no expert with id {expert_id!r}; known: {', '.join(sorted(self._experts))}") from None

    def __contains__(self, expert_id: str) -> bool:
        return expert_id in self._experts

    def all(self) -> list[Expert]:
        return list(self._experts.values())

    def for_task(self, task: str, available_only: bool = True) -> list[Expert]:
        """Experts serving ``task``, best first: those the measured ranking lists for ``task``
        in its order, then the ones it has not measured in the order they were registered
        (:func:`engine.experts.default.build_registry` declares that order; the runtime a model
        happens to use plays no part)."""
        ranked = {expert_id: i for i, expert_id in enumerate(self.ranking.get(task, ()))}
        found = [e for e in self._experts.values()
                 if task in e.info.tasks and (not available_only or e.is_available())]
        return sorted(found, key=lambda e: ranked.get(e.info.id, len(ranked)))
