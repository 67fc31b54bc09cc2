"""Turn a (nested) trial observation into one flat float vector, driven by its specs.

Bounded integer leaves with a small range are one-hot encoded per element (previous actions, slates, the
user's choice); float leaves are flattened. An ``"action_mask"`` leaf is passed through separately
(see :func:`split_action_mask`) and never encoded.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec

from metarl_apps.core.env import DOC_FEATURES
from metarl_apps.core.errors import MetaRLInputError

ACTION_MASK = "action_mask"
MAX_ONE_HOT = 4096


def _is_small_int(spec) -> bool:
    return (
        spec.dtype.is_integer
        and isinstance(spec, tensor_spec.BoundedTensorSpec)
        and int(np.max(spec.maximum) - np.min(spec.minimum)) + 1 <= MAX_ONE_HOT
    )


def flat_size(spec) -> int:
    """Size of the encoding of one (unbatched) leaf."""
    n = int(np.prod(spec.shape.as_list() or [1]))
    if _is_small_int(spec):
        return n * (int(np.max(spec.maximum) - np.min(spec.minimum)) + 1)
    return n


def split_action_mask(observation: dict) -> tuple[dict, tf.Tensor | None]:
    """``(observation without the mask, mask or None)``; the mask lives at ``observation["obs"]["action_mask"]``."""
    obs = observation.get("obs")
    if isinstance(obs, dict) and ACTION_MASK in obs:
        rest = {k: v for k, v in obs.items() if k != ACTION_MASK}
        return {**observation, "obs": rest}, obs[ACTION_MASK]
    return observation, None


def encode_leaf(x: tf.Tensor, spec, outer_rank: int) -> tf.Tensor:
    """Encode one leaf ``[*outer, *spec.shape]`` -> ``[*outer, flat_size(spec)]`` float32."""
    outer = tf.shape(x)[:outer_rank]
    if _is_small_int(spec):
        lo = int(np.min(spec.minimum))
        depth = int(np.max(spec.maximum)) - lo + 1
        x = tf.one_hot(tf.cast(x, tf.int32) - lo, depth, dtype=tf.float32)
    else:
        x = tf.cast(x, tf.float32)
    return tf.reshape(x, tf.concat([outer, [flat_size(spec)]], axis=0))


def encode_observation(observation, spec, outer_rank: int = 1) -> tf.Tensor:
    """Concatenate the encodings of every leaf (mask excluded): ``[*outer, D]``."""
    observation, _ = split_action_mask(observation)
    spec, _ = split_action_mask(spec)
    leaves = tf.nest.flatten(observation)
    specs = tf.nest.flatten(spec)
    return tf.concat([encode_leaf(x, s, outer_rank) for x, s in zip(leaves, specs, strict=True)], axis=-1)


def encoded_size(spec) -> int:
    spec, _ = split_action_mask(spec)
    return sum(flat_size(s) for s in tf.nest.flatten(spec))


def item_feature_size(obs_spec, num_items: int, action_shape: tuple[int, ...], who: str) -> int:
    """``F`` of ``obs_spec[DOC_FEATURES]`` ``[num_items, F]`` (``obs_spec``: the spec of ``observation["obs"]``),
    for learners that score each item from its features (``scoring: item_features``); a one-line error naming
    the fix when the family has no such leaf or the action is not a scalar or ``[k]`` slate."""
    docs = obs_spec.get(DOC_FEATURES) if isinstance(obs_spec, dict) else None
    shape = docs.shape.as_list() if docs is not None else None
    if shape is None or len(shape) != 2 or shape[0] != num_items or len(action_shape) > 1:
        raise MetaRLInputError(
            f"{who} scoring 'item_features' needs obs[{DOC_FEATURES!r}] of shape [num_items={num_items}, F] (one "
            f"feature row per action value) and a scalar or [k] action; this family's observation has "
            f"{sorted(obs_spec) if isinstance(obs_spec, dict) else obs_spec}; use scoring 'per_item'")
    return int(shape[1])
