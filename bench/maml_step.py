"""MAML meta-iteration wall time: batched over tasks vs the same algorithm looping over tasks in Python.

Both variants run the same MAML learner (``metarl_apps.algorithms.maml``: 2D navigation, horizon 100, MLP
64-64, one second-order inner step with the LVC estimator, ``outer_epochs`` PPO-clip passes) on the same 20
tasks per meta-iteration, in the same process:

* **batched** — ``MAML._make_iteration``: one ``tf.function`` per meta-iteration; the 20 tasks' parameters are
  stacked ``[20, ...]``, rolled out in one batched trial environment and adapted/differentiated as one
  computation (what ``meta_train`` runs).
* **loop** — the same steps with a Python loop over tasks: for each task, a compiled ``collect`` on a
  1-task environment (re-tasked with ``set_tasks``), then for each outer epoch a compiled per-task
  meta-gradient for every task, averaged in Python, and one compiled Adam step. Per-task code, compiled
  once, reused for every task (the fair "loop" peer: no retracing, only the per-task dispatch and the lost
  batching). Advantages of the outer loss are standardised per task instead of per batch (1 task = 1 batch).

Each is warmed up once (tracing excluded), then run interleaved for ``--repeats`` blocks of ``--iterations``
meta-iterations; the best block of each is kept. The ratio loop/batched is the result (target >= 3x).

    python -m bench.maml_step            # 20 tasks, horizon 100
    python -m bench.maml_step --quick    # horizon 10, tiny network, < 1 minute
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from metarl_apps.adapters.navigation import PointNavigation  # noqa: E402
from metarl_apps.algorithms.maml.learner import MAML  # noqa: E402

TARGET_RATIO = 3.0  # issue 5: batched >= 3x faster than the Python loop over tasks


def _learner(hidden, dist, seed=0) -> MAML:
    tf.keras.utils.set_random_seed(seed)
    learner = MAML(hidden_sizes=hidden, inner_lr=0.1, meta_batch_size=20, outer_epochs=5)
    learner._build(dist)
    return learner


def make_batched(learner: MAML, dist, pool, num_tasks: int):
    env = dist.make_env(pool[:num_tasks])
    iteration = learner._make_iteration(env, tf.random.Generator.from_seed(0))

    def run(it: int) -> None:
        order = np.random.default_rng([0, it]).choice(len(pool), size=num_tasks, replace=False)
        env.set_tasks([pool[i] for i in order])
        float(iteration()["outer_loss"])

    return run


def make_loop(learner: MAML, dist, pool, num_tasks: int):
    env = dist.make_env(pool[:1])
    generator = tf.random.Generator.from_seed(0)
    collect = tf.function(lambda: learner._collect(env, generator))
    meta_grads = tf.function(learner._meta_grads)
    apply = tf.function(learner._apply)

    def run(it: int) -> None:
        order = np.random.default_rng([0, it]).choice(len(pool), size=num_tasks, replace=False)
        data = []
        for i in order:  # the Python loop over tasks
            env.set_tasks([pool[i]])
            data.append(collect())
        for _ in range(learner.config.outer_epochs):
            grads = None
            for pre, post in data:
                _, g = meta_grads(pre, post)
                grads = g if grads is None else [a + b for a, b in zip(grads, g, strict=True)]
            apply([g / num_tasks for g in grads])
        float(learner.params[0][0, 0])

    return run


def measure(run, iterations: int, start: int) -> float:
    t0 = time.perf_counter()
    for k in range(iterations):
        run(start + k)
    return (time.perf_counter() - t0) / iterations


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="horizon 10, MLP 16, 2 blocks of 2 iterations")
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--iterations", type=int, default=None, help="meta-iterations per block")
    ap.add_argument("--repeats", type=int, default=None, help="interleaved blocks (best kept)")
    ap.add_argument("--json", default="out/bench/maml_step.json")
    a = ap.parse_args(argv)
    horizon, hidden = (10, (16,)) if a.quick else (100, (64, 64))
    iterations = a.iterations or (2 if a.quick else 3)
    repeats = a.repeats or (2 if a.quick else 3)
    dist = PointNavigation(horizon=horizon, episodes=2)
    pool = dist.sample(200, "train")
    runs = {"batched": make_batched(_learner(hidden, dist), dist, pool, a.tasks),
            "loop": make_loop(_learner(hidden, dist), dist, pool, a.tasks)}
    for run in runs.values():  # warm-up: tracing excluded
        run(0)
    best = {name: float("inf") for name in runs}
    for r in range(repeats):
        names = list(runs) if r % 2 == 0 else list(reversed(runs))
        for name in names:
            best[name] = min(best[name], measure(runs[name], iterations, 1 + r * iterations))
    ratio = best["loop"] / best["batched"]
    result = {"benchmark": "maml_step", "tasks": a.tasks, "horizon": horizon, "hidden_sizes": list(hidden),
              "results": [{"variant": k, "seconds_per_meta_iteration": v,
                           "env_steps_per_s": a.tasks * 2 * horizon / v} for k, v in best.items()],
              "ratio_loop_over_batched": ratio, "target_ratio": TARGET_RATIO, "quick": a.quick,
              "machine": {"python": platform.python_version(), "tensorflow": tf.__version__,
                          "cpus": os.cpu_count()}}
    for k, v in best.items():
        print(f"{k:>8}: {v * 1000:8.1f} ms per meta-iteration ({a.tasks} tasks, horizon {horizon})")
    verdict = "meets" if ratio >= TARGET_RATIO else "BELOW"
    print(f"batched is {ratio:.1f}x faster than the Python loop over tasks ({verdict} the {TARGET_RATIO:.0f}x target)")
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
