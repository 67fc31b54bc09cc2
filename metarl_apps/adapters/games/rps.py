"""``games.rps``: PettingZoo's ``rps_v2`` (rock-paper-scissors) against a population of opponent strategies.

Each task is one opponent; a trial is ``episodes`` games of ``rounds`` rounds each against it. The learner is
``player_0``; reward per round +1 win, -1 loss, 0 draw (PettingZoo's). The learner's observation is the
opponent's previous move (one-hot of 4: rock, paper, scissors, none); since ``(own move, reward)`` also
determines the opponent's move, ``prev_action`` and ``prev_reward`` carry the last round of every game too.

Opponent kinds (``opponents`` lists the population; each task draws one kind uniformly, then its parameters
from the task's own opponent seed):

* ``biased`` — i.i.d. moves with probabilities ``p ~ Dirichlet(dirichlet_alpha * 1)``. For a population of
  only ``biased`` opponents the Bayes-optimal response is exact and simple (``baselines/games.py``);
* ``cyclic`` — rock -> paper -> scissors (or the reverse), random start;
* ``wsls`` — win-stay, lose-shift: repeats a winning move, otherwise plays what beats the learner's last move;
* ``copy_last`` — plays the learner's previous move;
* ``beat_last`` — plays what beats the learner's previous move.

Non-biased kinds play a uniformly random move with probability ``epsilon ~ U[0, max_epsilon]`` (per task),
and at the first round of a game.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from pettingzoo.classic import rps_v2

from metarl_apps.adapters.games.pettingzoo_tasks import GameSpec, PettingZooTasks, check_choices, check_float
from metarl_apps.core.task import positive_int

FAMILY = "games.rps"
KINDS = ("biased", "cyclic", "wsls", "copy_last", "beat_last")
NONE = 3  # rps_v2's "no move yet" observation


def beats(move: int) -> int:
    """The move that beats ``move`` (rock 0 < paper 1 < scissors 2 < rock)."""
    return (int(move) + 1) % 3


class RPSOpponent:
    """A scripted ``player_1``; ``observation`` is the learner's previous move (3 = none)."""

    def __init__(self, params: Mapping[str, Any]):
        self.kind = params["kind"]
        self.probs = np.asarray(params.get("probs", (1 / 3, 1 / 3, 1 / 3)), np.float64)
        self.epsilon = float(params.get("epsilon", 0.0))
        self.start = int(params.get("start", 0))
        self.direction = int(params.get("direction", 1))
        self.t = 0
        self.last = -1

    def reset(self, rng: np.random.Generator) -> None:
        self.t = 0
        self.last = -1

    def act(self, agent: str, observation: Any, rng: np.random.Generator) -> int:
        their = int(observation)
        u = rng.random()
        if self.kind == "biased":
            move = int(rng.choice(3, p=self.probs))
        elif self.kind == "cyclic":
            move = (self.start + self.direction * self.t) % 3
            if u < self.epsilon:
                move = int(rng.integers(3))
        elif their == NONE or u < self.epsilon:
            move = int(rng.integers(3))
        elif self.kind == "copy_last":
            move = their
        elif self.kind == "beat_last":
            move = beats(their)
        else:  # wsls
            won = self.last >= 0 and self.last == beats(their)
            move = self.last if won else beats(their)
        self.t += 1
        self.last = move
        return move


def _encode(observation: Any) -> np.ndarray:
    return np.eye(4, dtype=np.float32)[int(observation)]


class RPSTasks(PettingZooTasks):
    """Rock-paper-scissors opponents as tasks (see the module docstring).

    Args:
      rounds: rounds per game (inner episode; PettingZoo ``max_cycles``), default 10.
      episodes: games per trial, default 5.
      opponents: the population's kinds (subset of ``KINDS``), default all.
      dirichlet_alpha: concentration of the biased opponents' move probabilities, default 1.0.
      max_epsilon: upper bound of the per-task random-move probability of non-biased kinds, default 0.1.
    """

    family = FAMILY
    #: Success rate in reports: a game is won when the learner wins more rounds than it loses.
    success_threshold = 0.0

    def __init__(self, rounds: int = 10, episodes: int = 5, opponents: Any = KINDS, dirichlet_alpha: float = 1.0,
                 max_epsilon: float = 0.1):
        rounds = positive_int("rounds", rounds, FAMILY)
        self.kinds = check_choices(FAMILY, "opponents", opponents, KINDS)
        self.alpha = check_float(FAMILY, "dirichlet_alpha", dirichlet_alpha, low=0.0, low_open=True)
        self.max_epsilon = check_float(FAMILY, "max_epsilon", max_epsilon, low=0.0, high=1.0)
        spec = GameSpec(
            family=FAMILY,
            make_env=lambda params: rps_v2.env(num_actions=3, max_cycles=rounds),
            learner=lambda params: "player_0",
            opponent=RPSOpponent,
            encode=_encode,
            obs_shape=(4,),
            num_actions=3,
            horizon=rounds,
        )
        super().__init__(spec, episodes, rounds=rounds, opponents=list(self.kinds), dirichlet_alpha=self.alpha,
                         max_epsilon=self.max_epsilon)

    def _opponent_params(self, rng: np.random.Generator) -> dict:
        kind = self.kinds[int(rng.integers(len(self.kinds)))]
        if kind == "biased":
            return {"kind": kind, "probs": tuple(float(p) for p in rng.dirichlet([self.alpha] * 3))}
        return {"kind": kind, "epsilon": float(rng.uniform(0.0, self.max_epsilon)), "start": int(rng.integers(3)),
                "direction": int(rng.choice([-1, 1]))}
