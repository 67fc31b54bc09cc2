"""Meta-Q-learning (Fakoor et al., ICLR 2020) for discrete actions and slates, batched over tasks.

Read top to bottom: config (config.py) -> context Q network (networks.py) -> per-task replay (replay.py) ->
one meta-training iteration (epsilon-greedy rollout of one trial per task, stored in each task's buffer, then
double-Q / n-step / target-network updates on replayed trial windows, all in one ``tf.function``) -> the outer
loop (task batches, checkpoints, summaries, NaN guard) -> adaptation.

Adaptation (``adapt`` online, ``adapt_offline`` from logs), batched over the new tasks in one graph:

1. the new tasks' transitions (collected with the meta-trained greedy policy, or logged) and a sample of
   meta-training trials from the replay go through the frozen meta-trained context network;
2. per new task, a logistic propensity classifier separates its contexts from the meta-training contexts;
   each meta-training transition gets the density-ratio weight ``beta / (1 - beta)``, clipped at
   ``max_weight``; the effective sample size of the weights is reported (``last_adaptation``);
3. each task gets its own linear Q head (stacked ``[B, Z, n_q]``, initialised at the meta-trained head),
   fitted by Adam to the TD targets of its own transitions plus the weighted meta-training transitions, with
   the proximal term ``proximal_coef * ||head - head_meta||^2``. The targets come from the meta-trained
   network (online network selects, target network evaluates): during the few adaptation steps the
   meta-trained network is the target network. The recurrent context and the features stay meta-trained:
   adapting only the head is what makes per-task parameters cheap to stack and to batch.

The evaluator's ``policy_for`` returns the meta-trained context policy (in-context adaptation only): the
evaluator scores every reward from the trial's first step, and gradient adaptation needs interactions
before the scored trial. ``adapt(tasks, budget)`` is the MQL adaptation proper.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf

from metarl_apps.algorithms.mql.config import MQLConfig
from metarl_apps.algorithms.mql.losses import (
    action_value,
    bootstrap_value,
    density_ratio,
    effective_sample_size,
    fit_propensity,
    greedy_action,
    huber,
    n_step_targets,
    proximal_penalty,
    td_loss,
)
from metarl_apps.algorithms.mql.networks import RecurrentQNetwork, mask_q
from metarl_apps.algorithms.mql.policy import MQLPolicy
from metarl_apps.algorithms.mql.replay import TaskReplay
from metarl_apps.core.agent import MetaLearner, TrainResult, check_budget, check_tasks
from metarl_apps.core.errors import CheckpointError, MetaRLInputError
from metarl_apps.core.task import Task, TaskDistribution
from metarl_apps.core.training import open_checkpoint, restore_latest, set_task_batch, train_loop

REPLAY_TASKS_FILE = "mql_replay_tasks.json"


def _bt(ta: tf.TensorArray) -> tf.Tensor:
    """Stacked ``[T, B, ...]`` -> ``[B, T, ...]``."""
    x = ta.stack()
    return tf.transpose(x, tf.concat([[1, 0], tf.range(2, tf.rank(x))], 0))


class MQL(MetaLearner):
    """Meta-Q-learning: a recurrent-context DQN meta-trained from per-task replay, adapted by
    propensity-weighted, proximal updates of a per-task Q head."""

    config_cls = MQLConfig
    name = "mql"

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.net: RecurrentQNetwork | None = None
        self.target: RecurrentQNetwork | None = None
        self.replay: TaskReplay | None = None
        self._optimizer = None
        #: statistics of the last adaptation (effective sample sizes, weights), for reports
        self.last_adaptation: dict = {}

    # ------------------------------------------------------------------ build
    def _build(self, dist: TaskDistribution, task_ids: Sequence[str]) -> None:
        c = self.config
        slate = c.slate if c.slate is not None else bool(getattr(dist, "slate_actions", False))
        kw = dict(cell=c.cell, hidden_size=c.hidden_size, embed_sizes=c.embed_sizes, head_size=c.head_size,
                  trunk_sizes=c.trunk_sizes, set_keys=c.set_keys, slate=slate,
                  trial_length=dist.horizon * dist.episodes_per_trial)
        self.net = RecurrentQNetwork(dist.observation_spec(), dist.action_spec(), name="q", **kw)
        self.target = RecurrentQNetwork(dist.observation_spec(), dist.action_spec(), name="target_q", **kw)
        for v, tv in zip(self.net.variables, self.target.variables, strict=True):
            tv.assign(v)
        self._optimizer = tf.keras.optimizers.Adam(c.learning_rate)
        self._optimizer.build(self.net.trainable_variables)
        trial_length = dist.horizon * dist.episodes_per_trial
        self.replay = TaskReplay(task_ids, c.trials_per_task, trial_length, self.net.input_size,
                                 self.net.action_shape)
        self._updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="updates")
        self._dist = dist

    def _checkpoint(self, **extra) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(net=self.net, target=self.target, optimizer=self._optimizer,
                                   replay=self.replay, updates=self._updates, **extra)

    # ------------------------------------------------------------- TD loss
    def _td_loss(self, inputs, actions, rewards, ends_trial):
        """Double-Q n-step TD loss on replayed windows ``inputs [N, L, D]``, ``actions [N, L, ...]``,
        ``rewards [N, L]``; returns ``(loss, mean Q of the taken actions)``."""
        c, net = self.config, self.net
        n = tf.shape(inputs)[0]
        q, _, _ = net.unroll_x(inputs, net.initial_state(n))
        q_target, _, _ = self.target.unroll_x(inputs, self.target.initial_state(n))
        next_values = bootstrap_value(tf.stop_gradient(q), q_target, net.kind, net.slate_size, c.double_q)
        targets, valid = n_step_targets(rewards * c.reward_scale, next_values, c.discount, c.n_step, ends_trial)
        q_taken = action_value(q, actions, net.kind)
        return td_loss(q_taken, targets, tf.cast(valid, tf.float32), c.huber_delta), tf.reduce_mean(q_taken)

    # --------------------------------------------------------- exploration
    def _explore(self, q, epsilon, generator):
        """Epsilon-greedy 0-based actions for ``q [B, ...]`` (random slates: k distinct uniform items)."""
        net = self.net
        b = tf.shape(q)[0]
        greedy = greedy_action(q, net.kind, net.slate_size)
        if net.kind == "slate":
            rand = tf.math.top_k(generator.uniform([b, net.num_values]), k=net.slate_size).indices
        else:
            shape = tf.concat([[b], tf.constant(net.action_shape, tf.int32)], 0)
            rand = tf.cast(tf.floor(generator.uniform(shape) * net.num_values), tf.int32)
            rand = tf.minimum(rand, net.num_values - 1)
        explore = generator.uniform([b]) < epsilon
        explore = tf.reshape(explore, tf.concat([[b], tf.ones([len(net.action_shape)], tf.int32)], 0))
        return tf.where(explore, rand, greedy)

    # ------------------------------------------------------ one iteration
    def _make_iteration(self, env, generator: tf.random.Generator, slots: tf.Variable, epsilon: tf.Variable):
        c, net, target, replay = self.config, self.net, self.target, self.replay
        optimizer = self._optimizer
        batch = env.batch_size
        steps = replay.trial_length
        updates = self._updates
        action_dtype = env.action_spec().dtype

        def rollout():
            time_step = env.reset()
            state = net.initial_state(batch)
            x_ta = tf.TensorArray(tf.float32, size=steps)
            a_ta = tf.TensorArray(tf.int32, size=steps)
            r_ta = tf.TensorArray(tf.float32, size=steps)
            for t in tf.range(steps):
                x = net.encode(time_step.observation, 1)
                q, _, state = net.step_x(x, state)
                index = self._explore(mask_q(q, time_step.observation, net.kind), epsilon, generator)
                time_step = env.step(tf.cast(index + net.action_min, action_dtype))
                x_ta = x_ta.write(t, x)
                a_ta = a_ta.write(t, index)
                r_ta = r_ta.write(t, time_step.reward)
            return _bt(x_ta), _bt(a_ta), _bt(r_ta)

        @tf.function
        def iteration():
            inputs, actions, rewards = rollout()
            replay.add(slots, inputs, actions, rewards)
            loss_sum, q_sum, norm_sum = tf.constant(0.0), tf.constant(0.0), tf.constant(0.0)
            for _ in tf.range(c.updates_per_iteration):
                x, a, r, ends, _ = replay.sample(c.batch_size, generator, c.context_length)
                with tf.GradientTape() as tape:
                    loss, q_mean = self._td_loss(x, a, r, ends)
                grads = tape.gradient(loss, net.trainable_variables)
                grads, grad_norm = tf.clip_by_global_norm(grads, c.max_grad_norm)
                optimizer.apply_gradients(zip(grads, net.trainable_variables, strict=True))
                updates.assign_add(1)
                if tf.equal(updates % c.target_update_period, 0):
                    for v, tv in zip(net.variables, target.variables, strict=True):
                        tv.assign(v)
                loss_sum += loss
                q_sum += q_mean
                norm_sum += grad_norm
            u = float(c.updates_per_iteration)
            return {"loss": loss_sum / u, "q_mean": q_sum / u, "grad_norm": norm_sum / u,
                    "trial_return": tf.reduce_mean(tf.reduce_sum(rewards, axis=1))}

        return iteration

    # ------------------------------------------------------------ outer loop
    def _meta_train(self, dist, train_tasks, *, iterations, seed, checkpoint_dir, resume, summary_dir,
                    progress):
        c = self.config
        pool = train_tasks if train_tasks is not None else dist.sample(c.max_train_tasks, "train", seed)
        pool = list(pool)[:c.max_train_tasks]
        batch = min(c.tasks_per_iteration, len(pool))
        tf.keras.utils.set_random_seed(seed)  # before building: initial weights are a function of the seed
        self._build(dist, [t.task_id for t in pool])
        env = dist.make_env(pool[:batch], seed=seed)
        if not getattr(env, "supports_set_tasks", False):
            raise MetaRLInputError(f"MQL: the {dist.family!r} environment does not support set_tasks(), which "
                                   f"meta-training over a population needs")
        generator = tf.random.Generator.from_seed(seed)
        done = tf.Variable(0, dtype=tf.int64, trainable=False)
        ckpt = self._checkpoint(generator=generator, iterations_done=done, env_trial=env._trial)
        manager = open_checkpoint(ckpt, checkpoint_dir, resume,
                                  before_restore=lambda: self._check_replay_tasks(checkpoint_dir))
        if checkpoint_dir:
            os.makedirs(checkpoint_dir, exist_ok=True)
            with open(os.path.join(checkpoint_dir, REPLAY_TASKS_FILE), "w") as f:
                json.dump(self.replay.task_ids, f)
        slots = tf.Variable(tf.zeros([batch], tf.int32), trainable=False)
        epsilon = tf.Variable(1.0, trainable=False)
        iteration = self._make_iteration(env, generator, slots, epsilon)

        def step(it: int) -> dict:
            order = set_task_batch(env, pool, batch, seed, it)
            slots.assign(order.astype(np.int32))
            epsilon.assign(c.epsilon_at(it))
            return {**{k: float(v) for k, v in iteration().items()}, "epsilon": c.epsilon_at(it)}

        metrics, wall = train_loop("MQL", step, iterations=iterations, done=done, manager=manager,
                                   summary_dir=summary_dir, log_every=c.log_every,
                                   checkpoint_every=c.checkpoint_every, progress=progress,
                                   fix="lower learning_rate or reward_scale", postfix="trial_return")
        return TrainResult(iterations=iterations, wall_time_s=wall, metrics=metrics,
                           checkpoint=manager.latest_checkpoint if manager else None)

    def _check_replay_tasks(self, checkpoint_dir: str) -> list[str]:
        path = os.path.join(checkpoint_dir, REPLAY_TASKS_FILE)
        if not os.path.exists(path):
            raise CheckpointError(f"{checkpoint_dir}: no MQL checkpoint found ({REPLAY_TASKS_FILE} missing); "
                                  f"train first (metarl train)")
        with open(path) as f:
            ids = json.load(f)
        if self.replay is not None and ids != self.replay.task_ids:
            raise CheckpointError(f"{checkpoint_dir}: its replay holds a different training population; resume "
                                  f"with the same train tasks and max_train_tasks")
        return ids

    def _restore(self, checkpoint_dir, dist) -> None:
        if tf.train.latest_checkpoint(checkpoint_dir) is None:
            raise CheckpointError(f"{checkpoint_dir}: no MQL checkpoint found; train first (metarl train)")
        self.replay = None
        self._build(dist, self._check_replay_tasks(checkpoint_dir))
        restore_latest(self._checkpoint(), checkpoint_dir, "MQL")

    # ----------------------------------------------------------------- acting
    def meta_policy(self) -> MQLPolicy:
        """The meta-trained greedy context policy (no per-task heads)."""
        dist = self._require_trained()
        return MQLPolicy(self.net, dist.time_step_spec(), dist.action_spec(),
                         adaptation={"algorithm": "mql", "budget": 0, "mode": "in-context"})

    def policy_for(self, dist: TaskDistribution, tasks: Sequence[Task], seed: int = 0, budget: int = 1):
        """The evaluator's entry point (``config.scoring``): ``in_context`` — the meta-trained context policy,
        adapting in context over the scored trial; ``offline`` — adapted by :meth:`adapt_offline` on
        ``logged_interactions`` steps per task logged beforehand by ``logging_policy`` (unscored, on
        ``adapt_env_seed``), then playing the scored trial."""
        self._require_trained()
        tasks = check_tasks(dist, tasks)
        if self.config.scoring == "offline":
            return self.adapt_offline(dist, tasks, self.log_interactions(dist, tasks, seed))
        return self.meta_policy()

    def log_interactions(self, dist: TaskDistribution, tasks: Sequence[Task], seed: int = 0) -> dict:
        """Logs of ``config.logging_policy`` (a registered baseline) on ``tasks``: the first
        ``config.logged_interactions`` steps of one trial each, on environment seed ``config.adapt_env_seed``;
        the ``logged_transitions`` that :meth:`adapt_offline` takes."""
        from metarl_apps.core.registry import BASELINES

        c = self.config
        trial = dist.horizon * dist.episodes_per_trial
        if c.logged_interactions > trial:
            raise MetaRLInputError(f"MQLConfig.logged_interactions={c.logged_interactions}: at most one trial "
                                   f"({trial} steps of {dist.family!r}) can be logged; lower it")
        logger = BASELINES.create(c.logging_policy)
        if getattr(logger, "needs_fit", False):
            raise MetaRLInputError(f"MQLConfig.logging_policy={c.logging_policy!r} must be fitted first; use a "
                                   f"baseline that needs no fitting (e.g. random, random_slate)")
        env = dist.make_env(list(tasks), seed=c.adapt_env_seed)
        return self._collect(env, c.logged_interactions, logger.make_policy(dist, list(tasks), seed))

    # ----------------------------------------------------------------- adapt
    def _collect(self, env, steps: int, policy=None) -> dict:
        """Run ``policy`` (default: the meta-trained greedy policy) for ``steps`` steps of a fresh trial; the
        logged transitions."""
        policy = policy or self.meta_policy()
        batch = env.batch_size
        obs_spec = env.time_step_spec().observation

        @tf.function
        def run():
            time_step = env.reset()
            state = policy.get_initial_state(batch)
            obs_ta = tf.nest.map_structure(lambda s: tf.TensorArray(s.dtype, size=steps), obs_spec)
            act_ta = tf.TensorArray(env.action_spec().dtype, size=steps)
            rew_ta = tf.TensorArray(tf.float32, size=steps)
            for t in tf.range(steps):
                step = policy.action(time_step, state)
                state = step.state
                obs_ta = tf.nest.map_structure(lambda ta, x, t=t: ta.write(t, x), obs_ta, time_step.observation)
                time_step = env.step(step.action)
                act_ta = act_ta.write(t, step.action)
                rew_ta = rew_ta.write(t, time_step.reward)
            return {"observations": tf.nest.map_structure(_bt, obs_ta), "actions": _bt(act_ta),
                    "rewards": _bt(rew_ta)}

        return run()

    def _adapt(self, env, tasks, budget):
        dist = self._dist
        check_budget(budget, dist.episodes_per_trial)
        if tasks is not None:
            env = dist.make_env(tasks, seed=self.config.adapt_env_seed)
        logged = self._collect(env, budget * dist.horizon)
        return self._adapt_from(logged, tasks, budget, "online")

    def adapt_offline(self, dist: TaskDistribution, tasks: Sequence[Task],
                      logged_transitions: Mapping[str, Any]) -> MQLPolicy:
        """Adapt to ``tasks`` from logged interactions only (no live interaction).

        ``logged_transitions``: ``{"observations": trial observations [B, K, ...] (the nest of
        ``dist.observation_spec()``, as seen *before* each action), "actions": [B, K, ...] (in the action
        spec's values), "rewards": [B, K]}`` — the first K steps of a trial of each task, row i = tasks[i].
        """
        trained = self._require_trained()
        if dist.family != trained.family:
            raise MetaRLInputError(f"adapt_offline: learner was meta-trained on {trained.family!r}, "
                                   f"not {dist.family!r}")
        tasks = check_tasks(dist, tasks)
        if not isinstance(logged_transitions, Mapping) or not {"observations", "actions", "rewards"} <= set(
                logged_transitions):
            raise MetaRLInputError("adapt_offline: logged_transitions must be a mapping with keys 'observations', "
                                   "'actions' and 'rewards' (see MQL.adapt_offline)")
        rewards = tf.convert_to_tensor(logged_transitions["rewards"], tf.float32)
        b = len(tasks)
        if rewards.shape.rank != 2 or rewards.shape[0] != b or rewards.shape[1] < 1:
            raise MetaRLInputError(f"adapt_offline: rewards has shape {rewards.shape.as_list()}; expected "
                                   f"[{b}, K] (one row per task, K >= 1 logged steps)")
        k = int(rewards.shape[1])
        trial = dist.horizon * dist.episodes_per_trial
        if k > trial:
            raise MetaRLInputError(f"adapt_offline: {k} logged steps exceed the trial length {trial}; pass the "
                                   f"first steps of one trial per task")
        spec = dist.action_spec()
        actions = tf.convert_to_tensor(logged_transitions["actions"], spec.dtype)
        if actions.shape.as_list() != [b, k, *spec.shape.as_list()]:
            raise MetaRLInputError(f"adapt_offline: actions has shape {actions.shape.as_list()}; expected "
                                   f"{[b, k, *spec.shape.as_list()]}")
        try:
            observations = tf.nest.map_structure(lambda s, x: tf.convert_to_tensor(x, s.dtype),
                                                 dist.observation_spec(), dict(logged_transitions["observations"]))
        except (ValueError, TypeError) as err:
            raise MetaRLInputError(f"adapt_offline: observations do not match dist.observation_spec() ({err}); "
                                   f"log the trial observations the environment returns") from err
        for s, x in zip(tf.nest.flatten(dist.observation_spec()), tf.nest.flatten(observations), strict=True):
            if x.shape.as_list() != [b, k, *s.shape.as_list()]:
                raise MetaRLInputError(f"adapt_offline: observation {s.name!r} has shape {x.shape.as_list()}; "
                                       f"expected {[b, k, *s.shape.as_list()]}")
        budget = max(1, k // dist.horizon)
        logged = {"observations": observations, "actions": actions, "rewards": rewards}
        return self._adapt_from(logged, tasks, budget, "offline")

    def _adapt_from(self, logged: Mapping[str, Any], tasks, budget: int, mode: str) -> MQLPolicy:
        c, net, dist = self.config, self.net, self._dist
        x_new = net.encode(logged["observations"], 2)
        a_new = tf.cast(logged["actions"], tf.int32) - net.action_min
        r_new = tf.convert_to_tensor(logged["rewards"], tf.float32)
        ends_new = tf.fill([tf.shape(r_new)[0]], int(r_new.shape[1]) == self.replay.trial_length)
        if int(tf.reduce_sum(self.replay.count)) == 0:
            raise MetaRLInputError("adapt: the meta-training replay is empty; meta_train (or restore) first")
        generator = tf.random.Generator.from_seed(c.adapt_env_seed)
        x_old, a_old, r_old, ends_old, _ = self.replay.sample(c.meta_trials, generator, c.context_length)
        kernel, bias, stats = self._fit_heads(x_new, a_new, r_new, ends_new, x_old, a_old, r_old, ends_old)
        ess = stats["ess"].numpy()
        self.last_adaptation = {
            "mode": mode, "budget": int(budget), "meta_transitions": int(stats["n_old"]),
            "ess_mean": float(ess.mean()), "ess_min": float(ess.min()), "ess_max": float(ess.max()),
            "ess_fraction_mean": float(ess.mean() / float(stats["n_old"])),
            "weight_mean": float(stats["weight_mean"]), "weight_max": float(stats["weight_max"]),
            "clipped_fraction": float(stats["clipped_fraction"]),
            "head_shift": float(stats["head_shift"]),
        }
        return MQLPolicy(net, dist.time_step_spec(), dist.action_spec(), heads=(kernel, bias),
                         adaptation={"algorithm": "mql", "budget": int(budget), "mode": mode,
                                     "tasks": [t.task_id for t in tasks] if tasks else None,
                                     **self.last_adaptation})

    @tf.function(reduce_retracing=True)
    def _fit_heads(self, x_new, a_new, r_new, ends_new, x_old, a_old, r_old, ends_old):
        """Per-task Q heads from new-task sequences ``[B, K, ...]`` and meta-training windows ``[M, L, ...]``."""
        c, net, target = self.config, self.net, self.target
        b = tf.shape(x_new)[0]

        def frozen(x):  # meta-trained Q, features, contexts and fixed double-Q n-step targets
            n = tf.shape(x)[0]
            q, z, h = net.unroll_x(x, net.initial_state(n))
            q_t, _, _ = target.unroll_x(x, target.initial_state(n))
            return q, z, h, bootstrap_value(q, q_t, net.kind, net.slate_size, c.double_q)

        _, z_new, h_new, v_new = frozen(x_new)
        _, z_old, h_old, v_old = frozen(x_old)
        y_new, valid_new = n_step_targets(r_new * c.reward_scale, v_new, c.discount, c.n_step, ends_new)
        y_old, valid_old = n_step_targets(r_old * c.reward_scale, v_old, c.discount, c.n_step, ends_old)
        # flatten the meta-training transitions: [N_old, ...]
        flat = lambda x: tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], 0))  # noqa: E731
        z_old, h_old, a_old, y_old = flat(z_old), flat(h_old), flat(a_old), flat(y_old)
        valid_old = tf.cast(flat(valid_old), tf.float32)
        n_old = tf.shape(z_old)[0]

        # 2. propensity classifier per task on the contexts; clipped density-ratio weights [B, N_old]
        propensity = fit_propensity(h_new, h_old, steps=c.propensity_steps,
                                    learning_rate=c.propensity_learning_rate, l2=c.propensity_l2)
        raw = density_ratio(propensity, h_old)
        weights = tf.minimum(raw, c.max_weight) * valid_old[None, :]
        ess = effective_sample_size(weights)

        # 3. per-task heads, Adam on the weighted TD loss + proximal term
        kernel0, bias0 = net.head_params
        kernel0, bias0 = tf.convert_to_tensor(kernel0), tf.convert_to_tensor(bias0)
        valid_new = tf.cast(valid_new, tf.float32)
        a_old_b = tf.broadcast_to(a_old[None], tf.concat([[b], tf.shape(a_old)], 0))
        beta1, beta2 = 0.9, 0.999

        def loss_fn(kernel, bias):
            q_new = net.shape_q(tf.einsum("bkz,bzq->bkq", z_new, kernel) + bias[:, None])
            q_old = net.shape_q(tf.einsum("nz,bzq->bnq", z_old, kernel) + bias[:, None])
            l_new = huber(action_value(q_new, a_new, net.kind) - y_new, c.huber_delta)
            l_new = tf.reduce_sum(valid_new * l_new, 1) / tf.maximum(tf.reduce_sum(valid_new, 1), 1.0)
            l_old = huber(action_value(q_old, a_old_b, net.kind) - y_old[None], c.huber_delta)
            l_old = tf.reduce_sum(weights * l_old, 1) / tf.maximum(tf.reduce_sum(weights, 1), 1e-8)
            prox = proximal_penalty([kernel, bias], [kernel0, bias0], c.proximal_coef, batch_dims=1)
            return tf.reduce_sum(l_new + l_old + prox)

        def body(i, kernel, bias, mk, vk, mb, vb):
            with tf.GradientTape() as tape:
                tape.watch([kernel, bias])
                loss = loss_fn(kernel, bias)
            gk, gb = tape.gradient(loss, [kernel, bias])
            t = tf.cast(i + 1, tf.float32)
            lr = c.adapt_learning_rate * tf.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
            mk, vk = beta1 * mk + (1 - beta1) * gk, beta2 * vk + (1 - beta2) * tf.square(gk)
            mb, vb = beta1 * mb + (1 - beta1) * gb, beta2 * vb + (1 - beta2) * tf.square(gb)
            return (i + 1, kernel - lr * mk / (tf.sqrt(vk) + 1e-8), bias - lr * mb / (tf.sqrt(vb) + 1e-8),
                    mk, vk, mb, vb)

        kernel = tf.tile(kernel0[None], [b, 1, 1])
        bias = tf.tile(bias0[None], [b, 1])
        zk, zb = tf.zeros_like(kernel), tf.zeros_like(bias)
        out = tf.while_loop(lambda i, *_: i < c.adapt_steps, body, (tf.constant(0), kernel, bias, zk, zk, zb, zb))
        kernel, bias = out[1], out[2]
        stats = {"ess": ess, "n_old": n_old, "weight_mean": tf.reduce_mean(weights),
                 "weight_max": tf.reduce_max(weights),
                 "clipped_fraction": tf.reduce_mean(tf.cast(raw >= c.max_weight, tf.float32)),
                 "head_shift": tf.reduce_mean(tf.sqrt(proximal_penalty([kernel, bias], [kernel0, bias0], 1.0, 1)))}
        return kernel, bias, stats
