import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec

from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.networks.memory import make_rnn, rnn_state_spec, zero_state


@pytest.mark.parametrize("cell, n_state", [("lstm", 2), ("gru", 1)])
def test_rnn_and_state_spec_agree(cell, n_state):
    rnn = make_rnn(cell, 8)
    spec = rnn_state_spec(cell, 8)
    assert rnn.name == cell and len(spec) == n_state
    state = zero_state(spec, 3)
    out = rnn(tf.ones([3, 4, 5]), initial_state=state)
    assert out[0].shape == (3, 4, 8)
    assert [s.shape for s in out[1:]] == [s.shape for s in state]


def test_zero_state_keeps_shapes_and_dtypes():
    spec = [tensor_spec.TensorSpec([2, 3], tf.float32), tensor_spec.TensorSpec([1], tf.int32)]
    z = zero_state(spec, tf.constant(4))
    assert [t.shape.as_list() for t in z] == [[4, 2, 3], [4, 1]]
    assert [t.dtype for t in z] == [tf.float32, tf.int32]
    assert all(float(tf.reduce_sum(tf.abs(tf.cast(t, tf.float32)))) == 0.0 for t in z)


def test_unknown_cell_is_a_clear_error():
    with pytest.raises(MetaRLInputError, match=r"cell='rnn': must be one of 'lstm', 'gru', 'set'"):
        make_rnn("rnn", 8)
