"""Game baselines (``games.*`` families): legal-random, the Bayes-optimal response to biased RPS opponents,
a non-adaptive multi-task policy (no memory) trained on the training levels / opponents, and per-level
specialists trained on each held-out level alone.

The gridlevels shortest-path oracle is the family's ``oracle_policy`` (registered baseline ``oracle``).

* :class:`LegalRandomBaseline` (``random_legal``) — a uniformly random action among those allowed by
  ``obs["action_mask"]`` (all actions when the family has no mask). The generic ``random`` baseline
  (tf-agents ``RandomTFPolicy``) ignores masks: on Connect Four it plays full columns and loses by
  PettingZoo's illegal-move rule.
* :class:`RPSBayesBaseline` (``rps_bayes``) — for ``games.rps`` with only ``biased`` opponents (i.i.d. moves
  ``p ~ Dirichlet(alpha)``): the posterior over ``p`` after ``n_k`` observed opponent moves of each kind is
  ``Dirichlet(alpha + n)``; the learner observes the opponent's move whatever it plays (it is
  ``(own move - reward) mod 3``), so the posterior does not depend on the learner's actions and the
  Bayes-optimal policy is exactly the myopic best response to the posterior mean
  ``q = (alpha + n) / (3 alpha + sum n)``: play ``argmax_a q[a - 1] - q[a + 1]`` (indices mod 3; ties
  uniformly at random). The counts run over the whole trial (every game is against the same opponent).
  On other populations it is the frequency-counting best response (no longer optimal: cyclic or reactive
  opponents are predictable from the last moves, not from frequencies).
* :class:`NonAdaptiveBaseline` (``non_adaptive``) — a feedforward policy ``pi(a | obs)`` on the current
  observation only (no previous action/reward, no memory: the same observation gives the same action
  distribution on every level), trained by REINFORCE (return-to-go within the inner episode, per-step batch
  mean as baseline, entropy bonus) on the first inner episode of trials on training tasks, action masks
  respected. It is what a standard multi-task RL agent without adaptation reaches.
* :class:`SpecialistBaseline` (``specialist``) — per held-out task, the same kind of memoryless policy trained
  by REINFORCE on **that task alone** (many trials of it, in an environment seeded apart from the
  evaluation's), then acting greedily: a ceiling for what a learner could reach on the level with unlimited
  experience of it. All specialists of a chunk train at once as one network with stacked per-task weights.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tf_agents.policies import tf_policy
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import policy_step

from metarl_apps.baselines.base import ConfiguredBaseline, StatefulPolicy, check_int, check_number, random_choice
from metarl_apps.core import rng
from metarl_apps.core.agent import Baseline, is_first
from metarl_apps.core.env import OBS, PREV_ACTION, PREV_REWARD
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.task import Task, TaskDistribution
from metarl_apps.networks.encoding import split_action_mask

GAME_FAMILIES = ("games.gridlevels", "games.rps", "games.connect_four", "games.cooperative_pong")


def _num_actions(dist: TaskDistribution) -> int:
    spec = dist.action_spec()
    if spec.shape.rank != 0 or not spec.dtype.is_integer:
        raise MetaRLInputError(f"games baselines need a scalar discrete action; {dist.family!r} has {spec}")
    return int(spec.maximum) - int(spec.minimum) + 1


def _mask(observation, batch: tf.Tensor, num_actions: int) -> tf.Tensor:
    """``[B, A]`` bool legal actions (all True without an ``obs["action_mask"]``)."""
    _, mask = split_action_mask(observation)
    if mask is None:
        return tf.ones(tf.stack([batch, num_actions]), tf.bool)
    return tf.cast(mask, tf.float32) > 0.5


# ================================================================== legal random
class LegalRandomPolicy(StatefulPolicy):
    def __init__(self, dist: TaskDistribution, seed: int):
        super().__init__(dist, seed, {}, name="random_legal")
        self._n = _num_actions(dist)

    def _action(self, time_step, policy_state, seed):
        b = tf.shape(time_step.step_type)[0]
        mask = _mask(time_step.observation, b, self._n)
        action = random_choice(mask, self._uniform(policy_state, tf.shape(mask), salt=1))
        return policy_step.PolicyStep(action, self._next_state(policy_state, {}), ())


class LegalRandomBaseline(Baseline):
    """Uniformly random legal actions (respects ``obs["action_mask"]``): the floor of the games families."""

    def _make_policy(self, dist: TaskDistribution, tasks: list[Task], seed: int) -> tf_policy.TFPolicy:
        return LegalRandomPolicy(dist, seed)


# ================================================================== Bayes-optimal RPS
def rps_best_response(counts: np.ndarray, alpha: float) -> np.ndarray:
    """``[3]`` expected reward of rock, paper, scissors under the posterior mean of ``Dirichlet(alpha + counts)``
    (numpy reference used by tests; the policy computes the same in TF)."""
    q = (alpha + np.asarray(counts, np.float64)) / (3 * alpha + np.sum(counts))
    return np.array([q[(a - 1) % 3] - q[(a + 1) % 3] for a in range(3)])


class RPSBayesPolicy(StatefulPolicy):
    """State ``counts [B, 3]`` of the opponent's observed moves this trial (reset at trial starts)."""

    def __init__(self, dist: TaskDistribution, alpha: float, seed: int):
        super().__init__(dist, seed, {"counts": tf.TensorSpec((3,), tf.float32)}, name="rps_bayes")
        self._alpha = float(alpha)

    def _action(self, time_step, policy_state, seed):
        obs = time_step.observation
        first = is_first(time_step)
        prev = tf.cast(obs[PREV_ACTION], tf.int32)
        reward = tf.cast(tf.round(obs[PREV_REWARD]), tf.int32)
        opponent = tf.math.floormod(prev - reward, 3)  # win: prev beat (prev-1); loss: (prev+1) beat prev
        seen = tf.one_hot(opponent, 3) * tf.cast(tf.logical_not(first), tf.float32)[:, None]
        counts = self._reset_where_first(time_step, {"counts": policy_state["counts"]})["counts"] + seen
        q = (self._alpha + counts) / tf.reduce_sum(self._alpha + counts, axis=-1, keepdims=True)
        value = tf.roll(q, shift=1, axis=-1) - tf.roll(q, shift=-1, axis=-1)  # value[a] = q[a-1] - q[a+1]
        best = value >= tf.reduce_max(value, axis=-1, keepdims=True) - 1e-9
        action = random_choice(best, self._uniform(policy_state, tf.shape(best), salt=2))
        return policy_step.PolicyStep(action, self._next_state(policy_state, {"counts": counts}), ())


class RPSBayesBaseline(Baseline):
    """Bayes-optimal response to a biased RPS opponent (exact for ``opponents: [biased]``; module docstring)."""

    families = ("games.rps",)

    def _make_policy(self, dist: TaskDistribution, tasks: list[Task], seed: int) -> tf_policy.TFPolicy:
        return RPSBayesPolicy(dist, dist.params["dirichlet_alpha"], seed)


# ================================================================== non-adaptive multi-task policy
def _features(observation) -> tf.Tensor:
    """``[B, D]``: the current task observation only (mask excluded; no previous action / reward)."""
    rest, _ = split_action_mask(observation)
    leaves = tf.nest.flatten(rest[OBS])
    b = tf.shape(leaves[0])[0]
    return tf.concat([tf.reshape(tf.cast(x, tf.float32), tf.stack([b, -1])) for x in leaves], axis=-1)


def _check_hidden(owner: str, hidden) -> tuple[int, ...]:
    if not isinstance(hidden, (list, tuple)) or not all(
            isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h >= 1 for h in hidden):
        raise MetaRLInputError(f"{owner}: config hidden={hidden!r} must be a list of positive layer sizes")
    return tuple(int(h) for h in hidden)


class FeedForwardPolicy(tf_policy.TFPolicy):
    """``pi(a | obs)`` from a Keras MLP of logits, masked; samples (or argmax with ``greedy``)."""

    def __init__(self, dist: TaskDistribution, model: tf.keras.Model, greedy: bool, seed: int):
        super().__init__(dist.time_step_spec(), dist.action_spec(), name="non_adaptive")
        self._model, self._greedy, self._seed_ = model, greedy, int(seed)
        self._n = _num_actions(dist)
        self._calls = tf.Variable(0, dtype=tf.int64, trainable=False)

    def logits(self, observation) -> tf.Tensor:
        x = _features(observation)
        logits = self._model(x)
        return tf.where(_mask(observation, tf.shape(x)[0], self._n), logits, -1e9)

    def _action(self, time_step, policy_state, seed):
        logits = self.logits(time_step.observation)
        if self._greedy:
            action = tf.argmax(logits, axis=-1, output_type=tf.int32)
        else:
            self._calls.assign_add(1)
            action = tf.random.stateless_categorical(logits, 1, seed=tf.stack(
                [tf.constant(self._seed_, tf.int64), self._calls]), dtype=tf.int32)[:, 0]
        return policy_step.PolicyStep(action, policy_state, ())


class NonAdaptiveBaseline(ConfiguredBaseline):
    """A memoryless multi-task policy trained by REINFORCE on the training tasks (module docstring).

    Config: ``hidden`` layer sizes, ``iterations``, ``tasks_per_iteration``, ``learning_rate``,
    ``entropy_coef``, ``greedy`` (act by argmax at evaluation; default False: sample).
    """

    families = GAME_FAMILIES
    needs_fit = True
    defaults = {"hidden": (64, 64), "iterations": 150, "tasks_per_iteration": 64, "learning_rate": 3e-3,
                "entropy_coef": 0.01, "greedy": False}

    def _validate(self) -> None:
        name = type(self).__name__
        self.config["hidden"] = _check_hidden(name, self.config["hidden"])
        self.config["iterations"] = check_int(name, "iterations", self.config["iterations"])
        self.config["tasks_per_iteration"] = check_int(name, "tasks_per_iteration", self.config["tasks_per_iteration"])
        self.config["learning_rate"] = check_number(name, "learning_rate", self.config["learning_rate"], 0.0,
                                                    low_open=True)
        self.config["entropy_coef"] = check_number(name, "entropy_coef", self.config["entropy_coef"], 0.0)
        if not isinstance(self.config["greedy"], bool):
            raise MetaRLInputError(f"{name}: config greedy={self.config['greedy']!r} must be true or false")
        self._model: tf.keras.Model | None = None

    def _fit(self, dist: TaskDistribution, train_tasks: list[Task], seed: int) -> None:
        cfg = self.config
        n = _num_actions(dist)
        layers = [tf.keras.layers.Dense(h, activation="tanh", kernel_initializer=tf.keras.initializers.GlorotUniform(
            seed + i)) for i, h in enumerate(cfg["hidden"])]
        layers.append(tf.keras.layers.Dense(n, kernel_initializer=tf.keras.initializers.Zeros()))
        model = tf.keras.Sequential(layers, name="non_adaptive")
        policy = FeedForwardPolicy(dist, model, greedy=False, seed=seed)
        batch = min(cfg["tasks_per_iteration"], len(train_tasks))
        env = dist.make_env(train_tasks[:batch], seed=seed)
        model(_features(env.reset().observation))
        optimizer = tf.keras.optimizers.Adam(cfg["learning_rate"])
        horizon = dist.horizon

        @tf.function(autograph=False)
        def collect():
            time_step = env.reset()
            observations, actions, rewards = [], [], []
            for _ in range(horizon):
                step = policy.action(time_step)
                observations.append(time_step.observation)
                actions.append(step.action)
                time_step = env.step(step.action)
                rewards.append(time_step.reward)
            return observations, tf.stack(actions, 1), tf.stack(rewards, 1)

        @tf.function(autograph=False)
        def update(observations, actions, rewards):
            returns = tf.reverse(tf.cumsum(tf.reverse(rewards, [1]), axis=1), [1])  # [B, H] return-to-go
            adv = returns - tf.reduce_mean(returns, axis=0, keepdims=True)
            with tf.GradientTape() as tape:
                logits = tf.stack([policy.logits(o) for o in observations], 1)  # [B, H, A]
                logp = tf.nn.log_softmax(logits)
                chosen = tf.gather(logp, actions, batch_dims=2)
                entropy = -tf.reduce_sum(tf.where(logits > -1e8, tf.exp(logp) * logp, 0.0), -1)
                loss = -tf.reduce_mean(chosen * adv) - cfg["entropy_coef"] * tf.reduce_mean(entropy)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return tf.reduce_mean(tf.reduce_sum(rewards, 1))

        order = np.random.default_rng(seed)
        self.train_returns: list[float] = []
        for it in range(cfg["iterations"]):
            if it and len(train_tasks) > batch:
                env.set_tasks([train_tasks[i] for i in order.choice(len(train_tasks), batch, replace=False)])
            self.train_returns.append(float(update(*collect())))
        self._model = model
        self._fitted_family = dist.family

    def _make_policy(self, dist: TaskDistribution, tasks: list[Task], seed: int) -> tf_policy.TFPolicy:
        if self._model is None or self._fitted_family != dist.family:
            raise MetaRLInputError("baseline non_adaptive must be fitted on the training tasks first "
                                   "(give the scenario tasks.train > 0)")
        return FeedForwardPolicy(dist, self._model, greedy=self.config["greedy"], seed=seed)


# ================================================================== per-level specialist
#: Added to the policy seed to get the seed of the specialists' training environment, so they do not train on
#: the evaluation's own random draws (make_policy is not told the evaluation's env seed; scenario ``env_seed``s
#: are small integers, and any below 2**31 cannot collide).
TRAIN_ENV_SEED_OFFSET = 1 << 31


def _row_glorot(keys: tf.Tensor, layer: int, fan_in: int, fan_out: int) -> tf.Tensor:
    """``[B, fan_in, fan_out]`` Glorot-uniform kernels; row ``i`` is a function of ``keys[i]`` (and ``layer``)."""
    limit = float(np.sqrt(6.0 / (fan_in + fan_out)))
    u = rng.row_uniform(keys, layer, fan_in * fan_out)
    return tf.reshape((2.0 * u - 1.0) * limit, [-1, fan_in, fan_out])


def _sample(logits: tf.Tensor, uniform: tf.Tensor) -> tf.Tensor:
    """``[N]`` int32 draws from ``softmax(logits)`` ``[N, A]`` by Gumbel-max on ``uniform`` ``[N, A]`` draws."""
    u = tf.clip_by_value(uniform, 1e-7, 1.0 - 1e-7)
    return tf.argmax(logits - tf.math.log(-tf.math.log(u)), axis=-1, output_type=tf.int32)


def _discounted_returns(rewards: tf.Tensor, discount: float) -> tf.Tensor:
    """``[T, N]`` discounted return-to-go ``G[t] = r[t] + discount * G[t + 1]`` of rewards ``[T, N]``."""
    return tf.scan(lambda g, r: r + discount * g, rewards, initializer=tf.zeros_like(rewards[0]), reverse=True)


class StackedMLP(tf.Module):
    """``B`` independent MLPs (tanh hidden layers, linear logits) as one model with stacked weights.

    Kernels are ``[B, in, out]`` and biases ``[B, out]``. ``__call__(x)`` takes ``x`` ``[N, D]`` with
    ``N = K * B`` rows ordered task-minor (row ``k * B + i`` belongs to network ``i``) and returns ``[N, A]``:
    one batched matmul per layer, and row ``k * B + i`` depends on (and back-propagates into) network ``i``
    only. Hidden kernels are Glorot-uniform drawn from ``keys[i]`` alone (so network ``i`` starts the same in
    any batch); the last layer starts at zero (uniform policy); biases at zero.
    """

    def __init__(self, keys: np.ndarray, in_size: int, hidden: tuple[int, ...], out_size: int):
        super().__init__(name="specialists")
        keys = tf.constant(np.asarray(keys, np.uint64), tf.uint64)
        self.num_nets, self.in_size = int(keys.shape[0]), int(in_size)
        sizes = (in_size, *hidden, out_size)
        self.kernels, self.biases = [], []
        for layer, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            last = layer == len(hidden)
            init = tf.zeros([self.num_nets, n_in, n_out]) if last else _row_glorot(keys, layer, n_in, n_out)
            self.kernels.append(tf.Variable(init, name=f"kernel_{layer}"))
            self.biases.append(tf.Variable(tf.zeros([self.num_nets, n_out]), name=f"bias_{layer}"))

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        n = tf.shape(x)[0]
        h = tf.reshape(x, [-1, self.num_nets, self.in_size])  # [K, B, D]
        for layer, (w, b) in enumerate(zip(self.kernels, self.biases, strict=True)):
            h = tf.einsum("kbi,bio->kbo", h, w) + b[None]
            if layer < len(self.kernels) - 1:
                h = tf.tanh(h)
        return tf.reshape(h, tf.stack([n, -1]))


class SpecialistPolicy(StatefulPolicy):
    """Row ``i`` acts with specialist ``i`` of a :class:`StackedMLP`: argmax of the masked logits (``greedy``)
    or a sample keyed by (row key, step), so a row's actions do not depend on the other rows."""

    def __init__(self, dist: TaskDistribution, net: StackedMLP, keys: np.ndarray, greedy: bool, seed: int):
        super().__init__(dist, seed, {}, name="specialist")
        self._net, self._greedy = net, bool(greedy)
        self._n = _num_actions(dist)
        self._keys = tf.constant(np.asarray(keys, np.uint64), tf.uint64)  # [B] sampling keys

    def logits(self, observation) -> tf.Tensor:
        """``[B, A]`` logits, illegal actions at -1e9."""
        x = _features(observation)
        return tf.where(_mask(observation, tf.shape(x)[0], self._n), self._net(x), -1e9)

    def _action(self, time_step, policy_state, seed):
        logits = self.logits(time_step.observation)
        if self._greedy:
            action = tf.argmax(logits, axis=-1, output_type=tf.int32)
        else:
            action = _sample(logits, rng.row_uniform(self._keys, policy_state["step"], self._n))
        return policy_step.PolicyStep(action, self._next_state(policy_state, {}), ())


class SpecialistBaseline(ConfiguredBaseline):
    """A per-level specialist: for each held-out task, a policy trained on that task alone (a ceiling).

    ``make_policy(dist, tasks, seed)`` trains ``len(tasks)`` specialists at once — one :class:`StackedMLP`,
    row ``i`` = specialist of ``tasks[i]`` — then returns a :class:`SpecialistPolicy` acting with them. So it
    needs no ``fit`` on the training tasks; its cost is paid at evaluation, per chunk of held-out tasks.

    Training: a memoryless feed-forward ``pi_i(a | obs)`` on the current observation features (the same
    inputs as ``non_adaptive``; no previous action/reward, no memory), illegal actions masked. Each iteration
    (one ``tf.function``) starts a new trial in an environment of ``rollouts_per_task`` copies of every task,
    built with env seed ``seed + TRAIN_ENV_SEED_OFFSET`` (not the evaluation's draws, for any evaluation
    ``env_seed`` below 2**31), plays its first inner episode (``horizon`` steps) with sampled actions, and
    takes one Adam step of REINFORCE with entropy bonus: discounted return-to-go within the episode,
    baseline = the mean over the task's copies at the same step, advantages divided by their per-task RMS.
    The loss is a sum of per-task losses and Adam is elementwise, and initialisation and action sampling are
    keyed by ``(seed, task seed)``, so specialist ``i`` depends only on ``tasks[i]`` (and ``seed``): it is
    the same specialist alone or in any batch, up to float rounding of the batched kernels. Copies of a task
    share the environment's random draws within an iteration (the env keys randomness by task), which pairs
    their comparison; every iteration is a fresh trial.

    Config (defaults): ``hidden`` (64,) tanh layer sizes; ``iterations`` 300; ``rollouts_per_task`` 8
    (>= 2: the baseline needs copies to compare); ``learning_rate`` 0.01; ``entropy_coef`` 0.01;
    ``discount`` 0.95 (training only; the evaluation is undiscounted); ``greedy`` true (act by argmax at
    evaluation: the converged specialist; false samples from it). The discount matters for ``greedy``: with
    no step cost, undiscounted returns do not penalise a wasted move, so a specialist may keep e.g. 0.57 on
    bumping into a wall at the start cell — harmless when sampling, a dead loop when acting by argmax
    (measured on 5x5 gridlevels: greedy 1.69 of 2 with discount 1, 2.0 with 0.9).

    Cost: ``iterations * horizon`` steps of an environment of ``rollouts_per_task * len(tasks)`` rows; the
    PettingZoo families step one Python game per row, so they dominate (rps, 64 tasks, 200 iterations:
    ~4.5 min on this shared machine, 85 % of it in the games).

    Memory: it stores one episode of features, ``horizon * rollouts_per_task * len(tasks) * D`` floats, plus
    ``len(tasks)`` networks with Adam slots; pass smaller chunks of held-out tasks for large inputs (pong).
    """

    families = GAME_FAMILIES
    needs_fit = False
    defaults = {"hidden": (64,), "iterations": 300, "rollouts_per_task": 8, "learning_rate": 1e-2,
                "entropy_coef": 0.01, "discount": 0.95, "greedy": True}

    def _validate(self) -> None:
        name = type(self).__name__
        self.config["hidden"] = _check_hidden(name, self.config["hidden"])
        self.config["iterations"] = check_int(name, "iterations", self.config["iterations"])
        self.config["rollouts_per_task"] = check_int(name, "rollouts_per_task", self.config["rollouts_per_task"],
                                                     low=2)
        self.config["learning_rate"] = check_number(name, "learning_rate", self.config["learning_rate"], 0.0,
                                                    low_open=True)
        self.config["entropy_coef"] = check_number(name, "entropy_coef", self.config["entropy_coef"], 0.0)
        self.config["discount"] = check_number(name, "discount", self.config["discount"], 0.0, 1.0)
        if not isinstance(self.config["greedy"], bool):
            raise MetaRLInputError(f"{name}: config greedy={self.config['greedy']!r} must be true or false")
        self.train_returns: list[float] = []

    def train(self, dist: TaskDistribution, tasks: list[Task], seed: int) -> StackedMLP:
        """Train one specialist per task (row ``i`` of the returned network is ``tasks[i]``'s).

        Records ``self.train_returns``: per iteration, the mean over tasks and copies of the episode return.
        """
        cfg = self.config
        n_act, b, k, horizon = _num_actions(dist), len(tasks), cfg["rollouts_per_task"], dist.horizon
        zeros = tensor_spec.zero_spec_nest(dist.time_step_spec().observation, outer_dims=[1])
        net = StackedMLP([rng.task_key("specialist-init", seed, t.seed) for t in tasks],
                         int(_features(zeros).shape[-1]), cfg["hidden"], n_act)
        sample_keys = tf.constant(np.asarray([rng.task_key("specialist-sample", seed, t.seed, c)
                                              for c in range(k) for t in tasks], np.uint64))
        env = dist.make_env([t for _ in range(k) for t in tasks], seed=seed + TRAIN_ENV_SEED_OFFSET)
        optimizer = tf.keras.optimizers.Adam(cfg["learning_rate"])
        n = k * b

        @tf.function(autograph=False)
        def train_step(iteration):
            time_step = env.reset()
            arrays = [tf.TensorArray(dtype, size=horizon) for dtype in (tf.float32, tf.bool, tf.int32, tf.float32)]

            def body(t, time_step, feats, masks, actions, rewards):
                obs = time_step.observation
                x = _features(obs)
                mask = _mask(obs, n, n_act)
                u = rng.row_uniform(sample_keys, iteration * horizon + tf.cast(t, tf.int64), n_act)
                action = _sample(tf.where(mask, net(x), -1e9), u)
                next_step = env.step(action)
                return (t + 1, next_step, feats.write(t, x), masks.write(t, mask), actions.write(t, action),
                        rewards.write(t, next_step.reward))

            out = tf.while_loop(lambda t, *_: t < horizon, body, (tf.constant(0), time_step, *arrays),
                                parallel_iterations=1)
            x, mask, actions, rewards = (a.stack() for a in out[2:])  # [H, N, ...]
            returns = tf.reshape(_discounted_returns(rewards, cfg["discount"]), [horizon, k, b])
            adv = returns - tf.reduce_mean(returns, axis=1, keepdims=True)  # baseline: mean over the copies
            adv = adv / (tf.sqrt(tf.reduce_mean(tf.square(adv), axis=[0, 1], keepdims=True)) + 1e-6)
            adv = tf.reshape(adv, [horizon, n])
            with tf.GradientTape() as tape:
                logits = tf.reshape(net(tf.reshape(x, [horizon * n, -1])), [horizon, n, n_act])
                logp = tf.nn.log_softmax(tf.where(mask, logits, -1e9))
                chosen = tf.gather(logp, actions, batch_dims=2)  # [H, N]
                entropy = -tf.reduce_sum(tf.where(mask, tf.exp(logp) * logp, 0.0), -1)
                per_row = -chosen * adv - cfg["entropy_coef"] * entropy
                loss = tf.reduce_sum(tf.reduce_mean(tf.reshape(per_row, [horizon * k, b]), 0))  # sum of per-task
            variables = net.trainable_variables
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
            return tf.reduce_mean(tf.reduce_sum(rewards, 0))

        self.train_returns = [float(train_step(tf.constant(it, tf.int64))) for it in range(cfg["iterations"])]
        return net

    def _make_policy(self, dist: TaskDistribution, tasks: list[Task], seed: int) -> tf_policy.TFPolicy:
        net = self.train(dist, tasks, seed)
        keys = [rng.task_key("specialist-act", seed, t.seed) for t in tasks]
        return SpecialistPolicy(dist, net, keys, greedy=self.config["greedy"], seed=seed)
