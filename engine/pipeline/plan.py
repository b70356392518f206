"""From a degradation report to an ordered list of restoration stages."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, Optional

from ..analysis.report import DEFAULT_PRESENCE_THRESHOLD, DegradationReport
from ..experts.base import ExpertRegistry
from ..kinds import GENERALIST, KINDS, check_kind

#: Order in which specialists run. It undoes the camera's degradation chain from the end:
#: compression artefacts first (they are the last thing that happened), then sensor noise
#: (before anything amplifies it), exposure, then the scene (rain, haze) and finally
#: deblurring, which would otherwise sharpen noise and blocks.
SPECIALIST_ORDER: tuple[str, ...] = ("jpeg", "noise", "lowlight", "rain", "haze", "blur")
assert sorted(SPECIALIST_ORDER) == sorted(KINDS)

#: Of a generalist's ``lead_kinds``, the ones for which the *automatic* plan may put it first.
#: restora-generalist-v2 was trained on synthetic degradations only; on real camera photos its
#: jpeg/haze/lowlight leads fired on camera JPEGs, bright low-contrast scenes and dark scenes and it
#: made every real noisy photo worse (benchmarks/results/real-noise.md: −17 dB mean on the first
#: real crops, down to 9 dB PSNR on a dark scene it brightened). Until it is retrained on realistic
#: data it leads only on rain (synthetic rain: +6 dB; no real photo of our sets is read as rain);
#: asking for it (``--set generalist=…``, ``--only generalist``) still runs it.
AUTO_GENERALIST_LEAD_KINDS: frozenset[str] = frozenset({"rain"})

#: Least severity at which the automatic plan includes a kind's specialist, where it is above the
#: presence threshold. A dark scene is not an under-exposed photo: real dark DSLR scenes
#: (noise_real_polyu_crops) read lowlight 0.15–0.44 (one 0.96), real under-exposed photos
#: (lowlight_real_lol_train) 0.78–1.0 but for one; brightening a dark scene cost −11 dB.
AUTO_MIN_SEVERITY: dict[str, float] = {"lowlight": 0.5}

#: Names a stage may have: the six kinds, plus the all-in-one generalist that runs first.
STAGE_NAMES: tuple[str, ...] = (GENERALIST,) + SPECIALIST_ORDER


@dataclass(frozen=True)
class Stage:
    """One step of a plan.

    ``name``: a degradation kind or ``"generalist"``. ``expert_id``: the registry id of the
    expert that runs it. ``strength`` in [0, 1]: how much of the expert's change is kept
    (0 = off, 1 = full effect). ``auto``: chosen by the analysis (it may be dropped when the
    assessment finds it did not help); ``False`` when the user asked for it explicitly.
    """

    name: str
    expert_id: str
    strength: float = 1.0
    auto: bool = True


@dataclass(frozen=True)
class Plan:
    stages: tuple[Stage, ...] = field(default_factory=tuple)

    def strengths(self) -> dict[str, float]:
        return {s.name: s.strength for s in self.stages}

    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def stage(self, name: str) -> Optional[Stage]:
        return next((s for s in self.stages if s.name == name), None)

    def with_strengths(self, strengths: Mapping[str, float]) -> "Plan":
        """A copy with the given stage strengths replaced (unknown names are ignored)."""
        return Plan(tuple(replace(s, strength=_clamp(strengths.get(s.name, s.strength))) for s in self.stages))

    def with_expert(self, name: str, expert_id: str) -> "Plan":
        return Plan(tuple(replace(s, expert_id=expert_id) if s.name == name else s for s in self.stages))

    def to_list(self) -> list[dict]:
        return [{"stage": s.name, "expert": s.expert_id, "strength": round(s.strength, 3)} for s in self.stages]


def _clamp(x: float) -> float:
    return min(max(float(x), 0.0), 1.0)


def parse_strength_settings(items: Iterable[str]) -> dict[str, float]:
    """Parse CLI ``KIND=STRENGTH`` items (strength in [0, 1], or a percentage like ``60%``).

    Raises ``ValueError`` with a one-line message on a bad item.
    """
    out: dict[str, float] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects KIND=STRENGTH, got {item!r}")
        name, value = (p.strip() for p in item.split("=", 1))
        if name not in STAGE_NAMES:
            raise ValueError(f"unknown degradation kind {name!r}; expected one of {', '.join(STAGE_NAMES)}")
        try:
            v = float(value[:-1]) / 100 if value.endswith("%") else float(value)
        except ValueError:
            raise ValueError(f"strength for {name} must be a number in [0, 1], got {value!r}") from None
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"strength for {name} must be in [0, 1], got {value}")
        out[name] = v
    return out


def parse_kind_list(text: str) -> list[str]:
    """Parse ``--only noise,jpeg`` into kinds (raises ``ValueError`` on an unknown kind)."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if not kinds:
        raise ValueError("--only needs at least one kind")
    for k in kinds:
        if k != GENERALIST:
            check_kind(k)
    return kinds


def auto_strength(report: DegradationReport, kind: str) -> float:
    """The strength the analysis proposes for a detected kind: full correction, eased off
    where the analyser is unsure (OPIR: lean towards the gentler result under uncertainty)."""
    a = report.kinds.get(kind)
    confidence = 1.0 if a is None else float(a.confidence)
    return round(_clamp(0.6 + 0.4 * confidence), 2)


def build_plan(
    report: DegradationReport,
    registry: ExpertRegistry,
    *,
    auto: bool = True,
    strengths: Optional[Mapping[str, float]] = None,
    only: Optional[Iterable[str]] = None,
    threshold: float = DEFAULT_PRESENCE_THRESHOLD,
    use_generalist: bool = True,
    allow_generative: bool = False,
    experts: Optional[Mapping[str, str]] = None,
) -> Plan:
    """Build the ordered plan.

    - ``auto``: include every kind the report finds at or above ``threshold`` (strength from
      :func:`auto_strength`), preceded by the best available generalist (if any and
      ``use_generalist``, and if it has ``lead_kinds``, only when one of them that is also in
      :data:`AUTO_GENERALIST_LEAD_KINDS` is found).
    - ``strengths``: explicit ``{stage name: strength}``; named stages are included even when
      the analysis did not flag them, with exactly that strength (0 keeps the stage but off).
    - ``only``: restrict the plan to these stage names (they are included even if not detected).
    - ``experts``: ``{stage name: expert id}`` to override the registry's choice.
    Stages whose task has no available expert are left out.
    """
    strengths = dict(strengths or {})
    experts = dict(experts or {})
    only_set = set(only) if only is not None else None
    wanted: dict[str, tuple[float, bool]] = {}
    if auto:
        for kind in report.present(threshold):
            if report.severity(kind) >= AUTO_MIN_SEVERITY.get(kind, 0.0):
                wanted[kind] = (auto_strength(report, kind), True)
    if only_set is not None:
        wanted = {k: v for k, v in wanted.items() if k in only_set}
        for k in only_set:
            wanted.setdefault(k, (1.0, False))
    for name, value in strengths.items():
        wanted[name] = (_clamp(value), False)

    generalist_wanted = GENERALIST in wanted or (
        auto and use_generalist and only_set is None and any(k in KINDS for k in wanted))
    stages: list[Stage] = []
    if generalist_wanted:
        strength, is_auto = wanted.get(GENERALIST, (1.0, True))
        expert_id = experts.get(GENERALIST) or best_expert(registry, GENERALIST, allow_generative)
        leads = registry.get(expert_id).info.lead_kinds if expert_id else ()
        led = [k for k in wanted if k in leads and k in AUTO_GENERALIST_LEAD_KINDS and not known_from_file(report, k)]
        if expert_id and (GENERALIST in wanted or not leads or led):
            stages.append(Stage(GENERALIST, expert_id, strength, is_auto))
    for kind in SPECIALIST_ORDER:
        if kind not in wanted:
            continue
        strength, is_auto = wanted[kind]
        expert_id = experts.get(kind) or best_expert(registry, kind, allow_generative)
        if expert_id:
            stages.append(Stage(kind, expert_id, strength, is_auto))
    return Plan(tuple(stages))


def known_from_file(report: DegradationReport, kind: str) -> bool:
    """Whether ``kind``'s verdict came from the file itself (a JPEG's own quantisation tables).
    Such a kind does not bring in a generalist that leads on it: the jpeg specialist restores with
    the file's tables, which measured better than the generalist before it
    (benchmarks/results/jpeg-restoration.md)."""
    a = report.kinds.get(kind)
    return a is not None and a.measurements.get("from_file") == 1.0


def best_expert(registry: ExpertRegistry, task: str, allow_generative: bool = False) -> Optional[str]:
    """The id of the expert a plan uses for ``task``: the first available one by
    :meth:`ExpertRegistry.for_task`, skipping generative experts unless allowed; ``None`` if none."""
    for e in registry.for_task(task):
        if allow_generative or not e.info.generative:
            return e.info.id
    return None
