"""Means and 95% confidence intervals (Student t) over held-out tasks."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def mean_ci95(values: np.ndarray) -> tuple[float, float]:
    """Mean and half-width of the 95% t-interval of ``values`` ``[N]`` (half-width 0 when N == 1)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("mean_ci95 of an empty sample")
    mean = float(values.mean())
    if values.size == 1:
        return mean, 0.0
    sem = float(values.std(ddof=1)) / math.sqrt(values.size)
    return mean, float(stats.t.ppf(0.975, values.size - 1) * sem)
