"""MAMLConfig validation: one-line errors naming the field, the value and the rule."""

import pytest

from metarl_apps.algorithms.maml.config import MAMLConfig
from metarl_apps.core.errors import MetaRLInputError


def test_defaults_are_the_sinusoid_setup_of_finn_et_al():
    c = MAMLConfig()
    assert (c.inner_lr, c.inner_steps, c.first_order, c.learn_inner_lr) == (0.01, 1, False, False)
    assert (c.meta_batch_size, c.hidden_sizes) == (25, (40, 40))
    assert MAMLConfig(hidden_sizes=[8]).hidden_sizes == (8,)  # lists become tuples (frozen, hashable)


@pytest.mark.parametrize("kwargs, message", [
    ({"inner_lr": -0.1}, r"^MAMLConfig\.inner_lr=-0\.1: must be a positive number$"),
    ({"inner_lr": 0}, r"^MAMLConfig\.inner_lr=0: must be a positive number$"),
    ({"outer_lr": "fast"}, r"^MAMLConfig\.outer_lr='fast': must be a positive number$"),
    ({"inner_steps": 0, "first_order": True},
     r"^MAMLConfig\.inner_steps=0: must be >= 1 with first_order=True \(zero inner steps leaves no inner gradient\)$"),
    ({"inner_steps": 0, "learn_inner_lr": True}, r"^MAMLConfig\.inner_steps=0: must be >= 1 with learn_inner_lr"),
    ({"inner_steps": -1}, r"^MAMLConfig\.inner_steps=-1: must be a non-negative integer$"),
    ({"inner_steps": 1.5}, r"^MAMLConfig\.inner_steps=1\.5: must be a non-negative integer$"),
    ({"first_order": "yes"}, r"^MAMLConfig\.first_order='yes': must be true or false$"),
    ({"learn_inner_lr": 1}, r"^MAMLConfig\.learn_inner_lr=1: must be true or false$"),
    ({"meta_batch_size": 0}, r"^MAMLConfig\.meta_batch_size=0: must be a positive integer$"),
    ({"hidden_sizes": (40, 0)}, r"^MAMLConfig\.hidden_sizes=\(40, 0\): must be a list of positive integers$"),
    ({"hidden_sizes": 40}, r"^MAMLConfig\.hidden_sizes=40: must be a list of positive integers$"),
    ({"seed": -3}, r"^MAMLConfig\.seed=-3: must be a non-negative integer$"),
    ({"objective": "q_learning"}, r"^MAMLConfig\.objective='q_learning': must be 'policy_gradient' or 'reward_model'$"),
    ({"explore_epsilon": 1.5}, r"^MAMLConfig\.explore_epsilon=1\.5: must be in \[0, 1\]$"),
    ({"post_episodes": 0}, r"^MAMLConfig\.post_episodes=0: must be a positive integer$"),
    ({"post_episodes": 3}, r"^MAMLConfig\.post_episodes=3: must be 1 unless objective is 'reward_model'"),
])
def test_bad_config_is_a_clear_error(kwargs, message):
    with pytest.raises(MetaRLInputError, match=message):
        MAMLConfig(**kwargs)


def test_zero_inner_steps_second_order_is_pretraining_and_allowed():
    assert MAMLConfig(inner_steps=0).inner_steps == 0
