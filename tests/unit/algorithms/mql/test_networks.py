"""MQL context networks: stepping equals unrolling for every context (GRU, LSTM, transition set with and
without keyed reads); the set memory itself is checked in tests/unit/networks/test_set_context.py."""

import numpy as np
import pytest
import tensorflow as tf

from metarl_apps.adapters.mdp import TabularMDPs
from metarl_apps.algorithms.mql.networks import RecurrentQNetwork


def _net(cell="set", head_size=8, set_keys=0):
    dist = TabularMDPs(states=3, actions=2, horizon=2, episodes=3)
    tf.keras.utils.set_random_seed(0)
    return RecurrentQNetwork(dist.observation_spec(), dist.action_spec(), cell=cell, hidden_size=6,
                             embed_sizes=(12,), head_size=head_size, trunk_sizes=(10,), trial_length=6,
                             set_keys=set_keys)


@pytest.mark.parametrize("cell, set_keys", [("set", 0), ("set", 4), ("gru", 0), ("lstm", 0)])
def test_unroll_equals_stepping_and_state_carries_across_chunks(cell, set_keys):
    net = _net(cell, set_keys=set_keys)
    x = tf.random.stateless_normal([2, 6, net.input_size], seed=[1, 2])
    q, z, _ = net.unroll_x(x, net.initial_state(2))
    state, steps = net.initial_state(2), []
    for t in range(6):
        q_t, _, state = net.step_x(x[:, t], state)
        steps.append(q_t)
    np.testing.assert_allclose(tf.stack(steps, 1).numpy(), q.numpy(), rtol=1e-4, atol=1e-5)
    # the first 4 steps, then the last 2 from the carried state: same Q as one unroll
    state = net.initial_state(2)
    for t in range(4):
        _, _, state = net.step_x(x[:, t], state)
    q_rest, _, _ = net.unroll_x(x[:, 4:], state)
    np.testing.assert_allclose(q_rest.numpy(), q[:, 4:].numpy(), rtol=1e-4, atol=1e-5)
    assert z.shape[-1] == net.feature_size


def test_set_context_features_are_the_trunk_output():
    dist = TabularMDPs(states=3, actions=2, horizon=2, episodes=3)
    net = RecurrentQNetwork(dist.observation_spec(), dist.action_spec(), cell="set", hidden_size=6,
                            embed_sizes=(12,), head_size=0, trial_length=6)
    assert net.feature_size == net.input_size + 2 * net.hidden_size
    x = tf.random.stateless_normal([1, 3, net.input_size], seed=[3, 4])
    _, z, h = net.unroll_x(x, net.initial_state(1))
    np.testing.assert_allclose(z.numpy(), h.numpy())
