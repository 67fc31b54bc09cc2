"""Sinusoid regression (Finn et al. 2017): task streams, a smoke run, and the learning-quality floor (slow)."""

import time

import numpy as np
import pytest
import tensorflow as tf

from metarl_apps.algorithms.maml.config import MAMLConfig
from metarl_apps.algorithms.maml.supervised import (
    SinusoidTasks,
    compare,
    evaluate,
    meta_train_sinusoid,
    pretrain_sinusoid,
)
from metarl_apps.core.errors import MetaRLInputError


def test_sinusoid_tasks_ranges_reproducible_and_train_test_streams_differ():
    tasks = SinusoidTasks(seed=3)
    b = tasks.sample(200, 10, 5, "train", 7)
    assert b.x_support.shape == (200, 10, 1) and b.y_query.shape == (200, 5, 1)
    amp, phase, x = b.amplitude.numpy(), b.phase.numpy(), b.x_support.numpy()
    assert amp.min() >= 0.1 and amp.max() <= 5.0 and phase.min() >= 0 and phase.max() <= np.pi
    assert x.min() >= -5 and x.max() <= 5
    np.testing.assert_allclose(b.y_support.numpy(), amp[:, None, None] * np.sin(x - phase[:, None, None]),
                               rtol=1e-5, atol=1e-5)
    again = SinusoidTasks(seed=3).sample(200, 10, 5, "train", tf.constant(7, tf.int64))
    np.testing.assert_array_equal(again.amplitude.numpy(), amp)
    test = tasks.sample(200, 10, 5, "test", 7)
    assert not np.any(np.isin(test.amplitude.numpy(), amp))
    assert not np.array_equal(tasks.sample(200, 10, 5, "train", 8).amplitude.numpy(), amp)
    with pytest.raises(MetaRLInputError, match=r"split='val': must be one of \['test', 'train'\]"):
        tasks.sample(1, 1, 1, "val")


@pytest.mark.parametrize("kwargs", [{"learn_inner_lr": True}, {"first_order": True, "inner_steps": 2}])
def test_meta_train_and_evaluate_smoke(kwargs):
    config = MAMLConfig(hidden_sizes=(8,), meta_batch_size=4, **kwargs)
    model = meta_train_sinusoid(config, iterations=3)
    assert model.losses.shape == (3,) and np.all(np.isfinite(model.losses))
    if config.learn_inner_lr:
        assert [tuple(r.shape) for r in model.lrs] == [tuple(p.shape) for p in model.params]
        assert not np.allclose(model.lrs[0].numpy(), 0.01)  # the rates were meta-trained
    r = evaluate(model, num_tasks=6, num_query=7)
    assert r["mse_after"].shape == (6,) and r["ci95"] > 0 and np.isfinite(r["mean"])


def test_pretraining_is_zero_inner_steps_and_iterations_are_checked():
    model = pretrain_sinusoid(MAMLConfig(hidden_sizes=(4,), meta_batch_size=2, first_order=True), 2)
    assert model.config.inner_steps == 0 and not model.config.first_order and model.lrs == 0.01
    with pytest.raises(MetaRLInputError, match=r"iterations=0: must be a positive integer"):
        meta_train_sinusoid(MAMLConfig(), 0)


@pytest.mark.slow
def test_maml_beats_pretrained_by_2x_after_one_step_on_held_out_sinusoids():
    start = time.perf_counter()
    r = compare(MAMLConfig(), iterations=3000, num_eval_tasks=500)
    m, p = r["maml"], r["pretrained"]
    print(f"MAML {m['mean']:.3f} ± {m['ci95']:.3f}, pretrained {p['mean']:.3f} ± {p['ci95']:.3f}, "
          f"ratio {r['ratio']:.3f}, {time.perf_counter() - start:.0f} s")
    assert r["ratio"] <= 0.5
    assert m["mean"] < m["mse_before"].mean()  # the one step is what does the work
