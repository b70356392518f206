"""The plan's uncertainty rule (RAR's assess step): drop a stage whose result is uncertain and whose
gain is small.

A stage chosen by the analysis is dropped when its own uncertainty map (:func:`stage_maps`' model:
the expected absolute error of its output, 8-bit levels) has a mean of at least
:data:`DROP_MEAN_LEVELS` while it lowered its own kind's severity (the generalist: the largest
severity of any kind) by less than :data:`DROP_MAX_GAIN`: a large expected error for a small
measured improvement.

Off by default (``RestoreOptions.drop_uncertain``, the CLI's ``--drop-uncertain``). The thresholds
were fitted on training photos only (``benchmarks/uncertainty_plan_rule.py fit``: central crops of
``data/clean`` with synthetic degradations and through the simulated camera, automatic plan; the
rule with the best mean PSNR change among those that made no training photo worse by more than
0.05 dB, over a grid of the statistic — uncertain fraction, mean expected error, expected error
over change —, its threshold, the gain limit and the action, halve or drop); the real pairs were
only measured (``benchmarks/results/uncertainty-plan-rule.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..kinds import KINDS

#: A stage whose map's mean expected error is at least this (8-bit levels) ...
DROP_MEAN_LEVELS = 16.0
#: ... and whose own severity fell by less than this (0..1) is dropped.
DROP_MAX_GAIN = 0.2
#: The map is computed on every n-th pixel so that it has at most this many: the rule reads
#: only its mean, and the cost stays bounded for a large photo.
ASSESS_MAX_PIXELS = 1_000_000


@dataclass(frozen=True)
class Assessment:
    """``mean_levels``: the mean expected absolute error of the stage's output (8-bit levels);
    ``gain``: how much it lowered its own kind's severity (0..1, negative: raised it);
    ``drop``: the rule's verdict."""

    mean_levels: float
    gain: float
    drop: bool

    def reason(self) -> str:
        return (f"uncertain for its gain: expected error {self.mean_levels:.0f} levels "
                f"(≥ {DROP_MEAN_LEVELS:.0f}) for a severity drop of {self.gain:.2f} (< {DROP_MAX_GAIN:.2f})")


def stage_gain(name: str, before_report, after_report) -> float:
    """The drop of the stage's own kind's severity from its input's analysis to its output's (the
    generalist, or a stage of no analysed kind: of the largest severity of any kind)."""
    from .session import _severity

    label = name if name in KINDS else ""
    return _severity(before_report, label) - _severity(after_report, label)


def assess_stage(name: str, before: np.ndarray, delta, before_report, after_report,
                 model=None) -> Assessment:
    """The rule's verdict on one stage: ``before`` its input (HxWx3 in [0, 1]), ``delta`` its change
    (the output is ``clip(before + delta)``), ``before_report``/``after_report`` the analyses of its
    input and output."""
    from .model import default_model
    from .session import _noise_sigma, _severity

    model = model or default_model()
    gain = stage_gain(name, before_report, after_report)
    if gain >= DROP_MAX_GAIN:  # the map is not needed
        return Assessment(float("nan"), gain, False)
    h, w = before.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(h * w / float(ASSESS_MAX_PIXELS)))))
    b = np.asarray(before[::step, ::step], np.float32)
    a = np.clip(b + np.asarray(delta, np.float32)[::step, ::step], 0.0, 1.0)
    kind = name if name in KINDS else None
    label = name if name in KINDS else ""
    umap = model.predict(b, a, kind, noise_sigma=_noise_sigma(b, before_report),
                         severity=_severity(before_report, label), severity_after=_severity(after_report, label))
    mean = float(umap.mean())
    return Assessment(mean, gain, mean >= DROP_MEAN_LEVELS)


def first_drop(session, results) -> Optional[tuple[str, Assessment]]:
    """Replay the kept stages of a run (rule off) and return the first stage the rule would drop
    with its assessment, or ``None``: what turning the rule on would change (the benchmark)."""
    current, report = session.image, session.report
    for r in results:
        if r.dropped or r.delta is None or r.output_report is None:
            continue
        verdict = assess_stage(r.name, current, r.delta, report, r.output_report)
        if verdict.drop:
            return r.name, verdict
        current, report = np.clip(current + r.delta, 0.0, 1.0), r.output_report
    return None
