"""``check_task_distribution``: what every adapter, ours or a user's, must pass.

Run it on a new task family before using it with any learner::

    from metarl_apps.adapters.checks import check_task_distribution
    check_task_distribution(MyUsers(num_topics=8))

It raises :class:`~metarl_apps.core.errors.ConformanceError` naming the first broken rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from tf_agents.environments import tf_environment
from tf_agents.specs import tensor_spec
from tf_agents.utils import nest_utils

from metarl_apps.core.errors import ConformanceError
from metarl_apps.core.task import Task, TaskDistribution


def _fail(dist: TaskDistribution, rule: str, detail: str) -> None:
    raise ConformanceError(f"{dist.family or type(dist).__name__}: {rule}: {detail}")


def _to_numpy(nest: Any) -> list[np.ndarray]:
    return [np.asarray(x) for x in tf.nest.flatten(nest)]


def _random_actions(dist: TaskDistribution, time_step, batch: int, seed: int):
    """Random valid actions ``[batch, ...]``; families with action masks provide ``random_actions``."""
    custom = getattr(dist, "random_actions", None)
    if callable(custom):
        return custom(time_step, seed)
    return tensor_spec.sample_spec_nest(dist.action_spec(), seed=seed, outer_dims=(batch,))


def _slice_row(nest: Any, i: int) -> Any:
    return tf.nest.map_structure(lambda x: x[i : i + 1], nest)


def check_task_distribution(dist: TaskDistribution, num_tasks: int = 4, num_steps: int | None = None) -> None:
    """Check the :class:`TaskDistribution` contract; raise ``ConformanceError`` on the first violation.

    Rules: same seed -> same tasks and different seed -> different tasks; train and test splits disjoint;
    ``make_env(tasks)`` is a tf-agents ``TFEnvironment`` whose batch size is ``len(tasks)`` and whose specs
    equal the declared ones; every time step conforms to those specs; stepping the batch gives, row by row,
    what stepping each task alone gives (over a whole trial plus the automatic reset into the next one).
    """
    if not isinstance(dist, TaskDistribution):
        raise ConformanceError(f"expected a TaskDistribution, got {type(dist).__name__}")

    # --- determinism of sampling
    a = dist.sample(num_tasks, split="train", seed=7)
    b = dist.sample(num_tasks, split="train", seed=7)
    if not all(isinstance(t, Task) for t in a) or len(a) != num_tasks:
        _fail(dist, "sample", f"sample({num_tasks}) must return {num_tasks} Task objects")
    if a != b:
        _fail(dist, "same seed -> same tasks", "two sample(n, 'train', seed=7) calls differ")
    c = dist.sample(num_tasks, split="train", seed=8)
    if all(x.same_params(y) for x, y in zip(a, c, strict=True)):
        _fail(dist, "seeds matter", "seed 7 and seed 8 gave tasks with identical parameters")

    # --- disjoint splits
    train = dist.sample(max(num_tasks, 16), split="train", seed=0)
    test = dist.sample(max(num_tasks, 16), split="test", seed=0)
    if {t.task_id for t in train} & {t.task_id for t in test}:
        _fail(dist, "disjoint splits", "train and test share task ids")
    if any(t.split != "train" for t in train) or any(t.split != "test" for t in test):
        _fail(dist, "splits", "tasks report a split other than the one requested")
    for x in train:
        for y in test:
            if x.same_params(y):
                _fail(dist, "disjoint splits", f"train task {x.task_id} and test task {y.task_id} are the same task")

    # --- environment type, batch size, specs
    tasks = dist.sample(num_tasks, split="test", seed=3)
    env = dist.make_env(tasks)
    if not isinstance(env, tf_environment.TFEnvironment):
        _fail(dist, "make_env", f"must return a tf_agents TFEnvironment, got {type(env).__name__}")
    if env.batch_size != len(tasks):
        _fail(dist, "batch = tasks", f"batch_size {env.batch_size} != len(tasks) {len(tasks)}")
    if env.time_step_spec() != dist.time_step_spec():
        _fail(dist, "specs", "env.time_step_spec() differs from dist.time_step_spec()")
    if env.action_spec() != dist.action_spec():
        _fail(dist, "specs", "env.action_spec() differs from dist.action_spec()")

    steps = num_steps or dist.horizon * dist.episodes_per_trial + 2
    singles = [dist.make_env([t]) for t in tasks]
    batch_ts = env.reset()
    single_ts = [e.reset() for e in singles]
    for step in range(steps + 1):
        if not nest_utils.is_batched_nested_tensors(batch_ts, env.time_step_spec(), num_outer_dims=1,
                                                     allow_extra_fields=False):
            _fail(dist, "time step matches spec", f"step {step}: {batch_ts} does not match {env.time_step_spec()}")
        for i, s_ts in enumerate(single_ts):
            for x, y in zip(_to_numpy(_slice_row(batch_ts, i)), _to_numpy(s_ts), strict=True):
                if x.shape != y.shape or not np.allclose(x, y, atol=1e-5):
                    _fail(dist, "batched == alone",
                          f"step {step}, task {tasks[i].task_id}: batched env gave {x.tolist()}, alone {y.tolist()}")
        if step == steps:
            break
        actions = _random_actions(dist, batch_ts, len(tasks), seed=1000 + step)
        batch_ts = env.step(actions)
        single_ts = [e.step(_slice_row(actions, i)) for i, e in enumerate(singles)]
