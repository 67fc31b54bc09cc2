"""The MQL policy: greedy (epsilon 0) over context-conditioned Q values; a tf-agents ``TFPolicy``.

``policy_state`` is the recurrent context (zero at the trial's ``FIRST`` step by tf-agents' automatic state
reset, carried across the inner episodes of a trial). After adaptation each task has its own Q head: the
kernels are stacked ``[B, Z, n_q]`` and row ``i`` of the batch must be task ``i`` of the adaptation (the
exported policy then acts on batches of exactly those B tasks, in that order). ``PolicySaver`` exports it.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp
from tf_agents.trajectories import policy_step

from metarl_apps.algorithms.mql.losses import greedy_action
from metarl_apps.algorithms.mql.networks import RecurrentQNetwork, mask_q
from metarl_apps.core.agent import AdaptedPolicy


class MQLPolicy(AdaptedPolicy):
    def __init__(self, net: RecurrentQNetwork, time_step_spec, action_spec, *,
                 heads: tuple[tf.Tensor, tf.Tensor] | None = None, adaptation: dict | None = None):
        super().__init__(time_step_spec, action_spec, policy_state_spec=net.state_spec, adaptation=adaptation,
                         name="mql_policy")
        self._net = net
        self._heads = None
        if heads is not None:  # per-task Q heads: kernel [B, Z, n_q], bias [B, n_q]
            self._heads = (tf.Variable(heads[0], trainable=False, name="task_kernels"),
                           tf.Variable(heads[1], trainable=False, name="task_biases"))

    def q_values(self, time_step, policy_state):
        """``(q [B, ...], new_state)`` for a batch of trial time steps."""
        net = self._net
        x = net.encode(time_step.observation, 1)
        q, z, new_state = net.step_x(x, policy_state)
        if self._heads is not None:
            kernel, bias = self._heads
            q = net.shape_q(tf.einsum("bz,bzq->bq", z, kernel) + bias)
        return mask_q(q, time_step.observation, net.kind), new_state

    def _distribution(self, time_step, policy_state):
        q, new_state = self.q_values(time_step, policy_state)
        action = greedy_action(q, self._net.kind, self._net.slate_size) + self._net.action_min
        dist = tfp.distributions.Deterministic(loc=tf.cast(action, self.action_spec.dtype))
        if self._net.action_shape:
            dist = tfp.distributions.Independent(dist, reinterpreted_batch_ndims=len(self._net.action_shape))
        return policy_step.PolicyStep(dist, new_state, ())
