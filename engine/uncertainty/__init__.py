"""Where the restoration may be wrong: a calibrated per-pixel uncertainty map (Qt-free).

The map holds the **expected absolute error** of a pixel, in 8-bit levels (0..255; the mean
over channels of |restored − true|), predicted from the stage's input and output, the
analysed noise level and severity (:mod:`.features`) by a model fitted on synthetic
degradations and validated on real pairs (:mod:`.model`, ``benchmarks/uncertainty.py``). It
costs a few box filters per stage, no network run.

- :func:`stage_maps` / :class:`SessionUncertainty` — per stage and for the composed result;
- :func:`lean` — the "Caution" control: towards the input where the map is high;
- :func:`summarise` / :func:`describe` — ``{"mean", "p95", "fraction_above"}`` and one sentence;
- :mod:`.sidecar` — the CLI's ``<stem>.uncertainty.png`` (16-bit grey, value = levels × 256).
"""

from .model import COMPOSED, UncertaintyModel, default_model
from .session import SessionUncertainty, stage_maps
from .summary import UNCERTAIN_LEVELS, describe, lean, summarise

__all__ = ["COMPOSED", "UNCERTAIN_LEVELS", "SessionUncertainty", "UncertaintyModel", "default_model",
           "describe", "lean", "stage_maps", "summarise"]
