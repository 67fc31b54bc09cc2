"""Game baselines (``games.*`` families): legal-random, the Bayes-optimal response to biased RPS opponents,
and a non-adaptive multi-task policy (no memory) trained on the training levels / opponents.

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
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tf_agents.policies import tf_policy
from tf_agents.trajectories import policy_step

from metarl_apps.baselines.base import ConfiguredBaseline, StatefulPolicy, check_int, check_number, random_choice
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
        hidden = self.config["hidden"]
        if not isinstance(hidden, (list, tuple)) or not all(
                isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h >= 1 for h in hidden):
            raise MetaRLInputError(f"{name}: config hidden={hidden!r} must be a list of positive layer sizes")
        self.config["hidden"] = tuple(int(h) for h in hidden)
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

