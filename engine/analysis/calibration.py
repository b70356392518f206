"""Measurement → severity maps, fitted on synthetic degradations of shared/data/clean.

Each kind has one driving measurement and a monotone piecewise-linear map through knots
``(measurement, severity)``. The knots were produced by ``benchmarks/calibrate_analysis.py``
(run it to refit; it prints this table): for every kind the calibration images were degraded
at strengths 0.1 … 1.0 with :func:`engine.degrade.degrade`; each strength contributes the knot
(median measurement, strength); the clean images contribute (median, 0) and
(95th percentile, ``CLEAN_P95_SEVERITY``) so that a typical clean photo stays below the
presence threshold. Knots that would break monotonicity were dropped.
"""

from __future__ import annotations

import math

import numpy as np

#: Severity given to the 95th percentile of a measurement on clean photos.
CLEAN_P95_SEVERITY = 0.08

#: kind → (measurement name, direction, knots). ``direction`` −1 means smaller values are worse
#: (the measurement is negated before interpolation).
CALIBRATION: dict[str, tuple[str, int, tuple[tuple[float, float], ...]]] = {
    "noise": ("noise_index_255", 1, (
        (0.9889, 0), (4.83, 0.08), (4.982, 0.1), (9.562, 0.2), (13.94, 0.3), (18.29, 0.4), (22.42, 0.5),
        (26.2, 0.6), (29.61, 0.7), (33.45, 0.8), (36.73, 0.9), (40.07, 1),
    )),
    "blur": ("edge_width_px", 1, (
        (3.169, 0), (3.427, 0.08), (3.843, 0.2), (4.316, 0.3), (4.943, 0.4), (5.517, 0.5), (6.052, 0.6),
        (6.606, 0.7), (7.092, 0.8), (7.719, 0.9), (8.216, 1),
    )),
    "jpeg": ("blockiness", 1, (
        (0.00983, 0), (0.06889, 0.08), (0.0858, 0.1), (0.1469, 0.2), (0.1674, 0.3), (0.2158, 0.4),
        (0.2589, 0.5), (0.2884, 0.6), (0.3346, 0.7), (0.4113, 0.8), (0.524, 0.9), (0.7178, 1),
    )),
    "haze": ("dark_channel_p10", 1, (
        (0, 0), (0.1641, 0.08), (0.1892, 0.2), (0.2609, 0.3), (0.3249, 0.4), (0.3773, 0.5), (0.4222, 0.6),
        (0.4666, 0.7), (0.5045, 0.8), (0.5399, 0.9), (0.5719, 1),
    )),
    "lowlight": ("exposure_index", -1, (
        (-0.6401, 0), (-0.3975, 0.08), (-0.3452, 0.4), (-0.2875, 0.5), (-0.2365, 0.6), (-0.192, 0.7),
        (-0.1537, 0.8), (-0.1213, 0.9), (-0.09427, 1),
    )),
    "rain": ("streak_excess", 1, (
        (0.0006898, 0), (0.007845, 0.08), (0.01336, 0.2), (0.02968, 0.3), (0.04842, 0.4), (0.06925, 0.5),
        (0.08618, 0.6), (0.09716, 0.7), (0.1059, 0.8),
    )),
}


def severity_from(kind: str, measurements: dict[str, float]) -> float:
    """Severity in [0, 1] for ``kind`` from its measurements (0 when the driving one is NaN)."""
    name, direction, knots = CALIBRATION[kind]
    value = measurements.get(name, float("nan"))
    if value is None or not math.isfinite(value):
        return 0.0
    xs = np.array([k[0] for k in knots], np.float64)
    ys = np.array([k[1] for k in knots], np.float64)
    severity = float(np.interp(direction * value, xs, ys, left=0.0, right=ys[-1]))
    if direction * value > xs[-1] and len(xs) >= 2:
        slope = (ys[-1] - ys[-2]) / max(xs[-1] - xs[-2], 1e-9)
        severity = ys[-1] + slope * (direction * value - xs[-1])
    return float(min(max(severity, 0.0), 1.0))
