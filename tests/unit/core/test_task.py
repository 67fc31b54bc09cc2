import numpy as np
import pytest

from metarl_apps.adapters.bandits import BernoulliBandits
from metarl_apps.adapters.mdp import TabularMDPs
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.task import Task


def test_same_seed_same_tasks_and_params_are_read_only():
    d = BernoulliBandits(arms=3, pulls=4)
    a, b = d.sample(5, split="train", seed=3), d.sample(5, split="train", seed=3)
    assert a == b
    assert [t.task_id for t in a] == [f"train/3/{i}" for i in range(5)]
    with pytest.raises(ValueError, match="read-only"):
        a[0].params["means"][0] = 1.0
    with pytest.raises(TypeError):
        a[0].params["new"] = 1  # mapping proxy


def test_prefix_stability_and_split_disjointness():
    d = TabularMDPs()
    small, large = d.sample(3, "test", 0), d.sample(10, "test", 0)
    assert small == large[:3]  # task i does not depend on how many were drawn
    train = d.sample(10, "train", 0)
    assert not any(x.same_params(y) for x in train for y in large)


def test_task_equality_compares_arrays():
    t1 = Task("x", "f", {"m": np.array([1.0, 2.0])}, "train", 1)
    t2 = Task("x", "f", {"m": np.array([1.0, 2.0])}, "train", 1)
    t3 = Task("x", "f", {"m": np.array([1.0, 2.5])}, "train", 1)
    assert t1 == t2 and t1 != t3 and hash(t1) == hash(t2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 0}, "n must be a positive integer"),
        ({"n": 2, "split": "valid"}, "split must be one of"),
        ({"n": 2, "seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_sample_rejects_bad_arguments(kwargs, match):
    with pytest.raises(MetaRLInputError, match=match):
        BernoulliBandits().sample(**kwargs)


def test_bad_task_split_and_bad_family_params():
    with pytest.raises(MetaRLInputError, match="split 'dev'"):
        Task("x", "f", {}, "dev", 0)
    with pytest.raises(MetaRLInputError, match="arms=1 must be at least 2"):
        BernoulliBandits(arms=1)
    with pytest.raises(MetaRLInputError, match="pulls=0 must be a positive integer"):
        BernoulliBandits(pulls=0)
    with pytest.raises(MetaRLInputError, match="initial_state=10"):
        TabularMDPs(initial_state=10)
    with pytest.raises(MetaRLInputError, match="reward_noise=-1"):
        TabularMDPs(reward_noise=-1)


def test_make_env_refuses_foreign_tasks():
    with pytest.raises(MetaRLInputError, match="belongs to family 'mdp.tabular'"):
        BernoulliBandits().make_env(TabularMDPs().sample(1))
    with pytest.raises(MetaRLInputError, match="at least one Task"):
        BernoulliBandits().make_env([])


def test_task_prior_moments():
    means = np.stack([t.params["means"] for t in BernoulliBandits(arms=5).sample(2000, "train", 0)])
    assert abs(means.mean() - 0.5) < 0.01 and abs(means.var() - 1 / 12) < 0.005
    mdps = TabularMDPs().sample(300, "train", 0)
    mu = np.stack([t.params["reward_means"] for t in mdps])
    p = np.stack([t.params["transitions"] for t in mdps])
    assert abs(mu.mean() - 1.0) < 0.05 and abs(mu.std() - 1.0) < 0.05
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
    assert abs(p.mean() - 0.1) < 1e-3
