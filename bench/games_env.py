"""Game environments: our batched gridlevels core vs PettingZoo stepping, and the generic adapter's overhead.

Two same-run comparisons (DESIGN.md §4: absolute rates on the shared 2-core machine are noise, the ratios are
the result). Every method is built and warmed up first (construction, level generation and tracing excluded),
then all are timed **interleaved** in ``--repeats`` rounds (rotating order); the best round of each is kept.

(a) ``games.gridlevels`` agent-steps/s, ``--levels`` levels (default 256, config defaults: 7x7, one agent,
    max 50 steps), the **same pre-drawn uniformly random actions** ``[steps, levels]`` for every method:

    * **core** — one :class:`GridLevelsCore` holding all levels, ``core.step(actions[t])`` then
      ``core.reset(rows=core.over)`` (finished levels restart at once, so every counted step is a live agent);
    * **tf env** — the family's trial environment (``GridLevelTasks.make_env``: the core behind one
      ``tf.numpy_function`` per step), ``env.step(actions[t])`` in one compiled ``tf.function`` as
      ``runner.rollout`` runs it (a finished level is frozen until its inner episode's 50 steps are over: it
      still counts as a step, as the trial environment defines steps);
    * **pettingzoo parallel** — one ``GridLevelsParallelEnv`` per level, the Python loop a PettingZoo user
      writes: ``env.step({"agent_0": a})`` per level, ``env.reset(options={"level": level})`` when it ends
      (the pre-generated level: no regeneration);
    * **pettingzoo aec** — the same through ``parallel_to_aec`` (``step(a)``; ``step(None)`` + ``reset`` at
      the end).

    core, parallel and AEC play identical trajectories (checked: final positions equal). Headline:
    ``core rate / best PettingZoo rate`` (target >= 20x); ``tf env / best PettingZoo`` alongside.

(b) Generic-adapter overhead on ``games.connect_four`` (PettingZoo's stock ``connect_four_v3``) per **learner
    move**, ``--games`` tasks x ``--episodes`` games, opponents ``--opponents`` (default ``biased``: the
    cheapest scripted opponent, so the wrapper's share is the largest — the worst case):

    * **raw** — the plain PettingZoo AEC loop per task: ``agent_iter``/``last``, the task's
      ``ConnectFourOpponent`` for the other seat, a uniformly random legal learner move from
      ``obs["action_mask"]``;
    * **adapter numpy** — the adapter's pure-Python side (``PettingZooEnvironment._np_begin`` /
      ``_np_step``: per-row game driving, ``encode``, masks, stacking), same learner move rule. Same seeds as
      raw (the adapter's ``(task, env seed, trial, game)`` streams, one learner stream per row), so the two
      play **identical games** (checked: same moves, same rewards);
    * **adapter tf env** — what a user runs: ``ConnectFourTasks.make_env(tasks)`` stepped in one compiled
      ``tf.function`` (reset + one trial of ``21 x episodes`` steps; masked random actions in-graph), i.e.
      ``tf.numpy_function`` + the trial-environment bookkeeping on top of the numpy side. Games are padded to
      21 learner moves; only real moves are counted (the padding's cost is charged to the adapter).

    Reported: ``time per learner move / raw's - 1`` for both (target <= 30 % for the tf env).

    python -m bench.games_env                 # 256 levels x 50 steps, 64 games x 2; best of 3; ~1-2 min
    python -m bench.games_env --quick         # 16 levels x 10 steps, 4 games x 1; best of 1 (for tests)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.timing import Runner, paired_median  # noqa: E402

SEED = 0
TARGET_SPEEDUP = 20.0  # (a): batched core >= 20x PettingZoo level-by-level
TARGET_OVERHEAD = 0.30  # (b): adapter tf env at most 30 % slower per learner move than raw PettingZoo


def interleave(runners: list[Runner], repeats: int, label: str, unit: str) -> None:
    for r in runners:
        r.warm_up()
    n = len(runners)
    for rep in range(repeats):
        shift = rep % n
        for r in runners[shift:] + runners[:shift]:
            r.timed()
        print(f"  {label} repeat {rep + 1}: " + ", ".join(
            f"{r.name} {r.units[-1] / r.samples[-1]:,.0f} {unit}/s" for r in runners), flush=True)


# ============================================================== (a) gridlevels
def gridlevels_runners(levels_n: int, steps: int) -> tuple[list[Runner], Callable[[], bool]]:
    from pettingzoo.utils.conversions import parallel_to_aec

    from metarl_apps.adapters.games.gridlevels import GridLevelsParallelEnv
    from metarl_apps.adapters.games.gridlevels_core import NUM_ACTIONS, GridLevelsConfig, GridLevelsCore
    from metarl_apps.adapters.games.tasks import GridLevelTasks

    config = GridLevelsConfig()
    dist = GridLevelTasks(max_steps=config.max_steps, episodes=steps // config.max_steps + 2)
    tasks = dist.sample(levels_n, "test", SEED)
    levels = dist.levels(tasks)
    rows = [levels.select([i]) for i in range(levels_n)]
    actions = np.random.default_rng(SEED).integers(0, NUM_ACTIONS, (steps, levels_n))

    core = GridLevelsCore(config, levels)

    def run_core() -> int:
        core.reset()
        for t in range(steps):
            core.step(actions[t, :, None])
            over = core.over
            if over.any():
                core.reset(over)
        return levels_n * steps

    env = dist.make_env(tasks, seed=SEED)
    tf_actions = tf.constant(actions, tf.int32)

    @tf.function(autograph=False)
    def tf_loop():
        time_step = env.reset()

        def body(t, time_step):
            return t + 1, env.step(tf_actions[t])

        _, time_step = tf.while_loop(lambda t, _: t < steps, body, (tf.constant(0), time_step),
                                     parallel_iterations=1)
        return time_step.reward

    def run_tf() -> int:
        tf_loop().numpy()
        return levels_n * steps

    par = [GridLevelsParallelEnv(**_config_kwargs(config)) for _ in range(levels_n)]

    def run_parallel() -> int:
        for e, level in zip(par, rows, strict=True):
            e.reset(options={"level": level})
        for t in range(steps):
            for i, e in enumerate(par):
                e.step({"agent_0": int(actions[t, i])})
                if not e.agents:
                    e.reset(options={"level": rows[i]})
        return levels_n * steps

    aec = [parallel_to_aec(GridLevelsParallelEnv(**_config_kwargs(config))) for _ in range(levels_n)]

    def run_aec() -> int:
        for e, level in zip(aec, rows, strict=True):
            e.reset(options={"level": level})
        for t in range(steps):
            for i, e in enumerate(aec):
                e.step(int(actions[t, i]))
                if e.terminations["agent_0"] or e.truncations["agent_0"]:
                    e.step(None)
                    e.reset(options={"level": rows[i]})
        return levels_n * steps

    def same_trajectories() -> bool:
        pos = core.pos[:, 0]
        return all(np.array_equal(pos[i], par[i].core.pos[0, 0]) and
                   np.array_equal(pos[i], aec[i].unwrapped.core.pos[0, 0]) for i in range(levels_n))

    return ([Runner("core", run_core), Runner("tf env", run_tf), Runner("pettingzoo parallel", run_parallel),
             Runner("pettingzoo aec", run_aec)], same_trajectories)


def _config_kwargs(config) -> dict:
    import dataclasses

    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


# ============================================================== (b) connect four
def connect_four_runners(games: int, episodes: int, opponents: list[str]) -> tuple[list[Runner], Callable]:
    from pettingzoo.classic import connect_four_v3

    from metarl_apps.adapters.games.connect_four import ConnectFourOpponent, ConnectFourTasks
    from metarl_apps.adapters.games.pettingzoo_tasks import PettingZooEnvironment

    dist = ConnectFourTasks(episodes=episodes, opponents=opponents)
    tasks = dist.sample(games, "test", SEED)
    spec = dist.spec
    stats: dict[str, list] = {"raw": [], "adapter numpy": []}

    def learner_move(mask: np.ndarray, rng: np.random.Generator) -> int:
        legal = np.flatnonzero(mask)
        return int(legal[rng.integers(len(legal))])

    # --- raw PettingZoo: one AEC env per task, the adapter's seeds, a user's loop.
    raw_envs = [connect_four_v3.env() for _ in tasks]
    raw_trial = [0]

    def run_raw() -> int:
        moves, total = 0, 0.0
        trial = raw_trial[0]
        raw_trial[0] += 1
        for i, (task, env) in enumerate(zip(tasks, raw_envs, strict=True)):
            key, learner = int(task.seed) % (1 << 63), spec.learner(task.params)
            opponent = ConnectFourOpponent(task.params)
            me = np.random.default_rng([i, 99, trial])
            for game in range(episodes):
                rng = np.random.default_rng([key, SEED, trial, game])
                env.reset(seed=int(rng.integers(0, 2**31 - 1)))
                opponent.reset(rng)
                for agent in env.agent_iter():
                    obs, reward, term, trunc, _ = env.last()
                    if agent == learner:
                        total += reward
                    if term or trunc:
                        env.step(None)
                    elif agent == learner:
                        env.step(learner_move(obs["action_mask"], me))
                        moves += 1
                    else:
                        env.step(opponent.act(agent, obs, rng))
        stats["raw"].append((moves, total))
        return moves

    # --- the adapter's numpy side, same seeds and learner rule -> the same games.
    np_env = PettingZooEnvironment(spec, tasks, episodes, seed=SEED)
    np_trial = [0]

    def run_numpy() -> int:
        moves, total = 0, 0.0
        trial = np_trial[0]
        np_trial[0] += 1
        mes = [np.random.default_rng([i, 99, trial]) for i in range(games)]
        for _ in range(episodes):
            _, mask = np_env._np_begin()
            for _ in range(spec.horizon):
                live = [not row.done for row in np_env.rows]
                action = np.array([learner_move(mask[i], mes[i]) if live[i] else 0 for i in range(games)])
                moves += sum(live)
                reward, _, mask = np_env._np_step(action)
                total += float(reward.sum())
        stats["adapter numpy"].append((moves, total))
        return moves

    # --- what a user runs: the TF environment in one compiled loop, masked random actions in-graph.
    class CountingEnvironment(PettingZooEnvironment):
        moves = 0

        def _np_step(self, action):
            self.moves += sum(not row.done for row in self._rows)
            return super()._np_step(action)

    tf_env = CountingEnvironment(spec, tasks, episodes, seed=SEED)
    steps = spec.horizon * episodes

    @tf.function(autograph=False)
    def tf_loop():
        time_step = tf_env.reset()

        def body(t, time_step):
            mask = time_step.observation["obs"]["action_mask"] > 0.5
            u = tf.random.stateless_uniform(tf.shape(mask), seed=tf.stack([t, 7]))
            return t + 1, tf_env.step(tf.argmax(tf.where(mask, u, -1.0), axis=-1, output_type=tf.int32))

        _, time_step = tf.while_loop(lambda t, _: t < steps, body, (tf.constant(0), time_step),
                                     parallel_iterations=1)
        return time_step.reward

    def run_tf() -> int:
        before = tf_env.moves
        tf_loop().numpy()
        return tf_env.moves - before

    def same_games() -> bool:
        return stats["raw"] == stats["adapter numpy"]

    return ([Runner("raw", run_raw), Runner("adapter numpy", run_numpy), Runner("adapter tf env", run_tf)],
            same_games)


# ============================================================== report
def measure(args) -> dict:
    t0 = time.perf_counter()
    grid, same_traj = gridlevels_runners(args.levels, args.steps)
    print(f"(a) gridlevels: {args.levels} levels x {args.steps} steps per call", flush=True)
    interleave(grid, args.repeats, "(a)", "agent-steps")
    rate = {r.name: r.best_rate for r in grid}
    peer = max(("pettingzoo parallel", "pettingzoo aec"), key=rate.get)
    by_name = {r.name: r for r in grid}
    a = {
        "levels": args.levels,
        "steps": args.steps,
        "agent_steps_per_s": rate,
        "peer": peer,
        "speedup_core_over_pettingzoo": rate["core"] / rate[peer],
        "speedup_tf_env_over_pettingzoo": rate["tf env"] / rate[peer],
        "speedup_core_over_aec": rate["core"] / rate["pettingzoo aec"],
        "speedup_core_over_pettingzoo_paired_median": paired_median(by_name["core"], by_name[peer]),
        "identical_trajectories": bool(same_traj()),
        "seconds_per_call": {r.name: r.samples for r in grid},
        "warmup_s": {r.name: r.warmup_s for r in grid},
    }
    a["meets_target"] = a["speedup_core_over_pettingzoo"] >= TARGET_SPEEDUP

    c4, same_games = connect_four_runners(args.games, args.episodes, args.opponents)
    print(f"(b) connect_four: {args.games} tasks x {args.episodes} games per call, opponents "
          f"{','.join(args.opponents)}", flush=True)
    interleave(c4, args.repeats, "(b)", "learner-moves")
    per_move = {r.name: r.best_seconds_per_unit for r in c4}
    by_name = {r.name: r for r in c4}
    b = {
        "games": args.games,
        "episodes": args.episodes,
        "opponents": args.opponents,
        "us_per_learner_move": {k: 1e6 * v for k, v in per_move.items()},
        "learner_moves_per_call": {r.name: r.units for r in c4},
        "time_ratio_tf_env_over_raw": per_move["adapter tf env"] / per_move["raw"],
        "time_ratio_numpy_over_raw": per_move["adapter numpy"] / per_move["raw"],
        "time_ratio_tf_env_over_raw_paired_median": 1.0 / paired_median(by_name["adapter tf env"], by_name["raw"]),
        "time_ratio_numpy_over_raw_paired_median": 1.0 / paired_median(by_name["adapter numpy"], by_name["raw"]),
        "identical_games_raw_vs_numpy": bool(same_games()),
        "seconds_per_call": {r.name: r.samples for r in c4},
        "warmup_s": {r.name: r.warmup_s for r in c4},
    }
    b["overhead_tf_env"] = b["time_ratio_tf_env_over_raw"] - 1.0
    b["overhead_numpy"] = b["time_ratio_numpy_over_raw"] - 1.0
    b["meets_target"] = b["overhead_tf_env"] <= TARGET_OVERHEAD
    return {"gridlevels": a, "connect_four": b, "wall_s": time.perf_counter() - t0}


def report(result: dict) -> str:
    a, b = result["gridlevels"], result["connect_four"]
    verdict = {True: "meets", False: "MISSES"}
    lines = [f"(a) games.gridlevels, {a['levels']} levels x {a['steps']} steps, same random actions "
             f"(identical trajectories: {a['identical_trajectories']})"]
    for name, rate in a["agent_steps_per_s"].items():
        lines.append(f"    {name:<22} {rate:>12,.0f} agent-steps/s")
    lines.append(f"    batched core / PettingZoo ({a['peer']}): {a['speedup_core_over_pettingzoo']:.1f}x "
                 f"(paired median {a['speedup_core_over_pettingzoo_paired_median']:.1f}x)  "
                 f"[target >= {TARGET_SPEEDUP:g}x: {verdict[a['meets_target']]}]; tf env / PettingZoo: "
                 f"{a['speedup_tf_env_over_pettingzoo']:.1f}x")
    lines.append(f"(b) games.connect_four adapter vs raw PettingZoo, {b['games']} tasks x {b['episodes']} games, "
                 f"opponents {','.join(b['opponents'])} (raw and numpy side play identical games: "
                 f"{b['identical_games_raw_vs_numpy']})")
    for name, us in b["us_per_learner_move"].items():
        lines.append(f"    {name:<22} {us:>10,.1f} us per learner move")
    lines.append(f"    overhead per learner move: tf env {100 * b['overhead_tf_env']:+.0f}% (paired median "
                 f"{100 * (b['time_ratio_tf_env_over_raw_paired_median'] - 1):+.0f}%)  "
                 f"[target <= {100 * TARGET_OVERHEAD:.0f}%: {verdict[b['meets_target']]}]; pure-python side "
                 f"{100 * b['overhead_numpy']:+.0f}% (paired median "
                 f"{100 * (b['time_ratio_numpy_over_raw_paired_median'] - 1):+.0f}%)")
    lines.append("    (best round of each method; paired median = median over rounds of the ratio within a round)")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--levels", type=int, default=None, help="(a) gridlevels levels in the batch (default 256)")
    p.add_argument("--steps", type=int, default=None, help="(a) steps per timed call (default 50)")
    p.add_argument("--games", type=int, default=None, help="(b) connect four tasks (default 64)")
    p.add_argument("--episodes", type=int, default=None, help="(b) games per task per timed call (default 2)")
    p.add_argument("--opponents", default="biased", help="(b) opponent kinds, comma list (default biased)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved timed rounds, best kept (default 3)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    p.add_argument("--json", default="out/bench/games_env.json", help="where to write the results")
    args = p.parse_args(argv)
    defaults = (dict(levels=16, steps=10, games=4, episodes=1, repeats=1) if args.quick
                else dict(levels=256, steps=50, games=64, episodes=2, repeats=3))
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if min(args.levels, args.steps, args.games, args.episodes, args.repeats) < 1:
        p.error("--levels, --steps, --games, --episodes and --repeats must be positive")
    args.opponents = [o.strip() for o in args.opponents.split(",") if o.strip()]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from metarl_apps.core.io import atomic_write_json

    result = measure(args)
    text = report(result)
    print()
    print(text)
    result = {
        "benchmark": "games_env",
        "args": {k: getattr(args, k) for k in ("levels", "steps", "games", "episodes", "opponents", "repeats",
                                                "quick")},
        "targets": {"gridlevels_speedup_min": TARGET_SPEEDUP, "connect_four_overhead_max": TARGET_OVERHEAD},
        **result,
        "report": text,
        "machine": {"python": sys.version.split()[0], "tensorflow": tf.__version__, "platform": platform.platform(),
                    "cpus": os.cpu_count()},
    }
    path = atomic_write_json(args.json, result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
