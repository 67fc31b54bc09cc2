"""Values of the Beta-Bernoulli bandit, in NumPy: the exact Bayes-optimal value and policy by dynamic
programming over belief states (:func:`solve_bayes_bandit`, :func:`bayes_optimal_value`), the finite-horizon
Gittins index (:func:`gittins_index_table`), and the expected total of an index policy over the prior by Monte
Carlo (:func:`index_policy_estimate`, the near-Bayes-optimal reference where the DP is too large).

The TF policies acting on them are in :mod:`metarl_apps.baselines.bandits`.
"""

from __future__ import annotations

import functools
import time

import numpy as np

from metarl_apps.baselines.base import check_number
from metarl_apps.core.errors import MetaRLInputError

#: The largest number of decision states :func:`bayes_optimal_value` (and the ``bayes_optimal`` baseline) accept.
MAX_BAYES_STATES = 300_000


def _check_bayes_args(arms, pulls, alpha, beta) -> tuple[int, int, float, float]:
    for name, value, low in (("arms", arms, 1), ("pulls", pulls, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise MetaRLInputError(f"bayes_optimal_value: {name}={value!r} must be an integer >= {low}")
    alpha = check_number("bayes_optimal_value", "alpha", alpha, 0.0, low_open=True)
    beta = check_number("bayes_optimal_value", "beta", beta, 0.0, low_open=True)
    return int(arms), int(pulls), alpha, beta


def count_bayes_states(arms: int, pulls: int) -> int:
    """Number of decision belief states (arm-exchangeable) of a k-armed, n-pull Bernoulli bandit.

    A state is a multiset of ``arms`` per-arm ``(successes, failures)`` pairs with total pulls ``< pulls``;
    counted exactly from the generating function ``prod_w (1 - y x^w)^-(w+1)`` (``w + 1`` pair types of
    weight ``w``; ``y`` counts tried arms, at most ``arms``).
    """
    arms, pulls, _, _ = _check_bayes_args(arms, pulls, 1.0, 1.0)
    if pulls == 0:
        return 0
    top = pulls - 1  # largest total weight of a decision state
    m_max = min(arms, top)
    count = np.zeros((top + 1, m_max + 1), dtype=object)  # exact integers
    count[0, 0] = 1
    for w in range(1, top + 1):
        for _ in range(w + 1):  # each pair type (s, f) with s + f = w
            new = count.copy()
            for j in range(1, min(top // w, m_max) + 1):
                new[j * w:, j:] += count[: top + 1 - j * w, : m_max + 1 - j]
            count = new
    return int(count.sum())


class BayesSolution:
    """The Bayes-optimal solution of a k-armed, n-pull Beta-Bernoulli bandit (arm-exchangeable DP).

    Attributes:
      value: expected total reward of the optimal policy from the prior.
      states: ``[N, k, 2]`` int: every decision state (sorted per-arm ``(successes, failures)``).
      optimal: ``[N, k]`` bool: whether pulling each arm of each state is optimal (all ties marked).
      seconds: wall time of the solve.
    """

    def __init__(self, arms: int, pulls: int, alpha: float, beta: float):
        start = time.perf_counter()
        self.arms, self.pulls, self.alpha, self.beta = arms, pulls, alpha, beta
        base = pulls + 1  # compact code of a pair: s * base + f
        # Forward: the reachable states of each layer t (= pulls so far), as sorted tuples of pair codes.
        layers: list[list[tuple]] = [[(0,) * arms]]
        for _ in range(pulls - 1):
            nxt = set()
            for state in layers[-1]:
                for i, c in enumerate(state):
                    if i and state[i - 1] == c:
                        continue
                    rest = state[:i] + state[i + 1:]
                    nxt.add(tuple(sorted(rest + (c + base,))))
                    nxt.add(tuple(sorted(rest + (c + 1,))))
            layers.append(sorted(nxt))
        # Backward: values and the optimal pair codes.
        tol = 1e-9 * max(1, pulls)
        v_next: dict[tuple, float] = {}
        states, optimal = [], []  # optimal: per state, a tuple of bools (one per arm)
        for t in range(pulls - 1, -1, -1):
            v_here = {}
            for state in layers[t]:
                q = {}
                for i, c in enumerate(state):
                    if c in q:
                        continue
                    s, f = divmod(c, base)
                    p = (s + alpha) / (s + f + alpha + beta)
                    rest = state[:i] + state[i + 1:]
                    if t + 1 < pulls:
                        win = v_next[tuple(sorted(rest + (c + base,)))]
                        lose = v_next[tuple(sorted(rest + (c + 1,)))]
                    else:
                        win = lose = 0.0
                    q[c] = p * (1.0 + win) + (1.0 - p) * lose
                best = max(q.values())
                v_here[state] = best
                states.append(state)
                optimal.append(tuple(q[c] >= best - tol for c in state))
            v_next = v_here
        self.value = v_next[(0,) * arms] if pulls else 0.0
        codes = np.asarray(states, dtype=np.int64).reshape(len(states), arms)
        self.states = np.stack([codes // base, codes % base], axis=-1)
        self.optimal = np.asarray(optimal, dtype=bool).reshape(len(states), arms)
        self.seconds = time.perf_counter() - start

    def optimal_pairs(self, i: int) -> set[tuple[int, int]]:
        """The ``(successes, failures)`` pairs optimal to pull in decision state ``i``."""
        return {(int(s), int(f)) for (s, f), ok in zip(self.states[i], self.optimal[i], strict=True) if ok}


def _too_large(arms: int, pulls: int, count: int) -> MetaRLInputError:
    return MetaRLInputError(
        f"Bayes-optimal bandit: arms={arms}, pulls={pulls} has {count:,} belief states, more than the "
        f"{MAX_BAYES_STATES:,} supported (arms=2: pulls<=60; 3: <=30; 5: <=20; any arms: <=18); "
        f"lower pulls or use the thompson / ucb1 baselines"
    )


@functools.lru_cache(maxsize=8)
def solve_bayes_bandit(arms: int, pulls: int, alpha: float = 1.0, beta: float = 1.0) -> BayesSolution:
    """Solve (memoised) the Bayes-adaptive bandit; raises ``MetaRLInputError`` when the state space is too big."""
    arms, pulls, alpha, beta = _check_bayes_args(arms, pulls, alpha, beta)
    count = count_bayes_states(arms, pulls)
    if count > MAX_BAYES_STATES:
        raise _too_large(arms, pulls, count)
    return BayesSolution(arms, pulls, alpha, beta)


def bayes_optimal_value(arms: int, pulls: int, alpha: float = 1.0, beta: float = 1.0) -> float:
    """Expected total reward of the Bayes-optimal policy: ``arms`` Bernoulli arms with independent
    ``Beta(alpha, beta)`` priors on their means (``Beta(1, 1)`` = U[0, 1]), ``pulls`` pulls.

    Exact dynamic programming over belief states; arms are exchangeable, so a state is the sorted multiset of
    per-arm ``(successes, failures)``. E.g. ``bayes_optimal_value(2, 2) == 13/12``.
    """
    arms, pulls, alpha, beta = _check_bayes_args(arms, pulls, alpha, beta)
    return solve_bayes_bandit(arms, pulls, alpha, beta).value


#: The largest trial length :func:`gittins_index_table` accepts (its table is ``(pulls + 1)^3`` floats).
MAX_GITTINS_PULLS = 200


@functools.lru_cache(maxsize=8)
def gittins_index_table(pulls: int, alpha: float = 1.0, beta: float = 1.0, grid: int = 1001,
                        discount: float = 1.0) -> np.ndarray:
    """Finite-horizon Gittins indices of a Beta-Bernoulli arm: ``table[r, s, f]`` (float64 ``[n+1, n+1, n+1]``).

    The index of an arm with ``s`` successes and ``f`` failures when ``r`` pulls remain is the reward ``lam``
    per pull of a known arm at which a player with ``r`` pulls left is indifferent between retiring to the
    known arm now (``r * lam``) and pulling this arm with the option to retire later (the finite-horizon
    "calibration" of Gittins 1979; Kaufmann 2016 shows this index policy is near Bayes-optimal on finite
    horizons). With one pull left it is the posterior mean.

    ``discount`` < 1 computes the index for the discounted objective ``sum_k discount^k r_k`` over the pulls
    left (retiring then earns ``lam (1 + discount + ... + discount^(r-1))``): the index policy a learner
    trained with that discount should approach; 0 gives the posterior mean (the myopic policy).

    Computed by one backward DP over horizons for a grid of ``lam`` values at once (``V_r = max(r lam,
    p (1 + V_{r-1}(s+1, f)) + (1 - p) V_{r-1}(s, f+1))``); the advantage of pulling decreases in ``lam``, and
    the index is its zero, linearly interpolated between the two grid points around it (the 1001-point grid
    and a 4001-point one differ by at most 1e-5 at 10 pulls).
    """
    if isinstance(pulls, bool) or not isinstance(pulls, (int, np.integer)) or not 1 <= pulls <= MAX_GITTINS_PULLS:
        raise MetaRLInputError(f"gittins: pulls={pulls!r} must be an integer in [1, {MAX_GITTINS_PULLS}]; "
                               f"use the thompson or ucb1 baseline for longer trials")
    alpha = check_number("gittins", "alpha", alpha, 0.0, low_open=True)
    beta = check_number("gittins", "beta", beta, 0.0, low_open=True)
    g = check_number("gittins", "discount", discount, 0.0, 1.0)
    n = int(pulls)
    s, f = np.meshgrid(np.arange(n + 1.0), np.arange(n + 1.0), indexing="ij")
    p = (s + alpha) / (s + f + alpha + beta)
    shape = (n + 1, n + 1, n + 1)
    lo_lam, lo_gap = np.zeros(shape), np.full(shape, np.inf)  # largest grid lam where pulling is better
    hi_lam, hi_gap = np.ones(shape), np.zeros(shape)  # smallest grid lam where retiring is optimal
    lams = np.linspace(0.0, 1.0, grid)
    for chunk in np.array_split(lams, max(1, grid // 100)):
        lam, at = chunk[:, None, None], np.arange(len(chunk))[:, None, None]
        v = np.zeros((len(chunk), n + 2, n + 2))  # V_0 = 0
        for r in range(1, n + 1):
            m = n - r + 1  # reachable with r pulls left: s + f <= n - r (a square of side m holds them)
            pm = p[:m, :m]
            pull = pm * (1.0 + g * v[:, 1:m + 1, :m]) + (1.0 - pm) * g * v[:, :m, 1:m + 1]
            retire = lam * (r if g == 1.0 else (1.0 - g ** r) / (1.0 - g))
            gap = pull - retire  # slope <= -1 in lam (retiring weighs lam one pull more than pulling can)
            better = gap > 0
            last = np.where(better, at, -1).max(axis=0)
            first = np.where(better, len(chunk), at).min(axis=0)
            i = np.maximum(last, 0)
            upd = (last >= 0) & (chunk[i] >= lo_lam[r, :m, :m])
            lo_lam[r, :m, :m] = np.where(upd, chunk[i], lo_lam[r, :m, :m])
            lo_gap[r, :m, :m] = np.where(upd, np.take_along_axis(gap, i[None], 0)[0], lo_gap[r, :m, :m])
            i = np.minimum(first, len(chunk) - 1)
            upd = (first < len(chunk)) & (chunk[i] <= hi_lam[r, :m, :m])
            hi_lam[r, :m, :m] = np.where(upd, chunk[i], hi_lam[r, :m, :m])
            hi_gap[r, :m, :m] = np.where(upd, np.take_along_axis(gap, i[None], 0)[0], hi_gap[r, :m, :m])
            v[:, :m, :m] = np.maximum(pull, retire)
    # the zero of the gap between the bracketing grid points (lo: gap > 0, hi: gap <= 0)
    finite = np.isfinite(lo_gap)
    span = np.where(finite, lo_gap - hi_gap, 1.0)
    table = np.where(finite, lo_lam + np.where(finite, lo_gap, 0.0) / span * (hi_lam - lo_lam), hi_lam)
    r, s3, f3 = np.meshgrid(np.arange(n + 1), np.arange(n + 1), np.arange(n + 1), indexing="ij")
    unreachable = (r == 0) | (s3 + f3 > n - r)  # never looked up; the posterior mean keeps the table tidy
    table[unreachable] = np.broadcast_to(p, shape)[unreachable]
    return table


def index_policy_estimate(arms: int, pulls: int, table: np.ndarray, draws: int, seed: int = 0,
                          alpha: float = 1.0, beta: float = 1.0, chunk: int = 250_000) -> tuple[float, float]:
    """Expected total reward of an index policy over the prior, by Monte Carlo: ``(mean, 95 % half-width)``.

    The policy pulls an arm of largest ``table[r, s, f]`` (``r`` pulls left, ``s``/``f`` the arm's successes and
    failures; ties uniformly at random), as :class:`~metarl_apps.baselines.bandits.GittinsPolicy` does.
    ``draws`` bandits are drawn from the ``Beta(alpha, beta)`` prior by a NumPy stream of their own (``seed``;
    never a scenario's test bandits), in chunks of ``chunk`` bandits. Where the exact DP is refused (e.g. k=5,
    n=100) this is the near-Bayes-optimal reference: the finite-horizon Gittins policy's exact value is within
    0.05 % of Bayes-optimal at every size the DP solves (README, "Baselines").
    """
    arms, pulls, alpha, beta = _check_bayes_args(arms, pulls, alpha, beta)
    if not isinstance(draws, (int, np.integer)) or draws < 2:
        raise MetaRLInputError(f"index_policy_estimate: draws={draws!r} must be an integer >= 2")
    table = np.asarray(table, dtype=np.float64)
    if table.ndim != 3 or min(table.shape) < pulls + 1:
        raise MetaRLInputError(f"index_policy_estimate: table of shape {table.shape} cannot index "
                               f"[pulls left, successes, failures] up to {pulls}; it needs at least "
                               f"[{pulls + 1}, {pulls + 1}, {pulls + 1}] (gittins_index_table({pulls}))")
    stream = np.random.default_rng(seed)
    total, total_sq = 0.0, 0.0
    for size in np.diff(np.append(np.arange(0, draws, chunk), draws)):
        means = stream.beta(alpha, beta, size=(size, arms))
        s = np.zeros((size, arms), np.int64)
        f = np.zeros((size, arms), np.int64)
        reward = np.zeros(size)
        rows = np.arange(size)
        for t in range(pulls):
            index = table[pulls - t, s, f]
            tied = index == index.max(axis=1, keepdims=True)
            arm = np.where(tied, stream.random((size, arms)), -1.0).argmax(axis=1)  # uniform among ties
            win = stream.random(size) < means[rows, arm]
            reward += win
            s[rows, arm] += win
            f[rows, arm] += ~win
        total += reward.sum()
        total_sq += np.square(reward).sum()
    mean = total / draws
    var = max(total_sq / draws - mean * mean, 0.0) * draws / (draws - 1)
    return float(mean), float(1.96 * np.sqrt(var / draws))
