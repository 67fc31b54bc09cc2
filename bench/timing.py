"""The timing harness the benchmarks share: one measured method's warm-up and timed blocks.

A method is a ``call()`` doing one block of work and waiting for its result (``.numpy()`` or a Python value),
so a sample is the time of the work itself. The first call is the warm-up — tracing and graph building
included — and is timed apart (``warmup_s``); the benchmarks interleave the timed blocks of the methods they
compare, so that a ratio within one repeat shares the machine's load.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np


class Runner:
    """One measured method.

    Args:
      name: the method's name in the printed tables and the JSON.
      call: one timed block; returns the units of work it did (steps, moves, ...) or None.
      traces: the tracing count of its ``tf.function``(s), read after timing to catch retracing.
      warm_up_call: the warm-up, if it is not one ``call()`` (e.g. one iteration where a block is several).
    """

    def __init__(self, name: str, call: Callable[[], int | None], traces: Callable[[], int] | None = None,
                 warm_up_call: Callable[[], object] | None = None):
        self.name = name
        self.call = call
        self.traces = traces
        self._warm_up_call = warm_up_call or call
        self.samples: list[float] = []  # seconds per timed block
        self.units: list[int | None] = []  # units of work per timed block, as `call` returned them
        self.warmup_s: float | None = None

    def warm_up(self) -> None:
        t0 = time.perf_counter()
        self._warm_up_call()
        self.warmup_s = time.perf_counter() - t0

    def timed(self) -> float:
        """Time one block; returns (and records) its seconds."""
        t0 = time.perf_counter()
        units = self.call()
        dt = time.perf_counter() - t0
        self.samples.append(dt)
        self.units.append(None if units is None else int(units))
        return dt

    @property
    def best_rate(self) -> float:
        """Units per second of the fastest block."""
        return max(u / s for u, s in zip(self.units, self.samples, strict=True))

    @property
    def best_seconds_per_unit(self) -> float:
        return 1.0 / self.best_rate


def paired_median(num: Runner, den: Runner) -> float:
    """Median over repeats of ``rate(num) / rate(den)`` within each repeat (the two ran back to back)."""
    return float(np.median([(un / sn) / (ud / sd) for un, sn, ud, sd in
                            zip(num.units, num.samples, den.units, den.samples, strict=True)]))
