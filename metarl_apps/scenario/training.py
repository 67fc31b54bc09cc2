"""Meta-training of a scenario's learners: build each agent from its spec, train every (learner, training seed)
pair one after another or in parallel processes, and find their checkpoints (``DIR/checkpoints/<agent>/seed_<s>``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.registry import ALGORITHMS, BASELINES


def make_agent(spec):
    """Instantiate a scenario agent (a baseline or a meta-learner) from its spec."""
    if spec.kind == "baseline":
        return BASELINES.get(spec.target)(**dict(spec.config))
    return ALGORITHMS.get(spec.target)(dict(spec.config))


def _checkpoint_dir(out: Path, agent: str, seed: int) -> Path:
    return out / "checkpoints" / agent / f"seed_{seed}"


def _train_one(agent, spec, scenario, dist, train_tasks, out: Path, seed: int, resume: bool, progress: bool):
    if not train_tasks:
        raise MetaRLInputError(f"{scenario.path}: tasks.train: learner {spec.name!r} needs training tasks; "
                               f"set tasks.train > 0")
    iterations = int(dict(spec.train).get("iterations", 1))
    return agent.meta_train(dist, train_tasks, iterations=iterations, seed=seed,
                            checkpoint_dir=str(_checkpoint_dir(out, spec.name, seed)), resume=resume,
                            summary_dir=str(out / "tensorboard" / spec.name / f"seed_{seed}"), progress=progress)


def training_tasks(scenario, dist, task_seed: int) -> list:
    """The scenario's training population (``tasks.train`` tasks of the train split; none for baseline-only)."""
    return dist.sample(scenario.tasks.train, split="train", seed=task_seed) if scenario.tasks.train else []


def train_or_restore(agent, spec, scenario, dist, train_tasks, out: Path, seed: int, resume: bool, progress: bool,
                     parallel: dict):
    """:func:`_train_one`; for a pair :func:`train_in_parallel` already trained (a key of ``parallel``), restore
    its final checkpoint into ``agent`` instead and return that run's ``TrainResult``."""
    done = parallel.get((spec.name, seed))
    if done is None:
        return _train_one(agent, spec, scenario, dist, train_tasks, out, seed, resume, progress)
    _train_one(agent, spec, scenario, dist, train_tasks, out, seed, True, False)  # 0 iterations left: a restore
    return done


def _train_job(scenario, out: str, agent: str, seed: int, task_seed: int, resume: bool, threads: int):
    """One (learner, training seed) of :func:`train_in_parallel`, in its own spawned process."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)  # before the first op of this process
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    dist = scenario.make_distribution()
    spec = scenario.agent(agent)
    return _train_one(make_agent(spec), spec, scenario, dist, training_tasks(scenario, dist, task_seed), Path(out),
                      seed, resume, False)


def train_in_parallel(scenario, out_dir, pairs, *, task_seed: int, resume: bool, jobs: int,
                      log: Callable[[str], None] = print) -> dict:
    """Meta-train ``pairs`` (``(agent spec, training seed)``) in up to ``jobs`` processes at once, the CPU's
    threads split between them; returns ``{(agent name, seed): TrainResult}``.

    Each pair runs exactly what the sequential loop runs (same seeds, tasks and checkpoints under
    ``out_dir/checkpoints``), in a fresh spawned process; the caller then restores each learner from its final
    checkpoint (``resume``). The first failing pair stops the others (their checkpoints stay resumable) and its
    error is raised here.
    """
    import multiprocessing

    jobs = min(jobs, len(pairs))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    log(f"training {len(pairs)} learner seeds, {jobs} at a time ({threads} TF thread(s) each)")
    results = {}
    pool = multiprocessing.get_context("spawn").Pool(jobs, maxtasksperchild=1)
    try:
        pending = {(spec.name, s): pool.apply_async(_train_job, (scenario, str(out_dir), spec.name, s, task_seed,
                                                                 resume, threads))
                   for spec, s in pairs}
        while pending:
            for key, job in list(pending.items()):
                if job.ready():
                    results[key] = result = job.get()  # re-raises the worker's error
                    del pending[key]
                    log(f"trained {key[0]} seed {key[1]}: {result.iterations} iterations in "
                        f"{result.wall_time_s:.1f}s -> {_checkpoint_dir(Path(out_dir), *key)}")
            if pending:
                time.sleep(0.2)
        pool.close()
    finally:
        pool.terminate()
        pool.join()
    return results


def parallel_pairs(scenario, specs, jobs: int, skip=()) -> list:
    """The (learner spec, seed) pairs worth training in parallel: all of them when ``jobs > 1`` and there are
    at least two, else none (the sequential loop trains them)."""
    if not isinstance(jobs, int) or jobs < 1:
        raise MetaRLInputError(f"--jobs {jobs}: must be a whole number >= 1 (how many trainings run at once)")
    pairs = [(spec, s) for spec in specs if spec.kind == "algorithm" and spec.name not in skip
             for s in range(scenario.seeds)]
    return pairs if jobs > 1 and len(pairs) > 1 else []


def select_agents(scenario, agents: list[str] | None, kind: str | None = None):
    """The scenario's agent specs named in ``agents`` (all when None), of ``kind`` if given; an unknown name is
    a one-line error listing the scenario's agents."""
    known = [a.name for a in scenario.agents]
    missing = sorted(set(agents or []) - set(known))
    if missing:
        raise MetaRLInputError(f"--agent {', '.join(missing)}: not in scenario {scenario.name!r} (agents: {known})")
    return [a for a in scenario.agents if (agents is None or a.name in agents) and (kind is None or a.kind == kind)]


def checkpoint_dir(out_dir: str | os.PathLike, agent: str, seed: int = 0) -> Path:
    """Where meta-training of ``agent`` with training seed ``seed`` checkpoints under ``out_dir``."""
    return _checkpoint_dir(Path(out_dir), agent, seed)


def latest_iteration(directory: str | os.PathLike) -> int:
    """The iteration number of the latest ``ckpt-N`` checkpoint in ``directory`` (0 if none)."""
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(directory)) if Path(directory).is_dir() else None
    try:
        return int(latest.rsplit("-", 1)[1]) if latest else 0
    except (IndexError, ValueError):
        return 0


def train_learners(scenario, out_dir, *, seed=None, resume=False, progress=True, agents=None,
                   log: Callable[[str], None] = print, on_trained: Callable | None = None, jobs: int = 1) -> dict:
    """Meta-train the scenario's learners (every training seed); checkpoints under ``out_dir/checkpoints``.

    ``on_trained(spec, seed, learner, train_result)`` is called after each (e.g. to save it as a model).
    ``jobs > 1``: train up to that many (learner, seed) pairs at once in separate processes
    (:func:`train_in_parallel`); the results are those of the sequential run.
    """
    out = Path(out_dir)
    dist = scenario.make_distribution()
    task_seed = scenario.tasks.seed if seed is None else seed
    train_tasks = training_tasks(scenario, dist, task_seed)
    specs = select_agents(scenario, agents, kind="algorithm")
    if resume:
        for spec in specs:
            for s in range(scenario.seeds):
                if done := latest_iteration(_checkpoint_dir(out, spec.name, s)):
                    log(f"resuming {spec.name} seed {s} from iteration {done}")
    parallel = train_in_parallel(scenario, out, pairs, task_seed=task_seed, resume=resume, jobs=jobs, log=log) \
        if (pairs := parallel_pairs(scenario, specs, jobs)) else {}
    reports = {}
    for spec in specs:
        for s in range(scenario.seeds):
            learner = make_agent(spec)
            result = train_or_restore(learner, spec, scenario, dist, train_tasks, out, s, resume, progress, parallel)
            if (spec.name, s) not in parallel:  # train_in_parallel logged its own
                log(f"trained {spec.name} seed {s}: {result.iterations} iterations in {result.wall_time_s:.1f}s "
                    f"-> {_checkpoint_dir(out, spec.name, s)}")
            reports[(spec.name, s)] = result
            if on_trained is not None:
                on_trained(spec, s, learner, result)
    return reports
