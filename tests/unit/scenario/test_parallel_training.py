"""``metarl run/train --jobs N``: (learner, training seed) pairs meta-trained in parallel processes give the
sequential run's checkpoints and results; a worker's error reaches the caller as the same one-line error."""

import json

import pytest
import tensorflow as tf
import yaml

from metarl_apps.cli import main
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.scenario import load_scenario
from metarl_apps.scenario.runner import run_scenario
from metarl_apps.scenario.training import checkpoint_dir, latest_iteration


def _scenario(tmp_path, train=256, **config):
    doc = {
        "name": "tiny-rl2-seeds",
        "family": {"name": "bandits.bernoulli", "params": {"arms": 2, "pulls": 5}},
        "tasks": {"train": train, "test": 300, "seed": 0},
        "budgets": [1, 5],
        "seeds": 2,
        "agents": [{"name": "rl2", "algorithm": "rl2", "train": {"iterations": 6},
                    "config": {"hidden_size": 16, "embed_sizes": [16], "tasks_per_iteration": 32,
                               "checkpoint_every": 3, **config}},
                   {"name": "random", "baseline": "random"}],
        "expectations": ["random@5 >= 0"],
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _rl2_rows(out):
    return [r for r in json.loads((out / "results.json").read_text())["rows"] if r["agent"] == "rl2"]


def _weights(out, seed):
    reader = tf.train.load_checkpoint(str(checkpoint_dir(out, "rl2", seed)))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "/.ATTRIBUTES/" in k}


def test_parallel_seeds_match_the_sequential_run(tmp_path, capsys):
    path = _scenario(tmp_path)
    parallel, sequential = tmp_path / "parallel", tmp_path / "sequential"
    assert main(["run", str(path), "-o", str(parallel), "--jobs", "2", "--no-progress"]) == 0
    log = capsys.readouterr().out
    assert "training 2 learner seeds, 2 at a time" in log and "trained rl2 seed 1: 6 iterations" in log
    run_scenario(load_scenario(path), sequential, progress=False, log=lambda _: None)

    assert _rl2_rows(parallel) == _rl2_rows(sequential)  # every budget's mean, CI and per-seed spread
    for seed in (0, 1):
        assert latest_iteration(checkpoint_dir(parallel, "rl2", seed)) == 6
        a, b = _weights(parallel, seed), _weights(sequential, seed)
        assert a.keys() == b.keys() and len(a) > 5
        assert all((a[k] == b[k]).all() for k in a), f"seed {seed}: weights differ from the sequential run"
    wall = json.loads((parallel / "results.json").read_text())["wall_time_s"]
    assert wall["parallel_training"] > 0 and "parallel_training" not in json.loads(
        (sequential / "results.json").read_text())["wall_time_s"]
    # run again with --resume: nothing left to train, the same numbers
    assert main(["run", str(path), "-o", str(parallel), "--jobs", "2", "--resume", "--no-progress"]) == 0
    assert _rl2_rows(parallel) == _rl2_rows(sequential)


def test_a_failing_worker_raises_its_error_and_bad_jobs_are_refused(tmp_path, capsys):
    # 8 training tasks cannot fill 16 minibatches: raised inside meta-training, i.e. in the worker process
    path = _scenario(tmp_path, train=8, minibatches=16)
    with pytest.raises(MetaRLInputError, match="cannot fill 16 minibatches"):
        run_scenario(load_scenario(path), tmp_path / "out", progress=False, log=lambda _: None, jobs=2)
    assert main(["train", str(path), "-o", str(tmp_path / "o2"), "--jobs", "2", "--no-progress",
                 "--no-save-model"]) == 2
    assert "cannot fill 16 minibatches" in capsys.readouterr().err
    assert main(["run", str(_scenario(tmp_path)), "-o", str(tmp_path / "o3"), "--jobs", "0"]) == 2
    assert "--jobs 0: must be a whole number >= 1" in capsys.readouterr().err
