"""SIGKILL `metarl train` mid-run, rerun with --resume: training continues from the last checkpoint (not from
scratch) and the model registry never holds a partial model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import tensorflow as tf
import yaml

from metarl_apps import modelstore
from metarl_apps.core.errors import CheckpointError
from metarl_apps.scenario.training import latest_iteration

ITERATIONS = 120


def _steps(event_file: Path, tag: str) -> list[int]:
    steps = []
    for record in tf.data.TFRecordDataset(str(event_file)):
        event = tf.compat.v1.Event.FromString(record.numpy())
        if any(v.tag == tag for v in event.summary.value):
            steps.append(int(event.step))
    return steps


def _train(args, **kw):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen([sys.executable, "-m", "metarl_apps.cli", "train", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_sigkill_then_resume_continues_and_leaves_no_partial_model(tmp_path):
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(yaml.safe_dump({
        "name": "tiny", "family": {"name": "bandits.bernoulli", "params": {"arms": 2, "pulls": 3}},
        "tasks": {"train": 32, "test": 8, "seed": 0}, "budgets": [1, 3],
        "agents": [{"name": "rl2", "algorithm": "rl2", "train": {"iterations": ITERATIONS},
                    "config": {"hidden_size": 8, "embed_sizes": [8], "tasks_per_iteration": 16, "minibatches": 2,
                               "epochs": 1, "checkpoint_every": 2, "log_every": 1}}]}))
    out, models = tmp_path / "out", tmp_path / "models"
    args = [str(scenario), "-o", str(out), "--no-progress", "--models", str(models)]
    ckpt = out / "checkpoints" / "rl2" / "seed_0"
    proc = _train(args)
    deadline = time.time() + 120
    while latest_iteration(ckpt) == 0:  # wait for the first checkpoint
        assert proc.poll() is None, f"train exited early: {proc.communicate()}"
        assert time.time() < deadline, "no checkpoint within 120 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    killed_at = latest_iteration(ckpt)
    assert 2 <= killed_at < ITERATIONS, "killed too late to test resuming"
    # at kill time the registry holds no model that loads (nothing, or only a hidden temporary directory)
    for d in (models.iterdir() if models.exists() else []):
        assert d.name.startswith(".") or _refused(d)
    assert all(m["error"] for m in modelstore.list_models(models))
    first_events = set((out / "tensorboard").rglob("events.out.tfevents.*"))

    proc = _train([*args, "--resume"])
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert f"resuming rl2 seed 0 from iteration {killed_at}" in stdout
    (new_events,) = set((out / "tensorboard").rglob("events.out.tfevents.*")) - first_events
    steps = _steps(new_events, "rl2/trial_return")
    # the resumed run logged iterations killed_at+1 .. ITERATIONS only: it continued, it did not restart
    assert steps[0] == killed_at + 1 and steps[-1] == ITERATIONS and len(steps) == ITERATIONS - killed_at
    assert latest_iteration(ckpt) == ITERATIONS
    card = modelstore.load_card(models / "tiny-rl2")
    assert card["checkpoint"]["prefix"] == f"ckpt-{ITERATIONS}" and card["training"]["iterations"] == ITERATIONS
    assert card["training"]["resumed_from_iteration"] == killed_at


def _refused(d: Path) -> bool:
    try:
        modelstore.load_card(d)
    except CheckpointError:
        return True
    return False
