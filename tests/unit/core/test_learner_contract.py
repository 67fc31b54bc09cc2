"""The MetaLearner contract on a tiny fake learner: public methods check and delegate to hooks."""

import dataclasses

import numpy as np
import pytest
from tf_agents.policies import random_tf_policy

from metarl_apps.adapters.bandits import BernoulliBandits
from metarl_apps.adapters.mdp import TabularMDPs
from metarl_apps.core.agent import AdaptedPolicy, MetaLearner, TrainResult
from metarl_apps.core.errors import CheckpointError, MetaRLInputError, SpecMismatchError


@dataclasses.dataclass
class _Config:
    favourite_arm: int = 0

    def __post_init__(self):
        if self.favourite_arm < 0:
            raise MetaRLInputError(f"favourite_arm={self.favourite_arm}: must be >= 0")


class _RandomAdapted(AdaptedPolicy, random_tf_policy.RandomTFPolicy):
    pass


class _FakeLearner(MetaLearner):
    config_cls = _Config
    name = "fake"

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.calls = []

    def _meta_train(self, dist, train_tasks, **kwargs):
        self.calls.append(("train", len(train_tasks or []), kwargs["iterations"]))
        return TrainResult(iterations=kwargs["iterations"], wall_time_s=0.0)

    def _adapt(self, env, tasks, budget):
        self.calls.append(("adapt", env.batch_size, budget))
        return _RandomAdapted(env.time_step_spec(), env.action_spec(), adaptation={"budget": budget})


def test_config_from_mapping_and_validation():
    assert _FakeLearner({"favourite_arm": 2}).config.favourite_arm == 2
    with pytest.raises(MetaRLInputError, match="favourite_arm=-1"):
        _FakeLearner(favourite_arm=-1)
    with pytest.raises(MetaRLInputError, match="config must be a _Config or a mapping"):
        _FakeLearner(config=3)


def test_public_methods_check_then_delegate():
    dist = BernoulliBandits(arms=3, pulls=5)
    learner = _FakeLearner()
    with pytest.raises(MetaRLInputError, match="call meta_train"):
        learner.adapt(dist.sample(2, "test"), 3)
    with pytest.raises(MetaRLInputError, match="held-out"):
        learner.meta_train(dist, dist.sample(2, "test"), iterations=1)
    with pytest.raises(MetaRLInputError, match="iterations=0"):
        learner.meta_train(dist, iterations=0)
    with pytest.raises(MetaRLInputError, match="resume=True needs checkpoint_dir"):
        learner.meta_train(dist, iterations=1, resume=True)
    learner.meta_train(dist, dist.sample(4, "train"), iterations=2)
    policy = learner.adapt(dist.sample(3, "test"), 4)
    assert isinstance(policy, AdaptedPolicy) and policy.adaptation == {"budget": 4}
    with pytest.raises(MetaRLInputError, match="budget=0"):
        learner.adapt(dist.sample(3, "test"), 0)
    other = TabularMDPs()
    with pytest.raises(SpecMismatchError, match="do not match"):
        learner.adapt(other.make_env(other.sample(2, "test")), 1)
    assert learner.calls == [("train", 4, 2), ("adapt", 3, 4)]


def test_evaluate_is_implemented_once_in_the_base_class():
    dist = BernoulliBandits(arms=2, pulls=6)
    learner = _FakeLearner()
    learner.meta_train(dist, iterations=1)
    curve = learner.evaluate(dist, dist.sample(500, "test"), [1, 6])
    assert curve.agent == "fake" and curve.values.shape == (1, 500, 2)
    assert abs(curve.at(6) - 3.0) < 0.3
    with pytest.raises(MetaRLInputError, match="held-out"):
        learner.evaluate(dist, dist.sample(5, "train"), [1])
    with pytest.raises(MetaRLInputError, match="exceeds the trial length of 6"):
        learner.evaluate(dist, dist.sample(5, "test"), [7])
    with pytest.raises(CheckpointError, match="no checkpoint directory"):
        learner.restore("/nonexistent/ckpt", dist)
    assert np.isfinite(curve.values).all()
