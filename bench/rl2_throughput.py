"""RL² meta-training throughput, side by side with tf-agents' own recurrent PPO, in one process.

For each environment (``bandits.bernoulli`` k=5 n=10, ``mdp.tabular`` defaults, and
``recsys.interest_evolution`` when its adapter is registered) this measures, on the same batched in-graph trial
environment type and the same network size:

* **ours** — env-steps/s of RL² meta-training: ``B × trial_length × iterations`` over the wall time of
  ``iterations`` calls of the compiled iteration built by ``RL2._make_iteration`` (one ``tf.function``:
  rollout of one trial per task + GAE + PPO epochs), each preceded by ``env.set_tasks`` and followed by the
  metrics fetch, exactly as ``RL2._meta_train``'s loop does. ``_make_iteration`` is used directly because
  ``meta_train`` builds (and traces) a new ``tf.function`` on every call, so the public API cannot exclude
  tracing; ``meta_train``'s own end-to-end rate (tracing included) is reported alongside as a check.
* **tf-agents** — ``PPOClipAgent`` with ``ActorDistributionRnnNetwork`` / ``ValueRnnNetwork`` (same embedding
  and LSTM sizes), a ``TFUniformReplayBuffer`` and a ``DynamicEpisodeDriver`` collecting one trial per task,
  ``driver.run`` and ``agent.train`` wrapped in ``common.function`` as in tf-agents'
  ``agents/ppo/examples/v2/train_eval_clip_agent.py``; same epochs, same B trials per iteration.
* **ceiling** — forward-only rollout rate of our network on the same env: one ``tf.function`` of
  ``net.step`` + sampling + ``env.step`` over a whole trial, nothing stored, no update.

Each measurement is warmed up once (tracing excluded), then the three are run **interleaved** (rotating the
order), ``--repeats`` blocks (default 5) of ``--iterations`` calls (default 3) each, and the best block of each
is kept. Absolute rates on a shared machine are noise; the ratios in the same run are the result (DESIGN.md §4).

    python -m bench.rl2_throughput                 # B=256, 3 envs, writes out/bench/rl2_throughput.json
    python -m bench.rl2_throughput --quick         # tiny sizes, bandits only, < 1 minute
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import time
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.flops import add_bounds, iteration_flops, matmul_peak  # noqa: E402
from bench.timing import Runner  # noqa: E402

ENVS = {
    "bandits": ("bandits.bernoulli", {"arms": 5, "pulls": 10}),
    "mdp": ("mdp.tabular", {}),
    "recsys": ("recsys.interest_evolution", {}),
}
# --quick: the same families with shorter trials (MDP, recsys), so that the script runs in < 1 minute.
QUICK_PARAMS = {
    "bandits": {"arms": 5, "pulls": 10},
    "mdp": {"horizon": 5, "episodes": 2},
    "recsys": {"interactions": 5},
}
OPTIONAL_ENVS = ("recsys",)  # measured only if its adapter is registered and runs; else a printed note
SEED = 0
TARGET_RATIO = 5.0  # issue 4: ours >= 5x tf-agents' recurrent PPO
TARGET_FRACTION = 0.25  # issue 4: training reaches >= 25% of the forward-only rollout rate


# ---------------------------------------------------------------------------------------------- helpers
def _tasks_for(pool, batch: int, it: int):
    order = np.random.default_rng([SEED, it]).choice(len(pool), size=batch, replace=False)
    return [pool[i] for i in order]


def iteration_runner(name: str, step: Callable[[int], float], iterations: int, traces: Callable[[], int]) -> Runner:
    """A :class:`Runner` of ``step(it)`` — one full iteration (Python side included), synced: one iteration to
    warm up, ``iterations`` per timed block; ``it`` counts every call (warm-up included)."""
    calls = itertools.count()

    def block() -> int:
        for _ in range(iterations):
            step(next(calls))
        return iterations

    return Runner(name, block, traces, warm_up_call=lambda: step(next(calls)))


# ------------------------------------------------------------------------------------------------- ours
def make_ours(dist, pool, batch: int, config, iterations: int) -> tuple[Runner, object]:
    """``RL2._make_iteration`` driven like ``RL2._meta_train``'s loop (set_tasks, iteration, metric fetch)."""
    from metarl_apps.algorithms.rl2 import RL2

    tf.keras.utils.set_random_seed(SEED)
    learner = RL2(config)
    learner._build(dist)
    env = dist.make_env(pool[:batch], seed=SEED)
    iteration = learner._make_iteration(env, tf.random.Generator.from_seed(SEED))

    def step(it: int) -> float:
        env.set_tasks(_tasks_for(pool, batch, it))
        metrics = {k: float(v) for k, v in iteration().items()}  # the sync meta_train does every iteration
        return metrics["trial_return"]

    return iteration_runner("ours", step, iterations, iteration.experimental_get_tracing_count), learner


def meta_train_api_rate(dist, pool, batch: int, config, iterations: int, steps_per_iter: int) -> dict:
    """The public API end to end: ``RL2(config).meta_train(iterations=N)`` wall time, tracing included."""
    from metarl_apps.algorithms.rl2 import RL2

    t0 = time.perf_counter()
    result = RL2(config).meta_train(dist, pool, iterations=iterations, seed=SEED)
    wall = time.perf_counter() - t0
    return {"iterations": iterations, "wall_s": wall, "train_result_wall_s": result.wall_time_s,
            "steps_per_s_incl_tracing": steps_per_iter * iterations / wall}


# ------------------------------------------------------------------------------------------- ceiling
def make_ceiling(dist, pool, batch: int, net, iterations: int) -> Runner:
    """Forward-only: our network acting for one trial per task in one compiled loop; nothing stored."""
    env = dist.make_env(pool[:batch], seed=SEED)
    steps = env.horizon * env.episodes_per_trial
    generator = tf.random.Generator.from_seed(SEED + 1)
    action_dtype = env.action_spec().dtype

    @tf.function
    def run():
        time_step = env.reset()
        state = net.initial_state(batch)
        total = tf.zeros([batch])
        for _ in tf.range(steps):
            logits, _, state = net.step(time_step.observation, state)
            flat = tf.reshape(logits, [-1, net.num_values])
            seed = generator.make_seeds(1)[:, 0]
            index = tf.reshape(tf.random.stateless_categorical(flat, 1, seed=seed, dtype=tf.int32),
                               tf.shape(logits)[:-1])
            time_step = env.step(tf.cast(index + net.action_min, action_dtype))
            total += time_step.reward
        return tf.reduce_mean(total)

    def step(it: int) -> float:
        env.set_tasks(_tasks_for(pool, batch, it))
        return float(run())

    return iteration_runner("ceiling", step, iterations, run.experimental_get_tracing_count)


# --------------------------------------------------------------------------------------------- peer
def _preprocessing_layers(observation_spec):
    """One Keras layer per observation leaf: small bounded ints one-hot, everything else flattened to float."""
    from metarl_apps.networks.encoding import encode_leaf, flat_size

    def layer(spec):
        size = flat_size(spec)
        return tf.keras.layers.Lambda(
            lambda x, spec=spec, size=size: tf.reshape(encode_leaf(x, spec, 1), [-1, size]))

    return tf.nest.map_structure(layer, observation_spec)


def _projection_net(action_spec):
    """tf-agents' categorical projection; for multi-dimensional actions (slates) one categorical per element,
    made one event of shape ``[K]`` (the stock network's event shape is ``()``, which tf-agents' PPO rejects for
    an action spec of shape ``[K]``). Our network's action distribution is the same."""
    import tensorflow_probability as tfp
    from tf_agents.distributions import utils as distribution_utils  # noqa: F401 (registers DistributionSpec)
    from tf_agents.networks import categorical_projection_network
    from tf_agents.specs import distribution_spec, tensor_spec

    rank = len(action_spec.shape)
    if not rank:
        return categorical_projection_network.CategoricalProjectionNetwork(action_spec)

    class IndependentCategorical(tfp.distributions.Independent):
        """``Independent(Categorical(logits))`` whose only tensor parameter is ``logits`` (tf-agents' PPO stores
        and rebuilds the collect-time distribution from its tensor parameters)."""

        def __init__(self, logits, validate_args=False, name="IndependentCategorical"):
            parameters = dict(locals())
            super().__init__(tfp.distributions.Categorical(logits=logits, dtype=action_spec.dtype),
                             reinterpreted_batch_ndims=rank, validate_args=validate_args, name=name)
            self._parameters = self._no_dependency(parameters)

    class IndependentCategoricalProjection(categorical_projection_network.CategoricalProjectionNetwork):
        def _output_distribution_spec(self, output_shape, sample_spec, network_name):
            logits = tensor_spec.TensorSpec(shape=output_shape, dtype=tf.float32, name=network_name + "_logits")
            return distribution_spec.DistributionSpec(IndependentCategorical, {"logits": logits},
                                                      sample_spec=sample_spec)

    return IndependentCategoricalProjection(action_spec)


def make_peer(dist, pool, batch: int, config, iterations: int) -> Runner:
    """tf-agents' recurrent PPO, wired as in ``agents/ppo/examples/v2/train_eval_clip_agent.py``."""
    from tf_agents.agents.ppo import ppo_clip_agent
    from tf_agents.drivers import dynamic_episode_driver
    from tf_agents.networks import actor_distribution_rnn_network, value_rnn_network
    from tf_agents.replay_buffers import tf_uniform_replay_buffer
    from tf_agents.utils import common

    tf.keras.utils.set_random_seed(SEED)
    env = dist.make_env(pool[:batch], seed=SEED)
    obs_spec, action_spec = env.observation_spec(), env.action_spec()
    sizes = dict(input_fc_layer_params=tuple(config.embed_sizes), lstm_size=(config.hidden_size,),
                 output_fc_layer_params=None)
    actor_net = actor_distribution_rnn_network.ActorDistributionRnnNetwork(
        obs_spec, action_spec, preprocessing_layers=_preprocessing_layers(obs_spec),
        preprocessing_combiner=tf.keras.layers.Concatenate(axis=-1), discrete_projection_net=_projection_net,
        **sizes)
    value_net = value_rnn_network.ValueRnnNetwork(
        obs_spec, preprocessing_layers=_preprocessing_layers(obs_spec),
        preprocessing_combiner=tf.keras.layers.Concatenate(axis=-1), **sizes)
    agent = ppo_clip_agent.PPOClipAgent(
        env.time_step_spec(), action_spec, tf.keras.optimizers.Adam(config.learning_rate),
        actor_net=actor_net, value_net=value_net,
        importance_ratio_clipping=config.clip_ratio, lambda_value=config.gae_lambda,
        discount_factor=config.discount, entropy_regularization=config.entropy_coef,
        value_pred_loss_coef=config.value_coef, num_epochs=config.epochs, use_gae=True,
        normalize_rewards=False, normalize_observations=False, gradient_clipping=config.max_grad_norm,
        train_step_counter=tf.Variable(0, dtype=tf.int64))
    agent.initialize()
    trial_length = env.horizon * env.episodes_per_trial
    # The driver stops at the trial boundary (LAST -> FIRST), so it stores trial_length + 1 steps per task.
    replay_buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(
        agent.collect_data_spec, batch_size=batch, max_length=trial_length + 1)
    driver = dynamic_episode_driver.DynamicEpisodeDriver(
        env, agent.collect_policy, observers=[replay_buffer.add_batch], num_episodes=batch)

    def train_step():
        return agent.train(experience=replay_buffer.gather_all())

    driver.run = common.function(driver.run, autograph=False)
    agent.train = common.function(agent.train, autograph=False)
    train_step = common.function(train_step)

    def step(it: int) -> float:
        env.set_tasks(_tasks_for(pool, batch, it))
        driver.run()
        loss = train_step().loss
        replay_buffer.clear()
        return float(loss)

    return iteration_runner("tf-agents", step, iterations, lambda: driver.run.experimental_get_tracing_count()
                            + train_step.experimental_get_tracing_count())


# ------------------------------------------------------------------------------------------------ main
def measure_env(key: str, args) -> dict:
    from metarl_apps.algorithms.rl2 import RL2Config
    from metarl_apps.core.registry import make_task_distribution

    family, params = ENVS[key]
    params = dict(QUICK_PARAMS[key] if args.quick else params)
    dist = make_task_distribution(family, **params)
    batch = args.tasks - args.tasks % args.minibatches
    pool = dist.sample(max(4 * batch, 64), "train", SEED)
    config = RL2Config(tasks_per_iteration=batch, epochs=args.epochs, minibatches=args.minibatches,
                       hidden_size=args.hidden, embed_sizes=(args.embed,), cell=args.cell,
                       set_keys=args.set_keys, set_normalize_keyed=args.set_keys > 0,
                       compute_dtype=args.compute_dtype)
    trial_length = dist.horizon * dist.episodes_per_trial
    steps_per_iter = batch * trial_length
    memory = _memory(args)
    print(f"[{key}] {family} {params}: B={batch}, trial length {trial_length}, {args.iterations} iterations x "
          f"{args.repeats} repeats, {args.epochs} epochs, our memory {memory}", flush=True)

    ours, learner = make_ours(dist, pool, batch, config, args.iterations)
    runners = [ours, make_peer(dist, pool, batch, config, args.iterations),
               make_ceiling(dist, pool, batch, learner.net, args.iterations)]
    for r in runners:
        r.warm_up()
        print(f"  warm-up (tracing) {r.name}: {r.warmup_s:.1f}s", flush=True)
    for rep in range(args.repeats):  # interleaved, rotating the order so no method always runs first
        for r in runners[rep % 3:] + runners[:rep % 3]:
            r.timed()
        print(f"  repeat {rep + 1}: " + ", ".join(
            f"{r.name} {steps_per_iter * args.iterations / r.samples[-1]:,.0f}/s" for r in runners), flush=True)

    rate = {r.name: steps_per_iter * args.iterations / min(r.samples) for r in runners}
    flops = iteration_flops(learner, dist, batch, args.epochs, args.minibatches)
    # Paired: each repeat runs the three back to back, so their per-repeat ratios share the machine's load.
    paired_ratio = float(np.median(np.divide(runners[1].samples, ours.samples)))
    paired_fraction = float(np.median(np.divide(runners[2].samples, ours.samples)))
    row = {
        "env": key, "family": family, "params": params, "tasks": batch, "trial_length": trial_length,
        "our_memory": memory,
        "iterations": args.iterations, "repeats": args.repeats, "epochs": args.epochs,
        "minibatches": args.minibatches,
        "ours_steps_per_s": rate["ours"],
        "tf_agents_steps_per_s": rate["tf-agents"],
        "ratio_ours_over_tf_agents": rate["ours"] / rate["tf-agents"],
        "ceiling_steps_per_s": rate["ceiling"],
        "fraction_of_ceiling": rate["ours"] / rate["ceiling"],
        "ratio_paired_median": paired_ratio,
        "fraction_paired_median": paired_fraction,
        "meets_ratio_target": rate["ours"] / rate["tf-agents"] >= TARGET_RATIO,
        "meets_fraction_target": rate["ours"] / rate["ceiling"] >= TARGET_FRACTION,
        "flops_per_iteration": flops,
        "seconds_per_iteration": {name: steps_per_iter / r for name, r in rate.items()},  # best block's
        "seconds_per_block": {r.name: r.samples for r in runners},
        "warmup_s": {r.name: r.warmup_s for r in runners},
        "traces_after_timing": {r.name: r.traces() for r in runners},  # 1 each (ours, ceiling); 2 for tf-agents
    }
    if args.api_check:
        api = meta_train_api_rate(dist, pool, batch, config, args.iterations, steps_per_iter)
        row["ours_meta_train_api"] = api
        print(f"  check: RL2.meta_train(iterations={args.iterations}) end to end, tracing included: "
              f"{api['wall_s']:.1f}s = {api['steps_per_s_incl_tracing']:,.0f}/s", flush=True)
    return row


def _memory(args) -> str:
    """Our memory as the table prints it: ``lstm``, ``gru``, ``set`` or ``set(keys=K)``, with `` bf16`` for
    ``--compute-dtype bfloat16`` (``parse_args`` allows ``--set-keys`` and bfloat16 only with ``--cell set``)."""
    label = f"set(keys={args.set_keys})" if args.set_keys else args.cell
    return label + (" bf16" if args.compute_dtype == "bfloat16" else "")


def _fmt_table(rows: list[dict]) -> str:
    head = ("env", "our memory", "B x T", "ours steps/s", "tf-agents steps/s", "ours/tf-agents (paired)",
            "ceiling steps/s", "ours/ceiling (paired)")
    return _aligned(head, [(r["env"], r["our_memory"], f"{r['tasks']} x {r['trial_length']}",
                            f"{r['ours_steps_per_s']:,.0f}",
                            f"{r['tf_agents_steps_per_s']:,.0f}",
                            f"{r['ratio_ours_over_tf_agents']:.1f}x ({r['ratio_paired_median']:.1f}x)",
                            f"{r['ceiling_steps_per_s']:,.0f}",
                            f"{100 * r['fraction_of_ceiling']:.0f}% ({100 * r['fraction_paired_median']:.0f}%)")
                           for r in rows])


def _fmt_bounds(rows: list[dict]) -> str:
    head = ("env", "our memory", "GFLOP/iteration (update)", "update GFLOP/s", f"needed for {TARGET_RATIO:g}x",
            f"needed for {100 * TARGET_FRACTION:.0f}%", "matmul peak", "at peak: ours/tf-agents",
            "ours/ceiling")
    def line(r):
        flops = r["flops_per_iteration"]
        if not flops["update_counted"]:
            return (r["env"], r["our_memory"], f"{flops['rollout'] / 1e9:.3g} (update: not counted)", "n/a",
                    "n/a", "n/a", f"{r['matmul_peak_gflops']:.0f}", "n/a", "n/a")
        return (r["env"], r["our_memory"], f"{(flops['rollout'] + flops['update']) / 1e9:.3g} "
                f"({flops['update'] / 1e9:.3g})", f"{r['update_gflops_achieved']:.0f}",
                f"{r['update_gflops_needed_for_ratio']:.0f}", f"{r['update_gflops_needed_for_fraction']:.0f}",
                f"{r['matmul_peak_gflops']:.0f}", f"{r['bound_ratio_at_peak']:.1f}x",
                f"{100 * r['bound_fraction_at_peak']:.0f}%")

    return _aligned(head, [line(r) for r in rows])


def _aligned(head: tuple, body: list[tuple]) -> str:
    lines = [head, *body]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
           for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=None, help="tasks (trials) per iteration B (default 256)")
    p.add_argument("--iterations", type=int, default=None, help="timed iterations per block (default 3)")
    p.add_argument("--epochs", type=int, default=None, help="PPO epochs per iteration, both agents (default 4)")
    p.add_argument("--minibatches", type=int, default=None,
                   help="our sequence minibatches per epoch (default 4; tf-agents' PPO has none)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved timed blocks, best kept (default 5)")
    p.add_argument("--envs", default=None,
                   help="comma list of: " + ",".join(ENVS) + " (default: all; bandits only with --quick)")
    p.add_argument("--hidden", type=int, default=128, help="LSTM units (both agents)")
    p.add_argument("--cell", choices=("lstm", "gru", "set"), default="lstm",
                   help="OUR memory (RL2Config.cell; default lstm, the like-for-like comparison); tf-agents' "
                        "peer always uses its LSTM of --hidden units. 'set' is the transition-set memory "
                        "of the MDP scenario (a running sum over time, no sequential loop)")
    p.add_argument("--set-keys", dest="set_keys", type=int, default=0,
                   help="with --cell set: keyed reads with this many buckets, normalised (the MDP scenario: 16)")
    p.add_argument("--compute-dtype", dest="compute_dtype", choices=("float32", "bfloat16"), default="float32",
                   help="with --cell set: OUR network's RL2Config.compute_dtype (bfloat16 dense layers over float32 "
                        "weights); tf-agents' peer stays float32")
    p.add_argument("--embed", type=int, default=64, help="embedding layer units (both agents)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: the whole script runs in < 1 minute")
    p.add_argument("--api-check", dest="api_check", action=argparse.BooleanOptionalAction, default=None,
                   help="also time RL2.meta_train end to end, tracing included (default: on unless --quick)")
    p.add_argument("--json", default="out/bench/rl2_throughput.json", help="where to write the results")
    args = p.parse_args(argv)
    defaults = (dict(tasks=16, iterations=2, epochs=1, minibatches=2, repeats=1, api_check=False,
                     envs="bandits") if args.quick
                else dict(tasks=256, iterations=3, epochs=4, minibatches=4, repeats=5, api_check=True,
                          envs=",".join(ENVS)))
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.quick and args.hidden == 128 and args.embed == 64:
        args.hidden, args.embed = 32, 16
    for k in ("tasks", "iterations", "epochs", "minibatches", "repeats", "hidden", "embed"):
        if getattr(args, k) < 1:
            p.error(f"--{k} must be a positive integer")
    if args.set_keys < 0 or (args.set_keys and args.cell != "set"):
        p.error("--set-keys must be >= 0 and needs --cell set")
    if args.compute_dtype == "bfloat16" and args.cell != "set":
        p.error("--compute-dtype bfloat16 needs --cell set")
    if args.tasks < args.minibatches:
        p.error("--tasks must be at least --minibatches")
    args.envs = [e.strip() for e in args.envs.split(",") if e.strip()]
    unknown = [e for e in args.envs if e not in ENVS]
    if unknown:
        p.error(f"--envs: unknown {unknown}; choose from {','.join(ENVS)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import tf_agents

    from metarl_apps.core.io import atomic_write_json
    from metarl_apps.core.registry import TASK_FAMILIES

    rows, skipped = [], []
    peaks = [matmul_peak()]  # before and after the environments; the higher one bounds the update
    print(f"float32 matmul peak (1024^3, best of 5 blocks): {peaks[0]:.0f} GFLOP/s", flush=True)
    for key in args.envs:
        family = ENVS[key][0]
        if family not in TASK_FAMILIES:
            note = f"{family} is not a registered task family (adapter not available yet); skipped"
            print(f"[{key}] {note}", flush=True)
            skipped.append({"env": key, "family": family, "reason": note})
            continue
        try:
            rows.append(measure_env(key, args))
        except Exception as err:  # noqa: BLE001 - recsys is optional; the core envs must work
            if key not in OPTIONAL_ENVS:
                raise
            note = f"{family} failed ({type(err).__name__}: {str(err).strip().splitlines()[-1][:200]}); skipped"
            print(f"[{key}] {note}", flush=True)
            skipped.append({"env": key, "family": family, "reason": note})

    if rows:
        peaks.append(matmul_peak())
        rows = [add_bounds(row, max(peaks), ratio_target=TARGET_RATIO, fraction_target=TARGET_FRACTION)
                for row in rows]
    print()
    if rows:
        print(_fmt_table(rows))
    for s in skipped:
        print(f"(skipped {s['env']}: {s['reason']})")
    if rows:
        print(f"targets: ours/tf-agents >= {TARGET_RATIO:g}x, ours/ceiling >= {100 * TARGET_FRACTION:.0f}%; "
              f"rates: best of {args.repeats} interleaved blocks of {args.iterations} iterations, warm-up "
              f"excluded; (paired): median over repeats of the ratio within each repeat")
        print()
        print(_fmt_bounds(rows))
        print("arithmetic bound: FLOPs counted by TensorFlow's graph profiler (rollout: net.step per step; update: "
              "epochs x minibatches PPO gradient steps); GFLOP/s columns: the update's, as measured and as each "
              "target needs with the rollout as measured (inf: the rollout alone is too slow), and the float32 "
              "matmul peak measured in this run (the higher of before/after); 'at peak': our ratios if the update "
              "ran at that peak (LSTM/GRU counted with their loop unrolled step by step)")
    report = {
        "benchmark": "rl2_throughput",
        "command": " ".join([os.path.basename(sys.executable), "-m", "bench.rl2_throughput"] + list(
            sys.argv[1:] if argv is None else argv)),
        "method": {
            "ours": "RL2._make_iteration (one tf.function: rollout + GAE + PPO epochs), called as in "
                    "RL2._meta_train's loop (env.set_tasks, iteration, float() of the metrics); warm-up excluded",
            "tf_agents": "PPOClipAgent + ActorDistributionRnnNetwork/ValueRnnNetwork + TFUniformReplayBuffer + "
                         "DynamicEpisodeDriver(num_episodes=B); driver.run/agent.train in common.function",
            "ceiling": "forward-only rollout of our network (net.step + sample + env.step) in one tf.function",
            "timing": f"warm-up call each, then {args.repeats} interleaved blocks of {args.iterations} iterations, "
                      f"best block kept; steps/s = B x trial_length x iterations / block wall time; "
                      "*_paired_median: median over repeats of the per-repeat time ratio (same load)",
        },
        "network": {"embed_sizes": [args.embed], "lstm": args.hidden, "ours_cell": args.cell,
                    "ours_set_keys": args.set_keys, "ours_compute_dtype": args.compute_dtype},
        "targets": {"ratio_ours_over_tf_agents": TARGET_RATIO, "fraction_of_ceiling": TARGET_FRACTION},
        "matmul_peak_gflops": {"before": peaks[0], "after": peaks[1] if len(peaks) > 1 else None},
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__,
                    "tf_agents": tf_agents.__version__},
        "results": rows,
        "skipped": skipped,
    }
    path = atomic_write_json(args.json, report)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
