"""Machinery shared by the baselines: config validation and the stateful, keyed-randomness policy base.

* :func:`check_number`, :func:`check_int`, :func:`check_choice` validate config fields with one-line
  ``MetaRLInputError`` messages naming the field;
* :class:`ConfiguredBaseline` turns a ``defaults`` mapping into the accepted config keys;
* :class:`StatefulPolicy` is the base of the baselines' policies (explicit state, randomness keyed by a step
  counter so an action is a pure function of ``(time_step, policy_state)``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Mapping

import numpy as np
import tensorflow as tf
from tf_agents.policies import tf_policy
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from metarl_apps.core import rng
from metarl_apps.core.agent import Baseline, is_first
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.task import TaskDistribution


# ================================================================== configuration
def check_number(owner: str, name: str, value: Any, low: float | None = None, high: float | None = None,
                 low_open: bool = False) -> float:
    """Validate a numeric config field; raise a one-line ``MetaRLInputError`` naming it."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    ok = ok and math.isfinite(float(value))
    if ok:
        v = float(value)
        ok = (low is None or (v > low if low_open else v >= low)) and (high is None or v <= high)
    if not ok:
        if low is not None and high is not None:
            want = f"a number in {'(' if low_open else '['}{low:g}, {high:g}]"
        elif low is not None:
            want = f"a number {'>' if low_open else '>='} {low:g}"
        else:
            want = "a finite number"
        raise MetaRLInputError(f"{owner}: config {name}={value!r} must be {want}")
    return float(value)


def check_int(owner: str, name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise MetaRLInputError(f"{owner}: config {name}={value!r} must be an integer >= {low}")
    return int(value)


def check_choice(owner: str, name: str, value: Any, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise MetaRLInputError(f"{owner}: config {name}={value!r} must be one of {', '.join(map(repr, valid))}")
    return value


class ConfiguredBaseline(Baseline):
    """A baseline whose ``config`` keys are ``defaults``; unknown keys are refused, listing the valid ones."""

    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, **config: Any):
        super().__init__()
        unknown = sorted(set(config) - set(self.defaults))
        if unknown:
            valid = ", ".join(self.defaults) or "none"
            raise MetaRLInputError(f"{type(self).__name__}: unknown config keys {unknown}; valid keys: {valid}")
        self.config = {**self.defaults, **config}
        self._validate()

    def _validate(self) -> None:
        """Check ``self.config`` (subclasses; use :func:`check_number`) and store clean values back."""


# ================================================================== policies
def random_choice(mask: tf.Tensor, uniform: tf.Tensor) -> tf.Tensor:
    """``[B]`` int32: per row, a uniformly random index among those where ``mask`` ``[B, n]`` is True.

    ``uniform`` ``[B, n]`` are i.i.d. U[0, 1) draws. A row with no True entry gets index 0.
    """
    return tf.argmax(tf.where(mask, uniform, -1.0), axis=-1, output_type=tf.int32)


def argmax_mask(scores: tf.Tensor) -> tf.Tensor:
    """``[B, n]`` bool: the entries equal to their row's maximum (exact ties included)."""
    return scores >= tf.reduce_max(scores, axis=-1, keepdims=True)


def _outer(batch_size) -> list:
    return [] if batch_size is None else [batch_size]


class StatefulPolicy(tf_policy.TFPolicy):
    """Base of the baselines' policies: an explicit state with a ``"step"`` counter keying the randomness.

    Randomness uses stateless TF ops seeded by ``(hash(name, seed) + salt, step)``, so an action is a pure
    function of ``(time_step, policy_state)``: the same inputs give the same action, in eager mode, in any
    ``tf.function`` and in a SavedModel exported with ``PolicySaver``. ``step`` is not reset on trial starts
    (stats are), so successive trials draw fresh numbers. tf-agents' automatic reset is off: subclasses reset
    their statistics themselves where :func:`metarl_apps.core.agent.is_first`.
    """

    def __init__(self, dist: TaskDistribution, seed: int, stats_spec: Mapping[str, tf.TypeSpec], name: str):
        state_spec = {"step": tensor_spec.TensorSpec((), tf.int64, name="step"), **stats_spec}
        super().__init__(dist.time_step_spec(), dist.action_spec(), policy_state_spec=state_spec,
                         automatic_state_reset=False, name=name)
        self._seed_key = rng.task_key("baseline-policy", name, int(seed)) >> 32  # 31 bits

    # ------------------------------------------------------------- state
    def _initial_stats(self, batch_size) -> dict:
        """The statistics at a trial start (zeros unless overridden).

        ``batch_size`` may be a tensor, or None for unbatched state (tf-agents convention).
        """
        specs = {k: v for k, v in self.policy_state_spec.items() if k != "step"}
        return tensor_spec.zero_spec_nest(specs, outer_dims=_outer(batch_size))

    def _get_initial_state(self, batch_size):
        return {"step": tf.zeros(_outer(batch_size), tf.int64), **self._initial_stats(batch_size)}

    def _reset_where_first(self, time_step: ts.TimeStep, stats: dict) -> dict:
        first = is_first(time_step)
        fresh = self._initial_stats(tf.shape(first)[0])

        def pick(new, init):
            cond = tf.reshape(first, [-1] + [1] * (new.shape.rank - 1))
            return tf.where(cond, init, new)

        return {k: pick(v, fresh[k]) for k, v in stats.items()}

    # -------------------------------------------------------- randomness
    def _seed(self, policy_state, salt: int) -> tf.Tensor:
        step = tf.reduce_max(policy_state["step"])
        return tf.stack([tf.constant(self._seed_key + salt, tf.int64), step])

    def _uniform(self, policy_state, shape, salt: int) -> tf.Tensor:
        return tf.random.stateless_uniform(shape, seed=self._seed(policy_state, salt))

    def _next_state(self, policy_state, stats: dict) -> dict:
        return {"step": policy_state["step"] + 1, **stats}
