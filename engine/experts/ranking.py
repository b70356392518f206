"""The measured ranking of experts per kind (``models/expert-ranking.json``).

Written by ``benchmarks/expert_ranking.py``: for each kind, the experts it measured, best first
by mean PSNR gain over its validation cases, each with its headline figures
(``mean_psnr_gain``, ``worst_psnr_gain``, ``real_psnr_gain`` in dB). :class:`ExpertRegistry`
orders ``for_task`` by it, so the plan picks the best *available* expert by measured quality,
not by backend type; experts the benchmark has not measured come after the ranked ones.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)

#: Kinds whose expert order the ranking decides. JPEG is left to the file-aware JPEG restorer
#: (``engine.experts.jpeg_restore``), which needs the file's quantisation tables that the
#: benchmark's decoded arrays do not carry; the benchmark still reports JPEG numbers.
APPLIED_KINDS: tuple[str, ...] = ("noise", "lowlight", "upscale")


def default_ranking_path() -> Path:
    """``expert-ranking.json`` in the bundled models folder (package data, or the checkout's)."""
    from ..assets import models_dir

    return models_dir() / "expert-ranking.json"


def load_ranking(path: Optional[Path] = None) -> dict[str, list[dict[str, Any]]]:
    """``{kind: [{"expert": id, "model": model id or None, "mean_psnr_gain": dB, ...}, ...]}``
    best first; ``{}`` when the file is absent or unreadable (a warning is logged)."""
    path = Path(path) if path is not None else default_ranking_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        ranking = data["ranking"]
        return {str(kind): [dict(e) for e in entries if isinstance(e, dict) and "expert" in e]
                for kind, entries in ranking.items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        log.warning("expert ranking %s is unreadable (%s); experts keep their default order", path, e)
        return {}


def ranked_ids(ranking: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """``{kind: [expert id, ...]}`` best first, for the kinds of :data:`APPLIED_KINDS`."""
    return {kind: [str(e["expert"]) for e in entries] for kind, entries in ranking.items() if kind in APPLIED_KINDS}


def figure_for_model(ranking: dict[str, list[dict[str, Any]]], model_id: str) -> str:
    """A one-line measured figure for a catalog model, e.g. ``"noise: +6.4 dB mean PSNR gain
    (rank 1 of 3)"``; ``""`` when the benchmark did not measure it."""
    parts = []
    for kind, entries in ranking.items():
        for i, e in enumerate(entries):
            if e.get("model") == model_id:
                real = e.get("real_psnr_gain")
                parts.append(f"{kind}: {float(e['mean_psnr_gain']):+.1f} dB mean PSNR gain (rank {i + 1} of "
                             f"{len(entries)})" + ("" if real is None else f", real photos {float(real):+.1f} dB"))
    return "; ".join(parts)
