"""``games.cooperative_pong``: PettingZoo's ``cooperative_pong_v6`` with a scripted partner; each level a task.

A task is a *level*: the stock game's constructor parameters drawn from the family's ranges (ball speed,
both paddles' speeds, bounce randomness, the right paddle's cake shape) plus the scripted partner's reaction
lag and noise. The learner controls one paddle (``learner``, default ``"paddle_0"``, the left one); the
other paddle is played by :class:`TrackingPartner`. A trial is ``episodes`` rallies of the same level; a
rally (inner episode) lasts ``horizon = max_cycles`` learner moves, or less when the ball leaves the screen
(the row is then frozen until the next rally: the generic adapter's padding).

Reward (PettingZoo's, shared by both paddles): ``max_reward / max_cycles`` per frame the ball stays in play,
``off_screen_penalty`` when it leaves the screen. The defaults (``max_reward=1``, ``off_screen_penalty=-1``)
scale PettingZoo's (100, -10) so that a full rally is worth 1, like the other families' returns.

Actions ``Discrete(3)``: 0 stay, 1 up, 2 down (PettingZoo's). No action mask (all moves are legal).

``control="all"``: the learner moves **both** paddles (no scripted partner), one network shared by the
paddles with one memory each (RL² picks :class:`~metarl_apps.networks.shared_agents.SharedAgentsActorCritic`;
``num_controlled_agents = 2``). One step = one frame: both paddles move (action ``int32 [2]``: ``[paddle_0,
paddle_1]``), then the ball; a rally lasts ``max_cycles`` steps at most. Observation ``[2, 280/pool, 480/pool,
2]``: row ``j`` is paddle ``j``'s view of the same screen, **mirrored left-right for** ``paddle_1`` so that each
paddle sees itself on the left (the shared network gets no agent index; without the mirror both paddles would
see identical inputs). Action mask ``[2, 3]`` (all ones while the rally lasts). Reward: the shared reward,
counted once (the generic adapter's ``team_reward="mean"``): the number PettingZoo gives each paddle for the
frame, not twice it, so returns are on the same scale as with ``control="one"``. A level is the same game as
with ``control="one"`` (same seed, same speeds, bounce randomness and paddle shape); its parameters then omit
the partner's ``opponent_lag``, ``opponent_noise`` and the ``learner`` seat, and ``learner``,
``max_opponent_lag`` and ``max_opponent_noise`` must not be given. ``params`` records ``control`` only when
it is ``"all"``.

Observation: not the stock ``[280, 480, 3]`` screen but a downsampled copy of it, made by the PettingZoo
wrapper :class:`PooledPong` (also usable on its own: :func:`env`): the screen's grey level (the game is
black and white, so one colour channel is the grey level) averaged over ``pool x pool`` pixel blocks, in
``[0, 1]``, ``[280 / pool, 480 / pool]`` (default ``pool = 20``: ``[14, 24]``), stacked with the same
picture one frame earlier: float32 ``[280 / pool, 480 / pool, 2]`` (channel 0 now, channel 1 at the learner's
previous move, which shows the ball's direction to a memoryless policy). Block averaging keeps the
centroid of the ball and paddles, so sub-block positions remain recoverable. The learner never sees the
level's parameters: speeds, lag and noise must be inferred from play (the meta-RL problem).

Partner: :class:`TrackingPartner` reads the positions from the wrapper's ``"positions"`` entry (the game
state, as a built-in CPU player would; the learner's ``encode`` drops it) and moves its paddle toward the
ball's height as it was ``opponent_lag`` frames earlier (dead zone: half its paddle speed), playing a
uniformly random move with probability ``opponent_noise``. Both are per-level parameters.

Rendering cost: the stock game with ``render_mode=None`` never draws its screen (its observations are
black); with ``"rgb_array"`` it copies the full screen on every agent step (~1.6 ms each here). The wrapper
keeps ``render_mode=None`` and draws the frame itself with the stock ``draw()`` after every step, then
pools it straight from the pygame surface (~0.3 ms): the result equals pooling the stock
``render_mode="rgb_array"`` observation (a test checks it). The stock game then warns "calling render method
without specifying any render mode" on every step; this module ignores that one warning.
"""

from __future__ import annotations

import os
import warnings
from collections import deque
from typing import Any, Mapping

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # no window, before pygame is imported
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402
import pygame  # noqa: E402
from pettingzoo.butterfly import cooperative_pong_v6  # noqa: E402
from pettingzoo.utils.wrappers import BaseWrapper  # noqa: E402

from metarl_apps.adapters.games.pettingzoo_tasks import (  # noqa: E402
    CONTROLS,
    GameSpec,
    PettingZooTasks,
    check_float,
)
from metarl_apps.core.errors import MetaRLInputError  # noqa: E402
from metarl_apps.core.task import positive_int  # noqa: E402

FAMILY = "games.cooperative_pong"
AGENTS = ("paddle_0", "paddle_1")
LEARNERS = (*AGENTS, "random")
SCREEN_HEIGHT, SCREEN_WIDTH = 280, 480  # the stock screen at its default render_ratio=2
POOLS = (5, 8, 10, 20, 40)  # block sizes dividing both 280 and 480
MAX_BALL_SPEED = 10.0  # the narrowest paddle is 10 px wide: a faster ball can pass through it
MAX_PADDLE_SPEED = 50.0
MAX_LAG = 50
NUM_ACTIONS = 3
STAY, UP, DOWN = range(NUM_ACTIONS)
OBSERVATION, POSITIONS = "observation", "positions"
#: ``positions`` entries (screen pixels, y grows downward).
POSITION_NAMES = ("ball_x", "ball_y", "paddle_0_y", "paddle_1_y")

warnings.filterwarnings("ignore", message=r".*calling render method without specifying any render mode",
                        category=UserWarning, module=r"pettingzoo\.butterfly\.cooperative_pong")


# ============================================================ PettingZoo wrapper
class PooledPong(BaseWrapper):
    """``cooperative_pong_v6`` with a downsampled two-frame observation (see the module docstring).

    ``observe(agent)`` returns ``{"observation": float32 [280/pool, 480/pool, 2], "positions": float32 [4]}``
    (``POSITION_NAMES``). Everything else is the stock AEC game.
    """

    def __init__(self, env, pool: int = 20):
        super().__init__(env)
        if pool not in POOLS:
            raise MetaRLInputError(f"{FAMILY}: parameter pool={pool!r} must be one of {', '.join(map(str, POOLS))}")
        self.pool = int(pool)
        self.shape = (SCREEN_HEIGHT // self.pool, SCREEN_WIDTH // self.pool)
        self._frames: deque = deque(maxlen=3)  # pooled pictures after the last 3 agent steps (or the reset)
        self._space = gymnasium.spaces.Dict({
            OBSERVATION: gymnasium.spaces.Box(0.0, 1.0, (*self.shape, 2), np.float32),
            POSITIONS: gymnasium.spaces.Box(-np.inf, np.inf, (len(POSITION_NAMES),), np.float32),
        })

    def observation_space(self, agent):
        return self._space

    def _pooled_frame(self) -> np.ndarray:
        game = self.env.unwrapped.env
        game.draw()
        red = pygame.surfarray.pixels_red(game.screen)  # [W, H] view (locks the surface until deleted)
        w, h = red.shape
        p = self.pool
        total = red.reshape(w // p, p, h // p, p).sum(axis=(1, 3), dtype=np.int64)
        del red
        return (total.T / (255.0 * p * p)).astype(np.float32)

    def reset(self, seed=None, options=None):
        self.env.reset(seed=seed, options=options)
        self._frames.clear()
        self._frames.append(self._pooled_frame())

    def step(self, action):
        self.env.step(action)
        self._frames.append(self._pooled_frame())

    def positions(self) -> np.ndarray:
        """float32 ``[4]``: ball centre (x, y) and the two paddles' centre heights, in screen pixels."""
        game = self.env.unwrapped.env
        ball = game.ball._rect  # the stock Ball keeps its rect private
        return np.array([ball.centerx, ball.centery, game.p0.rects[0].centery, game.p1.rects[0].centery],
                        np.float32)

    def observe(self, agent):
        # Agents alternate, so the frame two agent steps back is this agent's previous turn.
        now, before = self._frames[-1], self._frames[0] if len(self._frames) < 3 else self._frames[-3]
        return {OBSERVATION: np.stack([now, before], axis=-1), POSITIONS: self.positions()}


def env(pool: int = 20, **kwargs: Any) -> PooledPong:
    """The stock AEC ``cooperative_pong_v6.env(**kwargs)`` behind :class:`PooledPong` (``render_mode``
    stays available: ``"rgb_array"`` makes the stock ``render()`` return pictures, at its own cost)."""
    return PooledPong(cooperative_pong_v6.env(**kwargs), pool=pool)


# ============================================================ scripted partner
class TrackingPartner:
    """Moves its paddle toward the ball's height as it was ``lag`` frames ago; random move w.p. ``noise``."""

    def __init__(self, params: Mapping[str, Any]):
        self.lag = int(params["opponent_lag"])
        self.noise = float(params["opponent_noise"])
        self.speed = {"paddle_0": float(params["left_paddle_speed"]),
                      "paddle_1": float(params["right_paddle_speed"])}
        self.seen: deque = deque(maxlen=self.lag + 1)

    def reset(self, rng: np.random.Generator) -> None:
        self.seen.clear()

    def act(self, agent: str, observation: Any, rng: np.random.Generator) -> int:
        pos = observation[POSITIONS]
        self.seen.append(float(pos[1]))
        noisy = rng.random() < self.noise  # drawn every move, so the stream does not depend on the state
        move = int(rng.integers(NUM_ACTIONS))
        if noisy:
            return move
        gap = self.seen[0] - float(pos[2 + AGENTS.index(agent)])  # > 0: the ball is lower than the paddle
        if abs(gap) <= self.speed[agent] / 2:
            return STAY
        return DOWN if gap > 0 else UP


# ============================================================ task family
def _encode(observation: Any) -> np.ndarray:
    return np.asarray(observation, np.float32)


def _encode_agent(agent: str, observation: Any) -> np.ndarray:
    """``control="all"``: the screen as ``agent`` sees it, its own paddle on the left (``paddle_1`` mirrored)."""
    screen = np.asarray(observation, np.float32)
    return screen if agent == AGENTS[0] else np.ascontiguousarray(screen[:, ::-1])


def check_range(name: str, value: Any, low: float, high: float) -> tuple[float, float]:
    """A fixed number or a ``[lo, hi]`` pair with ``low < lo <= hi <= high``, as ``(lo, hi)``."""
    pair = value if isinstance(value, (list, tuple)) else (value, value)
    ok = len(pair) == 2
    if ok:
        try:
            lo, hi = (check_float(FAMILY, name, v, low, high, low_open=True) for v in pair)
        except MetaRLInputError:
            ok = False
    if not ok or lo > hi:
        raise MetaRLInputError(f"{FAMILY}: parameter {name}={value!r} must be a number or a [low, high] pair "
                               f"with {low:g} < low <= high <= {high:g}")
    return lo, hi


class CooperativePongTasks(PettingZooTasks):
    """Cooperative Pong levels as tasks (see the module docstring).

    Args:
      max_cycles: frames per rally (PettingZoo's ``max_cycles``; the inner-episode horizon), default 100
        (from the centre the ball needs ~25-90 frames to reach a paddle).
      episodes: rallies per trial, default 3.
      control: ``"one"`` (default: the learner moves one paddle, a scripted partner the other) or ``"all"``
        (the learner moves both paddles; see the module docstring).
      learner: ``"paddle_0"`` (left, default), ``"paddle_1"`` (right) or ``"random"`` (per level);
        ``control="one"`` only.
      ball_speed: ball speed in pixels per frame, a number or a ``[low, high]`` range drawn per level, within
        ``(0, 10]``; default ``[6, 10]``.
      left_paddle_speed, right_paddle_speed: paddle speeds (pixels per move), number or range within
        ``(0, 50]``; default ``[6, 16]`` each.
      bounce_randomness_prob: probability that a level has PettingZoo's ``bounce_randomness``, default 0.5.
      cake_paddle_prob: probability that a level's right paddle is PettingZoo's tiered cake, default 0.5.
      max_opponent_lag: the partner's reaction lag (frames) is drawn from ``0..max_opponent_lag``, default 3;
        ``control="one"`` only.
      max_opponent_noise: the partner's random-move probability is drawn from ``U[0, max_opponent_noise]``,
        default 0.2; ``control="one"`` only.
      max_reward, off_screen_penalty: PettingZoo's reward parameters, default 1.0 and -1.0.
      pool: downsampling block size (one of ``POOLS``), default 20 (observation ``[14, 24, 2]``).
    """

    family = FAMILY

    def __init__(self, max_cycles: int = 100, episodes: int = 3, learner: str | None = None,
                 ball_speed: Any = (6.0, 10.0), left_paddle_speed: Any = (6.0, 16.0),
                 right_paddle_speed: Any = (6.0, 16.0), bounce_randomness_prob: float = 0.5,
                 cake_paddle_prob: float = 0.5, max_opponent_lag: int | None = None,
                 max_opponent_noise: float | None = None, max_reward: float = 1.0, off_screen_penalty: float = -1.0,
                 pool: int = 20, control: str = "one"):
        max_cycles = positive_int("max_cycles", max_cycles, FAMILY)
        if not isinstance(control, str) or control not in CONTROLS:
            raise MetaRLInputError(f"{FAMILY}: parameter control={control!r} must be one of {', '.join(CONTROLS)}")
        self.control = control
        partner_args = {"learner": learner, "max_opponent_lag": max_opponent_lag,
                        "max_opponent_noise": max_opponent_noise}
        given = [k for k, v in partner_args.items() if v is not None]
        if control == "all" and given:
            raise MetaRLInputError(f"{FAMILY}: parameter {given[0]}={partner_args[given[0]]!r} applies to "
                                   f"control='one' only; with control='all' the learner moves both paddles, drop it")
        learner = "paddle_0" if learner is None else learner
        max_opponent_lag = 3 if max_opponent_lag is None else max_opponent_lag
        max_opponent_noise = 0.2 if max_opponent_noise is None else max_opponent_noise
        if not isinstance(learner, str) or learner not in LEARNERS:
            raise MetaRLInputError(f"{FAMILY}: parameter learner={learner!r} must be one of {', '.join(LEARNERS)}")
        self.learner = learner
        self.ranges = {"ball_speed": check_range("ball_speed", ball_speed, 0.0, MAX_BALL_SPEED),
                       "left_paddle_speed": check_range("left_paddle_speed", left_paddle_speed, 0.0,
                                                        MAX_PADDLE_SPEED),
                       "right_paddle_speed": check_range("right_paddle_speed", right_paddle_speed, 0.0,
                                                         MAX_PADDLE_SPEED)}
        self.bounce_p = check_float(FAMILY, "bounce_randomness_prob", bounce_randomness_prob, 0.0, 1.0)
        self.cake_p = check_float(FAMILY, "cake_paddle_prob", cake_paddle_prob, 0.0, 1.0)
        if isinstance(max_opponent_lag, bool) or not isinstance(max_opponent_lag, (int, np.integer)) or not (
                0 <= max_opponent_lag <= MAX_LAG):
            raise MetaRLInputError(f"{FAMILY}: parameter max_opponent_lag={max_opponent_lag!r} must be an integer "
                                   f"in [0, {MAX_LAG}] (frames)")
        self.max_lag = int(max_opponent_lag)
        self.max_noise = check_float(FAMILY, "max_opponent_noise", max_opponent_noise, 0.0, 1.0)
        self.max_reward = check_float(FAMILY, "max_reward", max_reward, 0.0)
        self.penalty = check_float(FAMILY, "off_screen_penalty", off_screen_penalty, -1e6, 0.0)
        if pool not in POOLS or isinstance(pool, bool):
            raise MetaRLInputError(f"{FAMILY}: parameter pool={pool!r} must be one of {', '.join(map(str, POOLS))}")
        self.pool = int(pool)

        def make_env(params: Mapping[str, Any]) -> PooledPong:
            return env(pool=self.pool, max_cycles=max_cycles, max_reward=self.max_reward,
                       off_screen_penalty=self.penalty, ball_speed=params["ball_speed"],
                       left_paddle_speed=params["left_paddle_speed"], right_paddle_speed=params["right_paddle_speed"],
                       bounce_randomness=params["bounce_randomness"], cake_paddle=params["cake_paddle"])

        spec = GameSpec(
            family=FAMILY,
            make_env=make_env,
            learner=lambda params: params["learner"],
            opponent=TrackingPartner,
            encode=_encode,
            obs_shape=(SCREEN_HEIGHT // self.pool, SCREEN_WIDTH // self.pool, 2),
            num_actions=NUM_ACTIONS,
            horizon=max_cycles,
            agents=AGENTS,
            encode_agent=_encode_agent,
            team_reward="mean",  # PettingZoo gives both paddles the same reward: count it once
        )
        one = control == "one"
        params = {"max_cycles": max_cycles, **({"learner": self.learner} if one else {}),
                  **{k: list(v) for k, v in self.ranges.items()}, "bounce_randomness_prob": self.bounce_p,
                  "cake_paddle_prob": self.cake_p,
                  **({"max_opponent_lag": self.max_lag, "max_opponent_noise": self.max_noise} if one else {}),
                  "max_reward": self.max_reward, "off_screen_penalty": self.penalty, "pool": self.pool}
        super().__init__(spec, episodes, control=control, **params)

    def _opponent_params(self, rng: np.random.Generator) -> dict:
        params = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in self.ranges.items()}
        params["bounce_randomness"] = bool(rng.random() < self.bounce_p)
        params["cake_paddle"] = bool(rng.random() < self.cake_p)
        if self.control == "all":  # no partner, no seat; the level above is drawn as with control="one"
            return params
        params["opponent_lag"] = int(rng.integers(self.max_lag + 1))
        params["opponent_noise"] = float(rng.uniform(0.0, self.max_noise))
        params["learner"] = AGENTS[int(rng.integers(2))] if self.learner == "random" else self.learner
        return params
