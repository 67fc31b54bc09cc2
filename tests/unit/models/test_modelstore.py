"""The model registry: atomic saves, verified loads, restore without the training config, SavedModel policy."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from tf_agents.policies import policy_saver

from metarl_apps import modelstore
from metarl_apps.adapters.bandits import BernoulliBandits
from metarl_apps.algorithms.rl2 import RL2
from metarl_apps.core.errors import CheckpointError, MetaRLInputError
from metarl_apps.evaluation.evaluator import cumulative_returns

TINY = dict(hidden_size=8, embed_sizes=(8,), tasks_per_iteration=16, minibatches=2, epochs=1, greedy_eval=True)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry")
    dist = BernoulliBandits(arms=2, pulls=3)
    learner = RL2(**TINY)
    learner.meta_train(dist, dist.sample(32, "train"), iterations=2, seed=0, checkpoint_dir=str(root / "ckpt"))
    path = modelstore.save_model(learner, dist, root / "models", "tiny", checkpoint_dir=str(root / "ckpt"),
                                 agent="rl2", algorithm="rl2", training={"iterations": 2, "seed": 0},
                                 evaluation={"metric": "cumulative_reward", "n_tasks": 5,
                                             "rows": [{"agent": "rl2", "budget": 3, "mean": 1.5, "ci95": 0.1,
                                                       "n_tasks": 5, "seeds": 1}]})
    return learner, dist, path


def _copy(path, tmp_path):
    dst = tmp_path / "models" / path.name
    shutil.copytree(path, dst)
    return dst


def test_save_writes_savedmodel_checkpoint_and_card(saved):
    _, _, path = saved
    assert sorted(p.name for p in path.iterdir()) == ["card.json", "card.md", "checkpoint", "policy"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary dirs left
    card = modelstore.load_card(path)
    assert card["algorithm"] == "rl2" and card["agent"] == "rl2" and card["name"] == "tiny"
    assert card["family"] == {"name": "bandits.bernoulli", "params": {"arms": 2, "pulls": 3}}
    assert card["config"]["hidden_size"] == 8 and card["versions"]["tensorflow"] == "2.15.1"
    assert "policy/saved_model.pb" in card["files"] and "card.md" in card["files"]
    assert any(f.startswith("checkpoint/ckpt-2") for f in card["files"])
    assert "| 3 | 1.500 ± 0.100 |" in (path / "card.md").read_text()
    (entry,) = modelstore.list_models(path.parent)
    assert entry == {"name": "tiny", "family": "bandits.bernoulli", "algorithm": "rl2",
                     "metric": "cumulative_reward@3 = 1.500 ± 0.100", "error": None}


def test_restored_learner_and_savedmodel_act_like_the_trained_learner(saved):
    learner, dist, path = saved
    tasks = dist.sample(200, "test", seed=3)
    expected = cumulative_returns(lambda chunk, _: learner.adapt(chunk, 3), dist, tasks, [1, 3])
    restored, rdist, _ = modelstore.restore_learner(path)  # no config passed: the card says it
    assert rdist.family == dist.family
    got = cumulative_returns(lambda chunk, _: restored.adapt(chunk, 3), rdist, tasks, [1, 3])
    np.testing.assert_array_equal(got, expected)
    saved_policy = modelstore.load_saved_policy(path)
    got = cumulative_returns(lambda chunk, _: saved_policy, dist, tasks, [1, 3])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("damage, match", [
    (lambda p: (p / "card.json").unlink(), "no card.json .an incomplete or interrupted save"),
    (lambda p: (p / "card.json").write_text("{\"format\": "), "card.json: corrupted"),
    (lambda p: (p / "card.json").write_text(json.dumps({"format": "other/9"})), "incompatible model format"),
    (lambda p: (p / "policy" / "saved_model.pb").unlink(), "missing file policy/saved_model.pb"),
    (lambda p: _truncate(next((p / "checkpoint").glob("*.data-*"))), "does not match its sha256"),
])
def test_damaged_models_are_refused_with_one_line(saved, tmp_path, damage, match):
    path = _copy(saved[2], tmp_path)
    damage(path)
    with pytest.raises(CheckpointError, match=match) as err:
        modelstore.restore_learner(path)
    assert "\n" not in str(err.value) and ("retrain" in str(err.value))
    (entry,) = modelstore.list_models(path.parent)
    assert entry["error"] and entry["algorithm"] is None


def _truncate(f):
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])


def test_wrong_family_and_missing_model(saved, tmp_path):
    with pytest.raises(CheckpointError, match=r"trained on bandits.bernoulli .*'arms': 2.* uses bandits.bernoulli"):
        modelstore.restore_learner(saved[2], BernoulliBandits(arms=3, pulls=3))
    with pytest.raises(CheckpointError, match="no such model directory"):
        modelstore.load_card(tmp_path / "ghost")
    with pytest.raises(MetaRLInputError, match="model name '.hidden'"):
        modelstore.check_model_name(".hidden")


def test_a_crash_mid_save_leaves_the_old_model_and_no_partial_one(saved, tmp_path, monkeypatch):
    learner, dist, path = saved
    registry = tmp_path / "models"
    old = _copy(path, tmp_path)
    before = modelstore.load_card(old)["date"]

    def crash(self, *a, **k):
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(policy_saver.PolicySaver, "save", crash)
    ckpt = os.path.join(os.path.dirname(path.parent), "ckpt")
    for name in ("tiny", "fresh"):
        with pytest.raises(KeyboardInterrupt):
            modelstore.save_model(learner, dist, registry, name, checkpoint_dir=ckpt, agent="rl2", algorithm="rl2")
    assert sorted(p.name for p in registry.iterdir()) == ["tiny"]  # no temporary or partial directory
    assert modelstore.load_card(old)["date"] == before
