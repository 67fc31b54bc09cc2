"""Shared by the learner tests."""

import numpy as np
import pytest

from metarl_apps.adapters.bandits import BernoulliBanditEnvironment, BernoulliBandits
from metarl_apps.core.errors import CheckpointError

#: the smallest RL² settings the RL² learner tests train with (seconds per run)
RL2_TINY = dict(hidden_size=16, embed_sizes=(8,), tasks_per_iteration=16, minibatches=2, epochs=2)


def play(policy, dist, tasks, steps: int = 3):
    """``(actions [steps, B, ...], final policy state)`` of ``policy`` on a fresh trial of ``tasks``."""
    env = dist.make_env(tasks)
    time_step, state, out = env.reset(), policy.get_initial_state(len(tasks)), []
    for _ in range(steps):
        step = policy.action(time_step, state)
        out.append(step.action.numpy())
        time_step, state = env.step(step.action), step.state
    return np.stack(out), state


class NaNBandits(BernoulliBandits):
    """Bandits whose rewards are NaN: a learner must stop with a clear error, keeping its checkpoints."""

    def _make_env(self, tasks, seed):
        class Env(BernoulliBanditEnvironment):
            def _transition(self, action, h, counter):
                reward, obs = super()._transition(action, h, counter)
                return reward * np.nan, obs

        means = np.stack([t.params["means"] for t in tasks])
        return Env(means, [t.seed for t in tasks], self.action_spec(), self.pulls, seed=seed)


def check_resume_contract(make, name: str, dist, pool, tmp_path, *,
                          state=lambda learner: learner.net.trainable_variables, mismatch=None):
    """The checkpoint contract of a learner built by ``make(**overrides)`` and called ``name`` in its errors:
    an interrupted run resumed from its checkpoint ends where an uninterrupted run with the same seed ends
    (``state`` of both), a fresh run refuses a directory holding a checkpoint, ``restore`` loads the weights,
    and a missing or mismatched (``make(**mismatch)``, default a smaller network) checkpoint is a clear error.
    Returns the restored learner."""
    straight = make()
    straight.meta_train(dist, pool, iterations=4, seed=3, checkpoint_dir=str(tmp_path / "a"))
    make(checkpoint_every=2).meta_train(dist, pool, iterations=2, seed=3, checkpoint_dir=str(tmp_path / "b"))
    resumed = make(checkpoint_every=2)
    resumed.meta_train(dist, pool, iterations=4, seed=3, checkpoint_dir=str(tmp_path / "b"), resume=True)
    for a, b in zip(state(straight), state(resumed), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    # a fresh run into a directory holding a checkpoint would overwrite it: refused
    with pytest.raises(CheckpointError, match="already holds a checkpoint; pass --resume"):
        make().meta_train(dist, pool, iterations=4, seed=3, checkpoint_dir=str(tmp_path / "b"))
    restored = make()
    restored.restore(str(tmp_path / "a"), dist)
    for a, b in zip(state(straight), state(restored), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy())
    with pytest.raises(CheckpointError, match=f"no {name} checkpoint found"):
        make().restore(str(tmp_path), dist)
    with pytest.raises(CheckpointError, match=f"cannot be restored into {name} with this config"):
        make(**(mismatch or {"hidden_size": 8})).restore(str(tmp_path / "a"), dist)
    return restored
