"""``games.connect_four``: PettingZoo's ``connect_four_v3`` against a population of scripted opponents.

Each task is one opponent (and the learner's seat); a trial is ``episodes`` games against it. Reward: +1 win,
-1 loss, 0 draw, at the end of the game (PettingZoo's); an illegal move loses (PettingZoo's rule) — the
observation's ``action_mask`` (full columns = 0) is exposed and respected by RL² and the games baselines.
The learner's observation is PettingZoo's ``[6, 7, 2]`` board planes (own pieces, opponent's pieces).
An inner episode is padded to ``horizon = 21`` learner moves (the most a player can make).

Opponent kinds (``opponents``; each task draws one kind uniformly, then its parameters from its own seed):

* ``biased`` — samples a legal column with per-task preferences ``w ~ Dirichlet(dirichlet_alpha * 1)``;
* ``minimax`` — depth-limited negamax (``depth`` 1 or 2 plies: win now; with 2 also never leave an immediate
  win to the learner), ties broken by the task's column preference order, and a uniformly random legal move
  with per-task probability ``epsilon ~ U[0, max_epsilon]``.

Seat: ``learner_seat`` ``"first"``, ``"second"`` or ``"random"`` (per task, default).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from pettingzoo.classic import connect_four_v3

from metarl_apps.adapters.games.pettingzoo_tasks import GameSpec, PettingZooTasks, check_choices, check_float
from metarl_apps.core.errors import MetaRLInputError

FAMILY = "games.connect_four"
KINDS = ("biased", "minimax")
SEATS = ("first", "second", "random")
ROWS, COLS = 6, 7
_LINES = ((0, 1), (1, 0), (1, 1), (1, -1))


def drop_row(board: np.ndarray, col: int) -> int:
    """Row where a piece dropped in ``col`` lands (row 0 is the top), -1 if the column is full."""
    empty = np.flatnonzero(board[:, col] == 0)
    return int(empty[-1]) if empty.size else -1


def wins(board: np.ndarray, row: int, col: int, player: int) -> bool:
    """Whether ``player``'s piece at ``(row, col)`` completes four in a line."""
    for dr, dc in _LINES:
        n = 1
        for sign in (1, -1):
            r, c = row + sign * dr, col + sign * dc
            while 0 <= r < ROWS and 0 <= c < COLS and board[r, c] == player:
                n += 1
                r, c = r + sign * dr, c + sign * dc
        if n >= 4:
            return True
    return False


def negamax(board: np.ndarray, player: int, depth: int) -> np.ndarray:
    """Value ``[COLS]`` for ``player`` (1 or 2) of each column (-inf = full): +1 win, -1 loss, 0 unknown/draw."""
    values = np.full(COLS, -np.inf)
    for col in range(COLS):
        row = drop_row(board, col)
        if row < 0:
            continue
        board[row, col] = player
        if wins(board, row, col, player):
            values[col] = 1.0
        elif depth > 1:
            reply = negamax(board, 3 - player, depth - 1)
            values[col] = -float(reply.max()) if np.isfinite(reply).any() else 0.0
        else:
            values[col] = 0.0
        board[row, col] = 0
    return values


class ConnectFourOpponent:
    """A scripted player reading its own PettingZoo observation (planes: own, other)."""

    def __init__(self, params: Mapping[str, Any]):
        self.kind = params["kind"]
        self.prefs = np.asarray(params["prefs"], np.float64)
        self.depth = int(params.get("depth", 1))
        self.epsilon = float(params.get("epsilon", 0.0))

    def reset(self, rng: np.random.Generator) -> None:
        pass

    def act(self, agent: str, observation: Any, rng: np.random.Generator) -> int:
        mask = np.asarray(observation["action_mask"], bool)
        legal = np.flatnonzero(mask)
        if self.kind == "biased":
            p = self.prefs[legal] / self.prefs[legal].sum()
            return int(rng.choice(legal, p=p))
        if rng.random() < self.epsilon:
            return int(rng.choice(legal))
        planes = np.asarray(observation["observation"])
        board = planes[:, :, 0].astype(np.int8) + 2 * planes[:, :, 1].astype(np.int8)
        values = negamax(board, 1, self.depth)
        best = np.flatnonzero(values == values.max())
        return int(best[np.argmax(self.prefs[best])])


def _encode(observation: Any) -> np.ndarray:
    return np.asarray(observation, np.float32)


class ConnectFourTasks(PettingZooTasks):
    """Connect Four opponents as tasks (see the module docstring).

    Args:
      episodes: games per trial, default 5.
      opponents: the population's kinds (subset of ``KINDS``), default both.
      depths: minimax depths to draw from (each 1 or 2), default ``[1, 2]``.
      dirichlet_alpha: concentration of the column preferences, default 1.0.
      max_epsilon: upper bound of the minimax opponents' random-move probability, default 0.2.
      learner_seat: ``"first"``, ``"second"`` or ``"random"`` (default).
    """

    family = FAMILY
    #: Success rate in reports: a game is won when its return is positive (+1 win, 0 draw, -1 loss).
    success_threshold = 0.0

    def __init__(self, episodes: int = 5, opponents: Any = KINDS, depths: Any = (1, 2), dirichlet_alpha: float = 1.0,
                 max_epsilon: float = 0.2, learner_seat: str = "random"):
        self.kinds = check_choices(FAMILY, "opponents", opponents, KINDS)
        depths = tuple(depths) if isinstance(depths, (list, tuple)) else (depths,)
        if not depths or any(isinstance(d, bool) or d not in (1, 2) for d in depths):
            raise MetaRLInputError(f"{FAMILY}: parameter depths={list(depths)!r} must be a non-empty list of 1 "
                                   "and/or 2")
        self.depths = tuple(int(d) for d in depths)
        self.alpha = check_float(FAMILY, "dirichlet_alpha", dirichlet_alpha, low=0.0, low_open=True)
        self.max_epsilon = check_float(FAMILY, "max_epsilon", max_epsilon, low=0.0, high=1.0)
        if learner_seat not in SEATS:
            raise MetaRLInputError(f"{FAMILY}: parameter learner_seat={learner_seat!r} must be one of "
                                   f"{', '.join(SEATS)}")
        self.seat = learner_seat
        spec = GameSpec(
            family=FAMILY,
            make_env=lambda params: connect_four_v3.env(),
            learner=lambda params: "player_0" if params["learner_first"] else "player_1",
            opponent=ConnectFourOpponent,
            encode=_encode,
            obs_shape=(ROWS, COLS, 2),
            num_actions=COLS,
            horizon=ROWS * COLS // 2,
        )
        super().__init__(spec, episodes, opponents=list(self.kinds), depths=list(self.depths),
                         dirichlet_alpha=self.alpha, max_epsilon=self.max_epsilon, learner_seat=learner_seat)

    def _opponent_params(self, rng: np.random.Generator) -> dict:
        kind = self.kinds[int(rng.integers(len(self.kinds)))]
        first = bool(rng.integers(2)) if self.seat == "random" else self.seat == "first"
        params = {"kind": kind, "learner_first": first,
                  "prefs": tuple(float(p) for p in rng.dirichlet([self.alpha] * COLS))}
        if kind == "minimax":
            params["depth"] = int(self.depths[int(rng.integers(len(self.depths)))])
            params["epsilon"] = float(rng.uniform(0.0, self.max_epsilon))
        return params
