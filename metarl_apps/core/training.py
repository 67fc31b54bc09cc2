"""The meta-training loop every learner shares: checkpoints that resume, TensorBoard summaries, a progress bar,
and a clear stop on non-finite metrics.

A learner builds its compiled iteration and a ``tf.train.Checkpoint`` holding an ``iterations_done`` counter,
then calls :func:`open_checkpoint` and :func:`train_loop`; what differs between learners (which tasks an
iteration sees, schedules) lives in the ``step(it)`` callback.
"""

from __future__ import annotations

import os
import time
from typing import Callable

import numpy as np
import tensorflow as tf

from metarl_apps.core.errors import CheckpointError, TrainingError
from metarl_apps.core.io import atomic_write_json


def will_resume(checkpoint_dir: str | None, resume: bool) -> bool:
    """Whether :func:`open_checkpoint` with these arguments restores a checkpoint (for learners whose set-up
    before training differs between a fresh and a resumed run)."""
    return bool(resume and checkpoint_dir and tf.train.latest_checkpoint(checkpoint_dir))


def open_checkpoint(ckpt: tf.train.Checkpoint, checkpoint_dir: str | None, resume: bool,
                    before_restore: Callable[[], None] | None = None) -> tf.train.CheckpointManager | None:
    """A manager over ``checkpoint_dir`` (None: no checkpoints). With ``resume`` the latest checkpoint is
    restored; without it a directory that already holds one is refused (it would be overwritten)."""
    if not checkpoint_dir:
        return None
    manager = tf.train.CheckpointManager(ckpt, checkpoint_dir, max_to_keep=2)
    if resume and manager.latest_checkpoint:
        if before_restore is not None:
            before_restore()
        ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    elif not resume and manager.latest_checkpoint:
        raise CheckpointError(f"{checkpoint_dir} already holds a checkpoint; pass --resume (resume=True) "
                              f"to continue it, or choose another output directory")
    return manager


def restore_latest(ckpt: tf.train.Checkpoint, checkpoint_dir: str, learner: str) -> None:
    """Restore the latest checkpoint of ``checkpoint_dir`` into ``ckpt`` (built with the learner's config), or
    raise a :class:`CheckpointError` naming what is wrong and the fix."""
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if latest is None:
        raise CheckpointError(f"{checkpoint_dir}: no {learner} checkpoint found; train first (metarl train)")
    try:
        ckpt.restore(latest).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as err:
        raise CheckpointError(f"{latest}: cannot be restored into {learner} with this config "
                              f"({type(err).__name__}); use the config it was trained with") from err


def set_task_batch(env, pool, batch: int, seed: int, iteration: int) -> np.ndarray:
    """Swap ``batch`` tasks of ``pool`` into ``env`` for meta-training iteration ``iteration``: drawn without
    replacement by a stream keyed by ``(seed, iteration)``, so a resumed run draws the same batches. Returns the
    drawn pool indices ``[batch]``."""
    order = np.random.default_rng([seed, iteration]).choice(len(pool), size=batch, replace=False)
    env.set_tasks([pool[i] for i in order])
    return order


def train_loop(
    learner: str,
    step: Callable[[int], dict],
    *,
    iterations: int,
    done: tf.Variable,
    manager: tf.train.CheckpointManager | None,
    summary_dir: str | None,
    log_every: int,
    checkpoint_every: int,
    progress: bool,
    fix: str,
    postfix: str,
    selection: "Selection | None" = None,
) -> tuple[dict, float]:
    """Run ``step(it)`` (one meta-training iteration, returning its metrics as floats) from the iteration
    ``done`` holds up to ``iterations``.

    After each iteration: stop with a :class:`TrainingError` if a metric is not finite (``fix`` says what to
    change; the last checkpoint is left intact), advance ``done``, write summaries every ``log_every`` and a
    checkpoint every ``checkpoint_every`` iterations (and after the last). With a ``selection``, its
    :meth:`Selection.after` runs after each iteration (before that iteration's checkpoint). Returns the last
    metrics and the wall time in seconds.
    """
    from tqdm import tqdm

    start, t0, metrics = int(done.numpy()), time.time(), {}
    writer = tf.summary.create_file_writer(summary_dir) if summary_dir else None
    bar = tqdm(total=iterations, initial=start, desc=f"{learner.lower()} meta-train", disable=not progress,
               leave=False)
    try:
        for it in range(start, iterations):
            metrics = step(it)
            if not all(np.isfinite(v) for v in metrics.values()):
                where = manager.directory if manager is not None else None
                raise TrainingError(f"{learner}: non-finite training metrics at iteration {it} ({metrics}); {fix}. "
                                    f"The last checkpoint in {where} is intact; resume from it with --resume")
            done.assign(it + 1)
            last = it + 1 == iterations
            if selection is not None:
                selection.after(it, last)
            if writer is not None and ((it + 1) % log_every == 0 or last):
                with writer.as_default():
                    for k, v in metrics.items():
                        tf.summary.scalar(f"{learner.lower()}/{k}", v, step=it + 1)
            if manager is not None and ((it + 1) % checkpoint_every == 0 or last):
                manager.save(checkpoint_number=it + 1)
            bar.update(1)
            if postfix in metrics:
                bar.set_postfix({postfix: f"{metrics[postfix]:.3f}"})
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return metrics, time.time() - t0


class Selection:
    """Model selection on validation tasks during meta-training (early stopping without stopping).

    Every ``every`` iterations and after the last, ``score()`` measures the current weights on validation tasks
    (never the held-out test tasks); the weights of the best-scoring iteration are kept — when
    training checkpoints, under ``<checkpoint_dir>/best`` (a ``tf.train.CheckpointManager`` of ``model`` alone,
    plus ``selection.json``: every score measured), else in memory — and :meth:`finish` puts them back when
    training ends.
    ``best_score`` / ``best_iteration`` belong in the training checkpoint (:meth:`trackables`), so a resumed run
    keeps comparing against the best seen before the interruption.
    """

    BEST = "best"

    def __init__(self, model: tf.Module, score: Callable[[], float], every: int, checkpoint_dir: str | None):
        self._model, self._score, self.every = model, score, int(every)
        self.best_score = tf.Variable(-np.inf, dtype=tf.float64, trainable=False, name="best_score")
        self.best_iteration = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_iteration")
        self._dir = os.path.join(checkpoint_dir, self.BEST) if checkpoint_dir else None
        self._manager = (tf.train.CheckpointManager(tf.train.Checkpoint(model=model), self._dir, max_to_keep=1)
                         if self._dir else None)
        self._weights: list[np.ndarray] | None = None  # the kept weights when there is no directory
        self.history: list[dict] = self._read_history()

    def trackables(self) -> dict:
        return {"best_score": self.best_score, "best_iteration": self.best_iteration}

    def _read_history(self) -> list[dict]:
        import json

        path = os.path.join(self._dir, "selection.json") if self._dir else None
        if path and os.path.exists(path):
            with open(path) as f:
                return list(json.load(f)["history"])
        return []

    def after(self, it: int, last: bool) -> None:
        """Score and maybe keep the weights after (0-based) iteration ``it``."""
        if not ((it + 1) % self.every == 0 or last):
            return
        score = float(self._score())
        if not np.isfinite(score):
            raise TrainingError(f"selection score is not finite at iteration {it + 1} ({score}); the last "
                                f"checkpoint is intact; lower learning_rate and resume with --resume")
        self.history = [h for h in self.history if h["iteration"] < it + 1] + [{"iteration": it + 1,
                                                                                 "score": score}]
        if score > float(self.best_score.numpy()):
            self.best_score.assign(score)
            self.best_iteration.assign(it + 1)
            if self._manager is not None:
                self._manager.save(checkpoint_number=it + 1)
            else:
                self._weights = [v.numpy() for v in self._model.variables]
        if self._dir:
            atomic_write_json(os.path.join(self._dir, "selection.json"),
                              {"best_iteration": int(self.best_iteration.numpy()),
                               "best_score": float(self.best_score.numpy()), "history": self.history})

    def finish(self) -> dict:
        """Put the best weights back into the model; returns ``{"best_iteration", "selection_score"}``."""
        if self._weights is not None:
            for v, w in zip(self._model.variables, self._weights, strict=True):
                v.assign(w)
        elif self._manager is not None and self._manager.latest_checkpoint:
            restore_best(self._model, os.path.dirname(self._dir))
        else:
            return {}
        return {"best_iteration": float(self.best_iteration.numpy()),
                "selection_score": float(self.best_score.numpy())}


def restore_best(model: tf.Module, checkpoint_dir: str) -> bool:
    """Load the weights :class:`Selection` kept under ``<checkpoint_dir>/best`` into ``model``; False if none."""
    latest = tf.train.latest_checkpoint(os.path.join(checkpoint_dir, Selection.BEST))
    if latest is None:
        return False
    tf.train.Checkpoint(model=model).restore(latest).assert_existing_objects_matched()
    return True
