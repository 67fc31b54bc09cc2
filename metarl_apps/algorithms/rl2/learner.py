"""RL² (Duan et al. 2016; Wang et al. 2016) trained with PPO, batched over tasks, in compiled graphs.

Read top to bottom: config (config.py) -> network (networks/recurrent.py) -> one training iteration
(rollout of one trial per task + GAE + PPO epochs over sequence minibatches, all in one ``tf.function``) ->
the outer loop (task batches, checkpoints, summaries, NaN guard) -> adapt (no gradient steps).

A distribution whose learner moves several agents at once (``dist.num_controlled_agents > 1``, e.g.
``games.gridlevels`` with ``control="all"``) gets a :class:`SharedAgentsActorCritic` instead: one network
shared by the agents, one memory per agent; its outputs have the multi-discrete layout (one categorical per
agent), so the rest of this file is unchanged.

A trial is one tf-agents episode of the task's trial environment: ``episodes_per_trial`` inner episodes of
the same task. The recurrent state starts at zero at the trial's first step and is never reset inside it.
"""

from __future__ import annotations

import tensorflow as tf

from metarl_apps.algorithms.rl2.config import RL2Config
from metarl_apps.algorithms.rl2.losses import action_distribution, gae, ppo_loss
from metarl_apps.algorithms.rl2.policy import RL2Policy, greedy_indices
from metarl_apps.baselines.recsys import GlobalRewardModelBaseline, slate_dims
from metarl_apps.core.agent import MetaLearner, TrainResult
from metarl_apps.core.env import NEW_EPISODE
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.training import (
    Selection,
    open_checkpoint,
    restore_best,
    restore_latest,
    set_task_batch,
    train_loop,
    will_resume,
)
from metarl_apps.evaluation.runner import episode_returns
from metarl_apps.networks.prior import FrozenScorer
from metarl_apps.networks.recurrent import RecurrentActorCritic
from metarl_apps.networks.shared_agents import SharedAgentsActorCritic

DEFAULT_POPULATION = 10_000
#: validation tasks for ``select_every`` are ``dist.sample(select_tasks, "train", SELECT_SEED + training seed)``:
#: training-split tasks drawn from their own stream, apart from the training pool and never the test tasks
SELECT_SEED = 7_340_033


class RL2(MetaLearner):
    """RL² with an LSTM (or GRU) memory, meta-trained by PPO on batches of tasks."""

    config_cls = RL2Config
    name = "rl2"

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.net: RecurrentActorCritic | SharedAgentsActorCritic | None = None
        self._optimizer = None

    # ------------------------------------------------------------------ build
    def _build(self, dist) -> None:
        c = self.config
        slate = c.slate if c.slate is not None else bool(getattr(dist, "slate_actions", False))
        agents = int(getattr(dist, "num_controlled_agents", 1))
        trial_length = dist.horizon * dist.episodes_per_trial
        prior = self._make_prior(dist, agents)
        if agents > 1:  # several agents: shared parameters, per-agent memory
            if c.scoring != "per_item":
                raise MetaRLInputError(f"RL2: scoring={c.scoring!r} does not apply to {dist.family!r}, whose learner "
                                       f"moves {agents} agents; use scoring 'per_item'")
            if slate:
                raise MetaRLInputError(f"RL2: slate=True does not apply to {dist.family!r}, whose learner moves "
                                       f"{agents} agents (one discrete action each)")
            if c.value_network != "shared" or c.head_hidden or c.set_normalize_keyed or c.privileged_value:
                raise MetaRLInputError(f"RL2: value_network={c.value_network!r}, head_hidden={c.head_hidden}, "
                                       f"set_normalize_keyed={c.set_normalize_keyed}, privileged_value="
                                       f"{c.privileged_value} are not built for {dist.family!r}, whose learner "
                                       f"moves {agents} agents with one shared network; use value_network "
                                       f"'shared', head_hidden 0, set_normalize_keyed false, privileged_value false")
            if c.set_action_reads:
                raise MetaRLInputError(f"RL2: set_action_reads=True is not built for {dist.family!r}, whose learner "
                                       f"moves {agents} agents with one shared network; set set_action_reads false")
            if c.compute_dtype != "float32":
                raise MetaRLInputError(f"RL2: compute_dtype={c.compute_dtype!r} is not built for {dist.family!r}, "
                                       f"whose learner moves {agents} agents with one shared network; use "
                                       f"compute_dtype 'float32'")
            self.net = SharedAgentsActorCritic(dist.observation_spec(), dist.action_spec(), agents, cell=c.cell,
                                               hidden_size=c.hidden_size, embed_sizes=c.embed_sizes,
                                               trial_length=trial_length, set_keys=c.set_keys)
        else:
            # the privileged critic's input size: the family's task features of any one task
            info_size = dist.task_features(dist.sample(1, "train", 0)).shape[1] if c.privileged_value else 0
            self.net = RecurrentActorCritic(dist.observation_spec(), dist.action_spec(), cell=c.cell,
                                            hidden_size=c.hidden_size, embed_sizes=c.embed_sizes, slate=slate,
                                            scoring=c.scoring, trial_length=trial_length, set_keys=c.set_keys,
                                            set_normalize_keyed=c.set_normalize_keyed, prior=prior,
                                            prior_scale=c.prior_scale, separate_value=c.value_network == "separate",
                                            head_hidden=c.head_hidden, task_info_size=info_size,
                                            compute_dtype=c.compute_dtype, set_action_reads=c.set_action_reads)
        self._optimizer = tf.keras.optimizers.Adam(c.learning_rate)
        self._optimizer.build(self.net.trainable_variables)
        self._return_scale = tf.Variable(1.0, trainable=False, name="return_scale")
        # set before every iteration from the schedule (not checkpointed: a function of the iteration index)
        self._entropy_coef = tf.Variable(float(self.config.entropy_coef), trainable=False, name="entropy_coef")
        self._discount = tf.Variable(float(self.config.discount), trainable=False, name="discount")
        self._gae_lambda = tf.Variable(float(self.config.gae_lambda), trainable=False, name="gae_lambda")
        self._dist = dist

    def _make_prior(self, dist, agents: int) -> FrozenScorer | None:
        """The (unfitted) prior scorer of ``config.prior``; :meth:`_fit_prior` gives it its weights."""
        c = self.config
        if c.prior == "none":
            return None
        dims = slate_dims(dist)
        if dims is None or agents > 1:
            raise MetaRLInputError(f"RL2: prior {c.prior!r} needs a slate family (obs['doc_features'] and a [k] "
                                   f"slate action, e.g. recsys.interest_evolution); {dist.family!r} is not one; "
                                   f"use prior 'none'")
        self._prior_baseline = GlobalRewardModelBaseline(**c.prior_config)
        cfg = self._prior_baseline.config
        return FrozenScorer(dims.num_features, cfg["hidden"], cfg["context"])

    def _fit_prior(self, dist, pool, seed: int) -> None:
        """Fit the ``global_mlp`` baseline on the training users (as the baseline itself is fitted) and copy
        its model into the network's frozen prior."""
        self._prior_baseline.fit(dist, pool, seed)
        self.net.prior.assign_from(self._prior_baseline.model)

    def _scheduled(self, iteration: int, start: float, final: float | None, iterations: int, name: str) -> float:
        """Linear from ``start`` to ``final`` over ``iterations`` iterations from ``config.anneal_start``;
        ``config.phases`` override ``name`` from their starts."""
        phased = self.config.phase_setting(name, iteration)
        if phased is not None:
            return float(phased)
        if final is None:
            return float(start)
        frac = min(1.0, max(0, iteration - self.config.anneal_start) / iterations)
        return float(start + frac * (final - start))

    def entropy_coef_at(self, iteration: int) -> float:
        """The entropy weight used at (0-based) ``iteration`` (see ``RL2Config.entropy_anneal_iterations``)."""
        c = self.config
        return self._scheduled(iteration, c.entropy_coef, c.entropy_coef_final, c.entropy_anneal_iterations,
                               "entropy_coef")

    def learning_rate_at(self, iteration: int) -> float:
        """The Adam step size used at (0-based) ``iteration`` (see ``RL2Config.learning_rate_final``)."""
        c = self.config
        return self._scheduled(iteration, c.learning_rate, c.learning_rate_final, c.learning_rate_anneal_iterations,
                               "learning_rate")

    def discount_at(self, iteration: int) -> float:
        """The discount used at (0-based) ``iteration`` (see ``RL2Config.discount_final``)."""
        c = self.config
        return self._scheduled(iteration, c.discount, c.discount_final, c.discount_anneal_iterations, "discount")

    def gae_lambda_at(self, iteration: int) -> float:
        """The GAE λ used at (0-based) ``iteration`` (constant ``gae_lambda`` unless a phase sets it)."""
        return self._scheduled(iteration, self.config.gae_lambda, None, 0, "gae_lambda")

    def _checkpoint(self, **extra) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(net=self.net, optimizer=self._optimizer, return_scale=self._return_scale,
                                   **extra)

    # ------------------------------------------------------ one iteration
    def _make_rollout(self, env, generator: tf.random.Generator, greedy: bool = False, task_info=None,
                      expected_rewards: bool = False):
        """``rollout()``: one trial of the current policy in every row of ``env`` (graph-traceable), returning
        ``observations, actions, log_probs, values, rewards`` as ``[B, T, ...]``. Actions are drawn from
        ``generator`` (stateless ops: reproducible), or by the mode with ``greedy`` (as :class:`RL2Policy`).
        ``task_info`` (``privileged_value``): a ``[B, F]`` variable holding the rows' task features.
        ``expected_rewards``: also return ``[B, T]`` expected rewards (``env.expected_reward`` of each action,
        taken before its step) after ``rewards``."""
        net = self.net
        batch = env.batch_size
        steps = env.horizon * env.episodes_per_trial
        action_rank = len(net.action_shape)
        obs_spec = env.time_step_spec().observation
        distinct = not net.slate_size and action_rank == 1 and bool(getattr(self._dist, "slate_actions", False))

        def sample(logits):
            # NaN logits would sample an out-of-range index and crash the environment; act uniformly instead:
            # the NaN still reaches the loss, and meta_train stops with "non-finite training metrics".
            logits = tf.where(tf.math.is_finite(logits), logits, tf.zeros_like(logits))
            if greedy:
                return greedy_indices(logits, net.slate_size, distinct)
            if net.slate_size:
                dist = action_distribution(logits, action_rank, net.slate_size)
                return dist.sample(seed=tf.cast(generator.make_seeds(1)[:, 0], tf.int32))
            flat = tf.reshape(logits, [-1, net.num_values])
            seed = generator.make_seeds(1)[:, 0]
            draws = tf.random.stateless_categorical(flat, 1, seed=seed, dtype=tf.int32)
            return tf.reshape(draws, tf.shape(logits)[:-1])

        info = () if task_info is None else (task_info,)

        def rollout():
            time_step = env.reset()
            state = net.initial_state(batch)
            obs_ta = tf.nest.map_structure(lambda s: tf.TensorArray(s.dtype, size=steps), obs_spec)
            act_ta = tf.TensorArray(tf.int32, size=steps)
            logp_ta = tf.TensorArray(tf.float32, size=steps)
            val_ta = tf.TensorArray(tf.float32, size=steps)
            rew_ta = tf.TensorArray(tf.float32, size=steps)
            mean_ta = tf.TensorArray(tf.float32, size=steps if expected_rewards else 0)
            for t in tf.range(steps):
                logits, value, state = net.step(time_step.observation, state, *info)
                index = sample(logits)
                logp = action_distribution(logits, action_rank, net.slate_size).log_prob(index)
                action = tf.cast(index + net.action_min, env.action_spec().dtype)
                obs_ta = tf.nest.map_structure(lambda ta, x, t=t: ta.write(t, x), obs_ta, time_step.observation)
                if expected_rewards:  # before the step: the mean of the reward it is about to draw
                    mean_ta = mean_ta.write(t, env.expected_reward(action))
                time_step = env.step(action)
                act_ta = act_ta.write(t, index)
                logp_ta = logp_ta.write(t, logp)
                val_ta = val_ta.write(t, value)
                rew_ta = rew_ta.write(t, time_step.reward)

            def bt(ta):  # [T, B, ...] -> [B, T, ...]
                x = ta.stack()
                return tf.transpose(x, tf.concat([[1, 0], tf.range(2, tf.rank(x))], 0))

            observations = tf.nest.map_structure(bt, obs_ta)
            out = (observations, bt(act_ta), bt(logp_ta), bt(val_ta), bt(rew_ta))
            return out + (bt(mean_ta),) if expected_rewards else out

        return rollout

    def _ppo_objective(self, observations, actions, old_logp, advantages, returns, *task_info):
        """``(loss, parts)`` of PPO on one minibatch of whole trials (``[mb, T, ...]``, memory from the initial
        state) under the current weights: what every gradient step of an iteration differentiates (and what
        bench/flops.py counts the FLOPs of)."""
        c, net = self.config, self.net
        rows = actions.shape[0] or tf.shape(actions)[0]
        logits, values, _ = net.unroll(observations, net.initial_state(rows), *task_info)
        dist = action_distribution(logits, len(net.action_shape), net.slate_size)
        return ppo_loss(dist.log_prob(actions), old_logp, advantages, dist.entropy(), values,
                        returns / self._return_scale, clip_ratio=c.clip_ratio, entropy_coef=self._entropy_coef,
                        value_coef=c.value_coef)

    def _make_iteration(self, env, generator: tf.random.Generator, task_info=None):
        c = self.config
        net = self.net
        optimizer = self._optimizer
        batch = env.batch_size
        rollout = self._make_rollout(env, generator, task_info=task_info, expected_rewards=c.expected_rewards)

        return_scale = self._return_scale
        discount = self._discount
        gae_lambda = self._gae_lambda

        def update(observations, actions, old_logp, advantages, returns):
            mb = batch // c.minibatches
            metrics = {k: tf.constant(0.0) for k in ("loss", "policy_loss", "value_loss", "entropy",
                                                        "clip_fraction", "grad_norm")}
            n = tf.constant(0.0)
            for _ in tf.range(c.epochs):
                # [minibatches, mb]: row m is minibatch m (a static shape, which XLA needs)
                perm = tf.reshape(tf.argsort(generator.uniform([batch]))[:mb * c.minibatches], [c.minibatches, mb])
                for m in tf.range(c.minibatches):
                    idx = perm[m]
                    take = lambda x, idx=idx: tf.gather(x, idx)  # noqa: E731
                    obs_mb = tf.nest.map_structure(take, observations)
                    info_mb = () if task_info is None else (take(task_info),)
                    adv = take(advantages)
                    if c.normalize_advantages:
                        adv = (adv - tf.reduce_mean(adv)) / (tf.math.reduce_std(adv) + 1e-8)
                    with tf.GradientTape() as tape:
                        loss, parts = self._ppo_objective(obs_mb, take(actions), take(old_logp), adv,
                                                          take(returns), *info_mb)
                    grads = tape.gradient(loss, net.trainable_variables)
                    grads, grad_norm = tf.clip_by_global_norm(grads, c.max_grad_norm)
                    optimizer.apply_gradients(zip(grads, net.trainable_variables, strict=True))
                    parts = {**parts, "loss": loss, "grad_norm": grad_norm}
                    metrics = {k: metrics[k] + parts[k] for k in metrics}
                    n += 1.0
            return {k: v / n for k, v in metrics.items()}

        @tf.function
        def iteration():
            observations, actions, old_logp, values, rewards, *means = rollout()
            # expected_rewards: train on the rewards' means (Rao-Blackwellised returns), report the drawn ones
            learn = means[0] if means else rewards
            # The value head predicts returns / return_scale (1 when normalize_values is off).
            advantages, returns = gae(learn * c.reward_scale, values * return_scale, discount, gae_lambda)
            if c.normalize_values:
                rms = tf.sqrt(tf.reduce_mean(tf.square(returns)) + 1e-8)
                return_scale.assign(0.9 * return_scale + 0.1 * rms)
            metrics = update(observations, actions, old_logp, advantages, returns)
            metrics["trial_return"] = tf.reduce_mean(tf.reduce_sum(rewards, axis=1))
            return metrics

        return iteration

    # ------------------------------------------------------------ outer loop
    def _meta_train(self, dist, train_tasks, *, iterations, seed, checkpoint_dir, resume, summary_dir,
                    progress):
        c = self.config
        pool = train_tasks if train_tasks is not None else dist.sample(DEFAULT_POPULATION, "train", seed)
        batch = min(c.tasks_per_iteration, len(pool))
        if batch < c.minibatches:
            raise MetaRLInputError(f"RL2: {len(pool)} training tasks cannot fill {c.minibatches} minibatches; "
                                   f"add training tasks or lower minibatches")
        batch -= batch % c.minibatches
        tf.keras.utils.set_random_seed(seed)  # before building: initial weights are a function of the seed
        if self.net is None or self._dist is None or self._dist.family != dist.family:
            self._build(dist)
            if getattr(self.net, "prior", None) is not None and not will_resume(checkpoint_dir, resume):
                self._fit_prior(dist, pool, seed)  # a resumed run restores the fitted prior from its checkpoint
        env = dist.make_env(pool[:batch], seed=seed)
        if not getattr(env, "supports_set_tasks", False):
            raise MetaRLInputError(f"RL2: the {dist.family!r} environment does not support set_tasks(), which "
                                   f"meta-training over a population needs")
        if c.expected_rewards and not getattr(env, "supports_expected_reward", False):
            raise MetaRLInputError(f"RL2: expected_rewards=true needs an environment that defines each step's "
                                   f"expected reward, which {dist.family!r} does not; set expected_rewards false")
        generator = tf.random.Generator.from_seed(seed)
        done = tf.Variable(0, dtype=tf.int64, trainable=False)
        selection = self._make_selection(dist, seed, checkpoint_dir) if c.select_every else None
        ckpt = self._checkpoint(generator=generator, iterations_done=done, env_trial=env._trial,
                                **(selection.trackables() if selection else {}))
        manager = open_checkpoint(ckpt, checkpoint_dir, resume)
        features = task_info = None
        if c.privileged_value:  # the critic's view of each training task (never the policy's)
            features = dist.task_features(pool)
            task_info = tf.Variable(tf.zeros([batch, features.shape[1]]), trainable=False, name="task_info")
        iteration = self._make_iteration(env, generator, task_info)

        def step(it: int) -> dict:
            order = set_task_batch(env, pool, batch, seed, it)
            if task_info is not None:
                task_info.assign(features[order])
            self._entropy_coef.assign(self.entropy_coef_at(it))
            self._optimizer.learning_rate.assign(self.learning_rate_at(it))  # after a restore too
            self._discount.assign(self.discount_at(it))
            self._gae_lambda.assign(self.gae_lambda_at(it))
            return {k: float(v) for k, v in iteration().items()}

        metrics, wall = train_loop("RL2", step, iterations=iterations, done=done, manager=manager,
                                   summary_dir=summary_dir, log_every=c.log_every,
                                   checkpoint_every=c.checkpoint_every, progress=progress,
                                   fix="lower learning_rate or reward_scale", postfix="trial_return",
                                   selection=selection)
        if selection is not None:
            metrics = {**metrics, **selection.finish()}
        return TrainResult(iterations=iterations, wall_time_s=wall, metrics=metrics,
                           checkpoint=manager.latest_checkpoint if manager else None)

    def _make_selection(self, dist, seed: int, checkpoint_dir: str | None) -> Selection:
        """Score = mean over ``select_budgets`` of the validation tasks' mean cumulative reward after K budget
        units divided by K, with the policy acting as after training (``greedy_eval``). Common random numbers:
        every scoring replays the same tasks with the same environment and action draws."""
        c = self.config
        budgets = list(c.select_budgets or [dist.episodes_per_trial])
        if max(budgets) > dist.episodes_per_trial:
            raise MetaRLInputError(f"RL2Config.select_budgets={budgets}: a trial of {dist.family!r} has "
                                   f"{dist.episodes_per_trial} {dist.budget_unit}; use budgets up to that")
        tasks = dist.sample(c.select_tasks, "train", SELECT_SEED + seed)
        env = dist.make_env(tasks, seed=SELECT_SEED + seed)
        generator = tf.random.Generator.from_seed(SELECT_SEED + seed)
        rollout = tf.function(self._make_rollout(env, generator, greedy=c.greedy_eval))

        def score() -> float:
            generator.reset_from_seed(SELECT_SEED + seed)
            env.rewind()
            observations, _, _, _, rewards = rollout()
            episode = tf.cumsum(tf.cast(observations[NEW_EPISODE] > 0.5, tf.int32), axis=1) - 1
            cumulative = episode_returns(rewards.numpy(), episode.numpy(), max(budgets)).cumsum(axis=1)
            return float(sum(cumulative[:, b - 1].mean() / b for b in budgets) / len(budgets))

        return Selection(self.net, score, c.select_every, checkpoint_dir)

    def _restore(self, checkpoint_dir, dist) -> None:
        self._build(dist)
        restore_latest(self._checkpoint(), checkpoint_dir, "RL2")
        if self.config.select_every:
            restore_best(self.net, checkpoint_dir)

    # ----------------------------------------------------------------- adapt
    def _adapt(self, env, tasks, budget):
        dist = self._dist
        return RL2Policy(self.net, dist.time_step_spec(), dist.action_spec(), greedy=self.config.greedy_eval,
                         distinct=bool(getattr(dist, "slate_actions", False)),
                         adaptation={"algorithm": "rl2", "budget": budget,
                                     "tasks": [t.task_id for t in tasks] if tasks else None})


