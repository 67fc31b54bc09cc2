"""MAML for policy-gradient RL (Finn et al. 2017; outer step PPO-clip as in ProMP, Rothfuss et al. 2019),
batched over tasks, in compiled graphs.

Read top to bottom: config (config.py) -> network (policy.py ``FunctionalPolicyNet``) -> one meta-iteration:

1. **collect** (``_collect``): reset the meta-batch's trial environment (row i = task i) and play
   ``inner_steps`` inner episodes, each with the current per-task parameters, taking one inner policy-gradient
   step per task after each (stacked parameters ``[N, ...]``: one batched computation, no loop over tasks);
   then one more episode with the adapted parameters θ'_i (the post-adaptation episode).
2. **meta-gradient** (``_meta_grads``): recompute θ'_i(θ) from the stored pre-adaptation episodes inside an
   outer ``GradientTape`` (nested tapes: second order; ``first_order`` stops the inner gradients), evaluate the
   PPO-clip loss of the post-adaptation episode under θ'_i, differentiate w.r.t. θ (and the Meta-SGD rates).
3. ``outer_epochs`` Adam steps of 2 on the same data.

``inner_steps = 0`` is multi-task pretraining (PPO on episodes of θ itself, no adaptation in the objective);
``init_only`` never updates θ (the random-initialisation baseline). ``objective: reward_model`` swaps the
stochastic policy for a reward model (one prediction per action / item, served greedily, epsilon-greedy while
meta-training) whose inner and outer losses are squared errors on the observed rewards (MeLU-style).
``adapt`` returns a :class:`MAMLPolicy` that takes ``budget`` inner steps online, one per inner episode (see
policy.py for what the budget counts).
"""

from __future__ import annotations

import tensorflow as tf

from metarl_apps.algorithms.maml.config import MAMLConfig
from metarl_apps.algorithms.maml.losses import advantages, inner_update, ppo_outer_loss
from metarl_apps.algorithms.maml.policy import FunctionalPolicyNet, MAMLPolicy, inner_loss_fn
from metarl_apps.core.agent import MetaLearner, TrainResult
from metarl_apps.core.env import CHOICE, OBS
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.training import open_checkpoint, restore_latest, set_task_batch, train_loop
from metarl_apps.networks.functional import stack_params

DEFAULT_POPULATION = 10_000


class MAML(MetaLearner):
    """MAML / first-order MAML / Meta-SGD on any trial-environment family (Gaussian, categorical, per-slot heads)."""

    config_cls = MAMLConfig
    name = "maml"

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.net: FunctionalPolicyNet | None = None
        self.params: list[tf.Variable] = []
        self.lrs: float | list[tf.Variable] = 0.0
        self._optimizer = None

    # ------------------------------------------------------------------ build
    def _build(self, dist) -> None:
        c = self.config
        self.net = FunctionalPolicyNet(dist.observation_spec(), dist.action_spec(), c.hidden_sizes, c.activation,
                                       reward_model=c.objective == "reward_model", scoring=c.scoring)
        self.params = self.net.init_params(c.seed)
        if c.learn_inner_lr:
            self.lrs = [tf.Variable(tf.fill(s, float(c.inner_lr)), name=f"inner_lr_{i}")
                        for i, s in enumerate(self.net.param_shapes)]
        else:
            self.lrs = float(c.inner_lr)
        self._optimizer = tf.keras.optimizers.Adam(c.outer_lr)
        self._optimizer.build(self.trainable)
        self._dist = dist

    @property
    def trainable(self) -> list[tf.Variable]:
        """θ, then the Meta-SGD rates if learned."""
        return self.params + (self.lrs if isinstance(self.lrs, list) else [])

    def _checkpoint(self, **extra) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(params=self.params, lrs=self.lrs if isinstance(self.lrs, list) else [],
                                   optimizer=self._optimizer, **extra)

    def _loss_kwargs(self) -> dict:
        c = self.config
        return dict(estimator=c.estimator, baseline=c.baseline, discount=c.discount, normalize=c.normalize_advantages)

    # ------------------------------------------------------ one meta-iteration
    def _run_episode(self, env, stacked, time_step, generator: tf.random.Generator):
        """Play one inner episode in every row with per-row parameters ``stacked [N, ...]``, every random draw
        (actions, epsilon-greedy coins) from ``generator`` (stateless ops: a resumed run replays the draws of an
        uninterrupted one, since the generator's state is checkpointed).

        Returns ``(episode, next time step)``; ``episode`` is a dict of ``x [N, T, D]``, ``raw [N, T, ...]``
        (sampled raw actions), ``reward [N, T]``, ``log_prob [N, T]`` and ``mask [N, T, n]`` if the family has
        action masks.
        """
        net, horizon = self.net, env.horizon
        has_mask = net._mask_spec is not None
        keys = ("x", "raw", "reward", "log_prob") + (("mask",) if has_mask else ()) + (
            ("choice",) if net.item_feedback else ())
        dtypes = {"raw": net.raw_dtype, "choice": tf.int32}
        tas = tuple(tf.TensorArray(dtypes.get(k, tf.float32), size=horizon) for k in keys)

        epsilon = self.config.explore_epsilon

        def body(t, time_step, tas):
            x, mask = net.features(time_step.observation)
            if net.reward_model:  # epsilon-greedy: best predicted action / slate, or a uniformly random one
                scores = net.scores(stacked, x[:, None])[:, 0]
                explore = generator.uniform(tf.shape(scores)[:1]) < epsilon
                noise = generator.uniform(tf.shape(scores))
                raw = tf.where(tf.reshape(explore, [-1] + [1] * len(net.action_shape)),
                               net.serve(noise, mask), net.serve(scores, mask))
                logp = tf.zeros(tf.shape(scores)[:1])
            else:
                dist = net.distribution(stacked, x[:, None], None if mask is None else mask[:, None])
                raw = tf.cast(dist.sample(seed=tf.cast(generator.make_seeds(1)[:, 0], tf.int32)),
                              net.raw_dtype)  # [N, 1, ...]
                logp = dist.log_prob(raw)[:, 0]
                raw = raw[:, 0]
            time_step = env.step(net.to_env_action(raw))
            values = (x, raw, time_step.reward, logp) + ((mask,) if has_mask else ()) + (
                (tf.cast(time_step.observation[OBS][CHOICE], tf.int32),) if net.item_feedback else ())
            return t + 1, time_step, tuple(ta.write(t, v) for ta, v in zip(tas, values, strict=True))

        _, time_step, tas = tf.while_loop(lambda t, *_: t < horizon, body, (tf.constant(0), time_step, tas),
                                          parallel_iterations=1)
        tas = dict(zip(keys, tas, strict=True))

        def bt(ta):  # [T, N, ...] -> [N, T, ...]
            x = ta.stack()
            return tf.transpose(x, tf.concat([[1, 0], tf.range(2, tf.rank(x))], 0))

        return {k: bt(v) for k, v in tas.items()}, time_step

    def _inner_loss(self, episode):
        return inner_loss_fn(self.net, episode["x"], episode.get("mask"), episode["raw"], episode["reward"],
                             choice=episode.get("choice"), **self._loss_kwargs())

    def _collect(self, env, generator: tf.random.Generator) -> tuple[list[dict], dict]:
        """Step 1: ``(pre-adaptation episodes, post-adaptation episode)`` of every row (plain TF code)."""
        n = env.batch_size
        time_step = env.reset()
        stacked = stack_params(self.params, n)
        pre = []
        for _ in range(self.config.inner_steps):
            episode, time_step = self._run_episode(env, stacked, time_step, generator)
            pre.append(episode)
            stacked = inner_update(stacked, self._inner_loss(episode), self.lrs, 1, first_order=True)
        posts = []
        for _ in range(self.config.post_episodes):  # > 1 only for reward_model: a longer query set
            episode, time_step = self._run_episode(env, stacked, time_step, generator)
            posts.append(episode)
        return pre, {k: tf.concat([e[k] for e in posts], axis=1) for k in posts[0]}

    def _meta_grads(self, pre: list[dict], post: dict) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """Step 2: the outer loss (mean over tasks) and its gradient w.r.t. :attr:`trainable` (plain TF code):
        PPO-clip on the post-adaptation episode, or (``reward_model``) the adapted model's squared error on it."""
        c = self.config
        n = post["reward"].shape[0]
        if not self.net.reward_model:
            adv, _ = advantages(post["x"], post["reward"], discount=c.discount, baseline=c.baseline,
                                normalize=c.normalize_advantages, per_task=False)
        sources = self.trainable
        with tf.GradientTape() as tape:
            tape.watch(sources)
            adapted = stack_params(self.params, n)
            for episode in pre:
                adapted = inner_update(adapted, self._inner_loss(episode), self.lrs, 1, c.first_order)
            if self.net.reward_model:
                loss = tf.reduce_mean(self._inner_loss(post)(adapted))
            else:
                logp = self.net.distribution(adapted, post["x"], post.get("mask")).log_prob(post["raw"])
                loss = tf.reduce_mean(ppo_outer_loss(logp, post["log_prob"], adv, c.clip_ratio))
        grads = tape.gradient(loss, sources, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return loss, grads

    def _apply(self, grads: list[tf.Tensor]) -> tf.Tensor:
        grads, norm = tf.clip_by_global_norm(grads, self.config.max_grad_norm)
        self._optimizer.apply_gradients(zip(grads, self.trainable, strict=True))
        if isinstance(self.lrs, list):  # keep learned rates non-negative
            for lr in self.lrs:
                lr.assign(tf.maximum(lr, 0.0))
        return norm

    def _make_iteration(self, env, generator: tf.random.Generator):
        """The compiled meta-iteration (collect + ``outer_epochs`` updates) for ``env``'s batch of tasks."""
        c = self.config

        @tf.function
        def iteration():
            pre, post = self._collect(env, generator)
            loss, norm = tf.constant(0.0), tf.constant(0.0)
            for _ in tf.range(c.outer_epochs):
                loss, grads = self._meta_grads(pre, post)
                norm = self._apply(grads)
            metrics = {"outer_loss": loss, "grad_norm": norm,
                       "post_return": tf.reduce_mean(tf.reduce_sum(post["reward"], axis=1)) / c.post_episodes}
            if pre:
                metrics["pre_return"] = tf.reduce_mean(tf.reduce_sum(pre[0]["reward"], axis=1))
            return metrics

        return iteration

    # ------------------------------------------------------------ outer loop
    def _meta_train(self, dist, train_tasks, *, iterations, seed, checkpoint_dir, resume, summary_dir,
                    progress):
        c = self.config
        need = c.inner_steps + c.post_episodes
        if dist.episodes_per_trial < need:
            raise MetaRLInputError(
                f"MAML: inner_steps={c.inner_steps} and post_episodes={c.post_episodes} need trials of at least "
                f"{need} episodes (one per inner step plus the post-adaptation ones); {dist.family!r} has "
                f"{dist.episodes_per_trial}; lower them or raise the family's episodes/pulls/interactions")
        pool = train_tasks if train_tasks is not None else dist.sample(DEFAULT_POPULATION, "train", seed)
        batch = min(c.meta_batch_size, len(pool))
        tf.keras.utils.set_random_seed(seed)
        if self.net is None or self._dist is None or self._dist.family != dist.family:
            self._build(dist)
        env = dist.make_env(pool[:batch], seed=seed)
        done = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations_done")
        generator = tf.random.Generator.from_seed(seed)
        ckpt = self._checkpoint(generator=generator, iterations_done=done, env_trial=env._trial)
        manager = open_checkpoint(ckpt, checkpoint_dir, resume)
        if c.init_only:  # the random-initialisation baseline: nothing to train
            if manager is not None:
                manager.save(checkpoint_number=0)
            return TrainResult(iterations=0, wall_time_s=0.0, metrics={},
                               checkpoint=manager.latest_checkpoint if manager else None)
        if batch > 1 and not env.supports_set_tasks and len(pool) > batch:
            raise MetaRLInputError(f"MAML: {dist.family!r} environments cannot swap tasks; pass at most "
                                   f"meta_batch_size={batch} training tasks")
        iteration = self._make_iteration(env, generator)

        def step(it: int) -> dict:
            if env.supports_set_tasks:
                set_task_batch(env, pool, batch, seed, it)
            return {k: float(v) for k, v in iteration().items()}

        metrics, wall = train_loop("MAML", step, iterations=iterations, done=done, manager=manager,
                                   summary_dir=summary_dir, log_every=c.log_every,
                                   checkpoint_every=c.checkpoint_every, progress=progress,
                                   fix="lower outer_lr or inner_lr", postfix="post_return")
        return TrainResult(iterations=iterations, wall_time_s=wall, metrics=metrics,
                           checkpoint=manager.latest_checkpoint if manager else None)

    def _restore(self, checkpoint_dir, dist) -> None:
        self._build(dist)
        restore_latest(self._checkpoint(), checkpoint_dir, "MAML")

    # ----------------------------------------------------------------- adapt
    def _adapt(self, env, tasks, budget, greedy: bool = False):
        dist = self._dist
        return MAMLPolicy(self.net, self.params, self.lrs, dist.time_step_spec(), dist.action_spec(),
                          horizon=dist.horizon, budget=budget, greedy=greedy, **self._loss_kwargs(),
                          adaptation={"algorithm": "maml", "budget": budget, "budget_meaning":
                                      "inner gradient steps, one per inner episode of the task's own interaction",
                                      "tasks": [t.task_id for t in tasks] if tasks else None})
