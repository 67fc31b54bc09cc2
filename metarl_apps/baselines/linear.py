"""Per-user linear bandits on slate environments: LinUCB and linear Thompson sampling, batched over users.

They follow the slate observation contract of :mod:`metarl_apps.baselines.recsys`.

**Per-user linear bandits** (:class:`LinUCBBaseline`, :class:`LinTSBaseline`) keep, per user (batch row),
the statistics of a ridge regression of reward on document features, exactly as tf-agents' per-arm
``LinearBanditAgent`` does for its one model: ``A = sum x x^T`` and ``b = sum r x`` (the ridge ``lambda`` is
added when solving, ``theta = (A + lambda I)^-1 b``). They live in the policy state ``[B, F, F]`` / ``[B, F]``
and are updated in-graph from each observation's ``choice`` and ``reward``:

* the chosen document is an example with target ``reward``;
* with ``negatives="slate"`` (default) every *other* document of the served slate is an example with target
  0, and a no-click makes the whole slate 0-reward examples. The model then learns the expected reward of
  showing a document (click propensity x reward), which is what a slate ranks by; with ``slate_size=1`` it
  is exactly the classic bandit update with the observed reward (0 on no click).
* with ``negatives="chosen"`` only the chosen document is an example and a no-click teaches nothing (poor
  when the reward given a click does not depend on the user, as consumed time in interest evolution).

With ``bias=True`` (default) the model's features are ``[1, doc_features]`` (tf-agents' ``add_bias``; the
intercept helps on RecSim's features). Defaults (``alpha`` = ``scale`` = 0.3, ``ridge`` = 1) suit rewards of
order 1 per interaction; an exploration bonus much larger than the reward scale keeps LinUCB near random for
the first tens of interactions.

Statistics reset at trial starts (``step_type == FIRST``, whose reward/choice carry no information). The
features of the served slate are kept in the state (``"slate_features"``), so the update uses the features
the documents had when served, whether or not the corpus changes between steps.

The same math as tf-agents' ``LinearUCBAgent`` / ``LinearThompsonSamplingAgent`` with
``accepts_per_arm_features=True`` and ``add_bias=bias`` (a test checks it step by step): UCB scores
``x.theta + alpha sqrt(x^T (A + lambda I)^-1 x)``; TS draws ``theta~ ~ N(theta, scale^2 (A + lambda I)^-1)`` per
user and scores ``x.theta~`` (tf-agents draws each arm's score independently from the same marginal
``N(x.theta, scale^2 x^T (A + lambda I)^-1 x)``; a joint draw ranks a slate coherently). We solve by Cholesky,
tf-agents by float32 conjugate gradient (which drifts by ~1e-3 after a few tens of updates). tf-agents' own
``LinearBanditPolicy`` cannot be reused directly: it reads one model from variables (no batch dimension), while
here every batch row is a user with its own model in the policy state.
"""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import policy_step

from metarl_apps.baselines.base import StatefulPolicy, check_choice, check_number
from metarl_apps.baselines.recsys import SlateBaseline, slate_dims, top_slate
from metarl_apps.core.agent import is_first
from metarl_apps.core.env import CHOICE, DOC_FEATURES, OBS
from metarl_apps.core.task import TaskDistribution


# ================================================================== linear bandit math
def ridge_solve(cov: tf.Tensor, data: tf.Tensor, ridge: float) -> tuple[tf.Tensor, tf.Tensor]:
    """``(theta [B, F], L [B, F, F])``: ``theta = (A + ridge I)^-1 b`` and the Cholesky factor of ``A + ridge I``.

    ``cov`` = A ``[B, F, F]`` (sum of ``x x^T``), ``data`` = b ``[B, F]`` (sum of ``r x``).
    """
    f = cov.shape[-1]
    chol = tf.linalg.cholesky(cov + ridge * tf.eye(f, dtype=cov.dtype))
    theta = tf.linalg.cholesky_solve(chol, data[..., None])[..., 0]
    return theta, chol


def linear_mean_and_variance(cov, data, features, ridge: float):
    """Per-document ``(mean, var)`` ``[B, N]``: ``x.theta`` and ``x^T (A + ridge I)^-1 x`` for
    ``features`` ``[B, N, F]`` (tf-agents' ``_predict_mean_reward_and_variance`` for per-arm features)."""
    theta, chol = ridge_solve(cov, data, ridge)
    mean = tf.einsum("bnf,bf->bn", features, theta)
    z = tf.linalg.triangular_solve(chol, tf.linalg.matrix_transpose(features), lower=True)  # L^-1 x  [B, F, N]
    return mean, tf.reduce_sum(tf.square(z), axis=-2)


def linucb_scores(cov, data, features, alpha: float, ridge: float) -> tf.Tensor:
    """LinUCB scores ``[B, N]``: ``x.theta + alpha sqrt(x^T (A + ridge I)^-1 x)``."""
    mean, var = linear_mean_and_variance(cov, data, features, ridge)
    return mean + alpha * tf.sqrt(tf.maximum(var, 0.0))


def lints_scores(cov, data, features, scale: float, ridge: float, normal: tf.Tensor) -> tf.Tensor:
    """Linear TS scores ``[B, N]`` = ``x.theta~`` with ``theta~ = theta + scale L^-T normal`` (``normal``
    ``[B, F]`` standard normal), i.e. ``theta~ ~ N(theta, scale^2 (A + ridge I)^-1)``."""
    theta, chol = ridge_solve(cov, data, ridge)
    delta = tf.linalg.triangular_solve(chol, normal[..., None], lower=True, adjoint=True)[..., 0]
    return tf.einsum("bnf,bf->bn", features, theta + scale * delta)


def slate_update(cov, data, slate_features, choice, reward, learn, negatives: str):
    """Add one interaction per row to ``A`` ``[B, F, F]`` and ``b`` ``[B, F]``.

    ``slate_features`` ``[B, S, F]`` of the served slate; ``choice`` ``[B]`` chosen position (``S`` = no click);
    ``reward`` ``[B]``; ``learn`` ``[B]`` bool (False rows are unchanged). See the module docstring for
    ``negatives``.
    """
    s = slate_features.shape[1]
    chosen = tf.cast(tf.equal(tf.range(s)[None, :], tf.cast(choice, tf.int32)[:, None]), cov.dtype)  # [B, S]
    weight = tf.ones_like(chosen) if negatives == "slate" else chosen
    weight *= tf.cast(learn, cov.dtype)[:, None]
    target = chosen * tf.cast(reward, cov.dtype)[:, None]
    cov = cov + tf.einsum("bs,bsf,bsg->bfg", weight, slate_features, slate_features)
    data = data + tf.einsum("bs,bsf->bf", weight * target, slate_features)
    return cov, data


# ================================================================== policy
class LinearSlatePolicy(StatefulPolicy):
    """Per-user LinUCB (``strategy="ucb"``, ``exploration`` = alpha) or linear Thompson sampling
    (``strategy="ts"``, ``exploration`` = posterior scale), batched over users.

    State: ``"A"`` ``[B, F, F]``, ``"b"`` ``[B, F]``, ``"slate_features"`` ``[B, S, F]`` (features of the slate
    just served) and ``"step"``. Statistics reset where the step is FIRST.
    """

    def __init__(self, dist: TaskDistribution, seed: int, strategy: str, exploration: float, ridge: float,
                 negatives: str, bias: bool, name: str):
        dims = slate_dims(dist)
        self.bias = bool(bias)
        self.num_features = f = dims.num_features + int(self.bias)
        s = dims.slate_size
        stats = {"A": tensor_spec.TensorSpec((f, f), tf.float32, name="A"),
                 "b": tensor_spec.TensorSpec((f,), tf.float32, name="b"),
                 "slate_features": tensor_spec.TensorSpec((s, f), tf.float32, name="slate_features")}
        super().__init__(dist, seed, stats, name)
        self.dims = dims
        self.strategy, self.exploration, self.ridge, self.negatives = strategy, exploration, ridge, negatives

    def learn(self, time_step, policy_state) -> dict:
        """The statistics after learning from ``time_step`` (the response to the slate in the state)."""
        obs = time_step.observation[OBS]
        learn = tf.logical_not(is_first(time_step))
        cov, data = slate_update(policy_state["A"], policy_state["b"], policy_state["slate_features"],
                                 obs[CHOICE], time_step.reward, learn, self.negatives)
        stats = {"A": cov, "b": data, "slate_features": policy_state["slate_features"]}
        return self._reset_where_first(time_step, stats)

    def model_features(self, doc_features) -> tf.Tensor:
        """``[B, N, F']``: the documents' features as the linear model sees them (a leading 1 if ``bias``)."""
        x = tf.cast(doc_features, tf.float32)
        if self.bias:
            x = tf.concat([tf.ones_like(x[..., :1]), x], axis=-1)
        return x

    def scores(self, stats, features, policy_state) -> tf.Tensor:
        """``[B, N]`` scores of the documents ``features`` ``[B, N, F']`` (:meth:`model_features`)."""
        if self.strategy == "ucb":
            return linucb_scores(stats["A"], stats["b"], features, self.exploration, self.ridge)
        shape = tf.stack([tf.shape(features)[0], self.num_features])
        normal = tf.random.stateless_normal(shape, seed=self._seed(policy_state, 0))
        return lints_scores(stats["A"], stats["b"], features, self.exploration, self.ridge, normal)

    def _action(self, time_step, policy_state, seed):
        del seed  # keyed by the state's step (see StatefulPolicy)
        stats = self.learn(time_step, policy_state)
        features = self.model_features(time_step.observation[OBS][DOC_FEATURES])
        slate = top_slate(self.scores(stats, features, policy_state), self.dims.slate_size,
                          self.action_spec.dtype)
        stats["slate_features"] = tf.gather(features, slate, batch_dims=1)
        return policy_step.PolicyStep(slate, self._next_state(policy_state, stats), ())


# ================================================================== baselines
class _LinearBanditBaseline(SlateBaseline):
    strategy: ClassVar[str] = "ucb"
    exploration_key: ClassVar[str] = "alpha"

    def _validate(self):
        name = type(self).__name__
        key = self.exploration_key
        self.config[key] = check_number(name, key, self.config[key], 0.0)
        self.config["ridge"] = check_number(name, "ridge", self.config["ridge"], 0.0, low_open=True)
        self.config["negatives"] = check_choice(name, "negatives", self.config["negatives"], ("slate", "chosen"))
        self.config["bias"] = check_choice(name, "bias", self.config["bias"], (True, False))

    def _make_policy(self, dist, tasks, seed):
        c = self.config
        return LinearSlatePolicy(dist, seed, self.strategy, c[self.exploration_key], c["ridge"], c["negatives"],
                                 c["bias"], name="linucb" if self.strategy == "ucb" else "lin_ts")


class LinUCBBaseline(_LinearBanditBaseline):
    """Per-user LinUCB on document features (tf-agents ``LinearUCBAgent`` math, batched over users).

    Config: ``alpha`` (>= 0, width of the confidence bonus = tf-agents ``alpha``), ``ridge`` (> 0, lambda =
    tf-agents ``tikhonov_weight``), ``negatives`` (``"slate"`` | ``"chosen"``, see the module docstring).
    """

    defaults = {"alpha": 0.3, "ridge": 1.0, "negatives": "slate", "bias": True}


class LinTSBaseline(_LinearBanditBaseline):
    """Per-user linear Thompson sampling (tf-agents ``LinearThompsonSamplingAgent`` math, batched over users).

    Config: ``scale`` (>= 0, posterior standard-deviation scale = tf-agents ``alpha``; sqrt of the reward noise
    variance in the Bayesian reading), ``ridge`` (> 0, lambda), ``negatives`` (as LinUCB).
    """

    strategy = "ts"
    exploration_key = "scale"
    defaults = {"scale": 0.3, "ridge": 1.0, "negatives": "slate", "bias": True}


__all__ = [
    "LinTSBaseline", "LinUCBBaseline", "LinearSlatePolicy", "linear_mean_and_variance", "lints_scores",
    "linucb_scores", "ridge_solve", "slate_update",
]
