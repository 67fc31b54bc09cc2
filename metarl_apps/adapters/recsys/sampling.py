"""Keyed values for RecSim NG's edward2 random variables: RecSim models, our per-user random streams.

RecSim NG entities draw through edward2 random variables (``ed.Categorical``, ``ed.Normal``, ...), which sample
with TF's global random state, so a user's outcomes would depend on the batch it shares and on op ordering.
:func:`keyed_values` is an edward2 tracer (``edward2/trace.py``): every random variable a RecSim entity creates
inside it receives its ``value=`` from counter-based uniforms (:mod:`metarl_apps.core.rng`), one independent
stream per batch row. RecSim's entities still build every distribution; the tracer only decides the draw:

* ``Deterministic`` / ``VectorDeterministic``: the location (no draw);
* ``Independent``: the value of the wrapped distribution;
* ``Categorical``: Gumbel-max on the logits;
* ``Normal`` and ``MultivariateNormalLinearOperator`` (and its ``Diag``/``TriL`` subclasses):
  ``loc + scale · z`` with ``z`` standard normal (Box-Muller);
* ``Bernoulli``: ``u < p``;
* any other scalar-event distribution with a ``quantile``: the inverse CDF of ``u``.

A distribution the tracer cannot key raises ``NotImplementedError`` rather than silently sampling unkeyed.
``pins`` fix the value of the random variables of given distribution classes (how a task's latent interests
enter RecSim's initial user state). In ``mode="mean"`` every random variable takes its mean (used by oracles
to run RecSim's own deterministic updates).
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator, Mapping

import edward2 as ed
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from metarl_apps.core import rng

tfd = tfp.distributions

#: draws one tracer scope may make; random variable ``i`` of a step uses counter ``counter * MAX_DRAWS + i``.
MAX_DRAWS = 64

UniformFn = Callable[[int, tf.TensorShape], tf.Tensor]


def row_uniforms(keys: tf.Tensor, counter: tf.Tensor) -> UniformFn:
    """Uniforms for per-row random variables: shape ``[B, ...]``, row ``b`` keyed by ``keys[b]`` only."""
    base = tf.cast(counter, tf.int64) * MAX_DRAWS

    def draw(index: int, shape: tf.TensorShape) -> tf.Tensor:
        rows, rest = shape[0], shape[1:]
        if rows != keys.shape[0]:
            raise ValueError(f"random variable of shape {shape} is not batched over the {keys.shape[0]} users")
        u = rng.row_uniform(keys, base + index, max(1, rest.num_elements()))
        return tf.reshape(u, shape)

    return draw


def global_uniforms(key: int, counter: int = 0) -> UniformFn:
    """Uniforms for random variables with no user batch (e.g. a corpus), all keyed by ``key``."""
    keys = tf.constant([key], tf.uint64)

    def draw(index: int, shape: tf.TensorShape) -> tf.Tensor:
        u = rng.row_uniform(keys, counter * MAX_DRAWS + index, max(1, shape.num_elements()))
        return tf.reshape(u, shape)

    return draw


def _open(u: tf.Tensor) -> tf.Tensor:
    """Map ``[0, 1)`` draws on a 2^-24 grid into the open interval ``(0, 1)``."""
    return u + 2.0**-25


def _std_normal(uniform: UniformFn, index: int, shape: tf.TensorShape) -> tf.Tensor:
    u = uniform(index, shape.concatenate([2]))
    u1, u2 = _open(u[..., 0]), u[..., 1]
    return tf.sqrt(-2.0 * tf.math.log(u1)) * tf.cos(2.0 * math.pi * u2)


def _full_shape(dist) -> tf.TensorShape:
    shape = dist.batch_shape.concatenate(dist.event_shape)
    if not shape.is_fully_defined():
        raise NotImplementedError(f"keyed sampling needs static shapes; {dist.name} has shape {shape}")
    return shape


def draw_value(dist, uniform: UniformFn | None, index: int) -> tf.Tensor:
    """The value of one draw of ``dist`` from uniforms ``uniform(index, shape)``; ``uniform=None``: the mean."""
    if isinstance(dist, (tfd.Deterministic, tfd.VectorDeterministic)):
        return tf.broadcast_to(dist.loc, _full_shape(dist))
    if isinstance(dist, tfd.Independent):
        return draw_value(dist.distribution, uniform, index)
    shape = _full_shape(dist)
    if uniform is None:
        return tf.broadcast_to(dist.mode() if isinstance(dist, tfd.Categorical) else dist.mean(), shape)
    if isinstance(dist, tfd.Categorical):
        logits = dist.logits_parameter()
        gumbel = -tf.math.log(-tf.math.log(_open(uniform(index, logits.shape))))
        return tf.argmax(logits + gumbel, axis=-1, output_type=dist.dtype)
    if isinstance(dist, tfd.Normal):
        z = _std_normal(uniform, index, shape)
        return tf.broadcast_to(dist.loc, shape) + tf.broadcast_to(dist.scale, shape) * z
    if isinstance(dist, tfd.MultivariateNormalLinearOperator):
        z = _std_normal(uniform, index, shape)
        return tf.broadcast_to(dist.mean(), shape) + dist.scale.matvec(z)
    if isinstance(dist, tfd.Bernoulli):
        return tf.cast(uniform(index, shape) < dist.probs_parameter(), dist.dtype)
    if dist.event_shape.rank == 0:
        try:
            return tf.cast(dist.quantile(_open(uniform(index, shape))), dist.dtype)
        except NotImplementedError:
            pass
    raise NotImplementedError(
        f"keyed_values cannot draw from {type(dist).__name__}; add it to metarl_apps.adapters.recsys.sampling"
    )


def _distribution_class(f) -> type | None:
    """The tfp distribution class an edward2 random-variable constructor ``f`` wraps, else ``None``."""
    cls = getattr(tfd, getattr(f, "__name__", ""), None)
    if isinstance(cls, type) and issubclass(cls, tfd.Distribution) and f.__module__ == cls.__module__:
        return cls
    return None


@contextlib.contextmanager
def keyed_values(
    uniform: UniformFn | None,
    pins: Mapping[str, tf.Tensor] | None = None,
    mode: str = "sample",
) -> Iterator[None]:
    """Trace RecSim NG code so its random variables take keyed values (see the module docstring).

    Args:
      uniform: ``uniform(index, shape)`` -> ``[shape]`` uniforms in ``[0, 1)``; the ``index``-th random draw in
        this scope gets index ``index`` (:func:`row_uniforms`, :func:`global_uniforms`).
      pins: ``{distribution class name: value}``: random variables of these classes take that value.
      mode: ``"sample"`` (keyed draws) or ``"mean"`` (every random variable takes its mean; ``uniform`` unused).
    """
    if mode not in ("sample", "mean"):
        raise ValueError(f"keyed_values(mode={mode!r}): mode must be 'sample' or 'mean'")
    pins = dict(pins or {})
    draws = [0]

    def tracer(f, *args, **kwargs):
        cls = _distribution_class(f)
        if cls is None or kwargs.get("value") is not None:
            return ed.traceable(f)(*args, **kwargs)
        rv_kwargs = {k: v for k, v in kwargs.items() if k not in ("value", "sample_shape")}
        if kwargs.get("sample_shape", ()) not in ((), [], None):
            raise NotImplementedError("keyed_values does not support sample_shape")
        dist = cls(*args, **rv_kwargs)
        if cls.__name__ in pins:
            value = tf.cast(tf.convert_to_tensor(pins[cls.__name__]), dist.dtype)
        elif mode == "mean":
            value = draw_value(dist, None, 0)
        else:
            if draws[0] >= MAX_DRAWS:
                raise RuntimeError(f"more than {MAX_DRAWS} random draws in one keyed_values scope")
            value = draw_value(dist, uniform, draws[0])
            draws[0] += 1
        return ed.RandomVariable(distribution=dist, value=value)

    with ed.trace(tracer):
        yield


def numpy_value(value) -> dict[str, np.ndarray]:
    """``{field: numpy array}`` of a RecSim ``Value`` (random variables reduced to their values)."""
    return {k: np.asarray(tf.convert_to_tensor(v)) for k, v in value.as_dict.items()}
