"""Run a scenario: meta-train what needs training, evaluate every agent on the same held-out tasks, check
expectations, write ``results.json`` (+ ``report.md`` and TensorBoard summaries) into the output directory.

results.json (long format; later versions add keys, never change these)::

    {"scenario": str, "metric": str, "rows": [{"agent", "budget", "mean", "ci95", "n_tasks", "seeds"}],
     "expectations": [{"check", "passed", "lhs", "rhs"}], "versions": {package: version}, ...}
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from metarl_apps.core.errors import CheckpointError, MetaRLInputError
from metarl_apps.core.io import atomic_write_json, atomic_write_text
from metarl_apps.evaluation.evaluator import Curve, cumulative_returns, regret_curve, trial_returns
from metarl_apps.scenario.training import (
    checkpoint_dir,
    make_agent,
    parallel_pairs,
    select_agents,
    train_in_parallel,
    train_or_restore,
    training_tasks,
)

VERSIONED_PACKAGES = ("metarl_apps", "tensorflow", "tf-agents", "tensorflow-probability", "recsim-ng",
                      "pettingzoo", "numpy")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclasses.dataclass
class RunResult:
    results: dict
    curves: dict[str, Curve]
    out_dir: Path
    #: ``{agent: (learner of training seed 0, TrainResult or None if restored from a model)}``
    learners: dict = dataclasses.field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(e["passed"] for e in self.results["expectations"])


def _tqdm(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="task", disable=not enabled, leave=False)


def adaptation_numbers(policy) -> dict[str, float]:
    """The numeric entries of an adapted policy's ``adaptation`` record (e.g. MQL's effective sample sizes and
    clipped-weight fraction), without the budget; ``{}`` for policies that report none."""
    record = getattr(policy, "adaptation", None) or {}
    return {k: float(v) for k, v in record.items()
            if k != "budget" and isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)}


def adapt_learner(scenario, out_dir, *, agent: str | None, budget: int, num_tasks: int = 100, seed=None,
                  model: str | os.PathLike | None = None, log: Callable[[str], None] = print) -> Curve:
    """Adapt a trained learner to ``num_tasks`` held-out tasks and log its adaptation curve.

    The learner is restored from ``out_dir``'s checkpoints (``scenario`` and ``agent`` given), or from a saved
    model (``model``: a ``models/<name>`` directory; ``scenario`` may then be None: the card says the family).
    """
    from metarl_apps import modelstore
    from metarl_apps.core.agent import check_budget

    if model is not None:
        card = modelstore.load_card(model)
        if scenario is None:
            scenario = scenario_from_card(card, model, num_tasks)
        dist = scenario.make_distribution()
        modelstore.check_family(card, dist, f"scenario {scenario.name!r}")
        name = agent or card["agent"]
    else:
        (spec,) = select_agents(scenario, [agent])
        if spec.kind != "algorithm":
            raise MetaRLInputError(f"--agent {agent}: is a baseline; adapt applies to learners (algorithm agents)")
        dist = scenario.make_distribution()
        name = spec.name
    check_budget(budget, dist.episodes_per_trial, what="--budget")
    check_budget(num_tasks, what="--tasks")
    if model is not None:
        learner, dist, _ = modelstore.restore_learner(model, dist)
    else:
        learner = make_agent(spec)
        learner.restore(str(checkpoint_dir(out_dir, spec.name, 0)), dist)
    tasks = dist.sample(num_tasks, split="test", seed=scenario.tasks.seed if seed is None else seed)
    curve = learner.evaluate(dist, tasks, list(range(1, budget + 1)), env_seed=scenario.env_seed, name=name)
    spec_name = name
    for row in curve.rows():
        log(f"{spec_name} after {row['budget']} {dist.budget_unit}: {row['mean']:.3f} ± {row['ci95']:.3f}")
    return curve


def scenario_from_card(card: dict, model_dir: str | os.PathLike, num_tasks: int | None = None):
    """A one-agent scenario evaluating a saved model on held-out tasks of its family (no scenario file needed).

    Tasks, budgets and env seed are the card's scenario's (``num_tasks`` overrides the number of tasks).
    """
    from metarl_apps.scenario.schema import AgentSpec, FamilySpec, Scenario, TaskSplitSpec

    sc = card.get("scenario") or {}
    tasks = sc.get("tasks") or {}
    episodes = int(card.get("episodes_per_trial") or 1)
    budgets = tuple(sc.get("budgets") or sorted({1, episodes}))
    return Scenario(
        name=f"model {card['name']}", description=f"saved model {model_dir}", tier="smoke",
        path=Path(model_dir) / "card.json", family=FamilySpec(card["family"]["name"], dict(card["family"]["params"])),
        tasks=TaskSplitSpec(train=0, test=int(num_tasks or tasks.get("test") or 1000), seed=int(tasks.get("seed", 0))),
        metric="cumulative_reward", budgets=budgets, seeds=1, env_seed=int(sc.get("env_seed", 0)),
        agents=(AgentSpec(card["agent"], "algorithm", card["algorithm"], dict(card["config"])),), expectations=())


def _model_stand_ins(scenario, models) -> dict[str, str]:
    """``{agent: model_dir}``: which learner agent of ``scenario`` each saved model replaces."""
    from metarl_apps import modelstore

    learners = [a.name for a in scenario.agents if a.kind == "algorithm"]
    if isinstance(models, dict):
        bad = sorted(set(models) - set(learners))
        if bad:
            raise MetaRLInputError(f"models: {bad} are not learners of scenario {scenario.name!r} "
                                   f"(learners: {learners})")
        return {k: str(v) for k, v in models.items()}
    out = {}
    for model in models or ():
        card = modelstore.load_card(model)
        if card["agent"] in learners:
            agent = card["agent"]
        elif len(learners) == 1:
            agent = learners[0]
        else:
            raise MetaRLInputError(f"--model {model}: its agent {card['agent']!r} is not a learner of scenario "
                                   f"{scenario.name!r} (learners: {learners}); name the agent like the model's")
        target = scenario.agent(agent).target
        if target != card["algorithm"]:
            raise CheckpointError(f"--model {model}: is a {card['algorithm']} model, but agent {agent!r} of scenario "
                                  f"{scenario.name!r} is {target}; use a {target} model or another scenario")
        out[agent] = str(model)
    return out


def run_scenario(
    scenario,
    out_dir: str | os.PathLike,
    *,
    seed: int | None = None,
    resume: bool = False,
    progress: bool = True,
    agents: list[str] | None = None,
    models: list[str | os.PathLike] | dict[str, str | os.PathLike] | None = None,
    log: Callable[[str], None] = print,
    jobs: int = 1,
) -> RunResult:
    """Run ``scenario`` (a loaded ``Scenario``) and write its artefacts to ``out_dir``.

    ``jobs > 1``: first meta-train up to that many (learner, training seed) pairs at once in separate processes
    (:func:`train_in_parallel`), then evaluate as usual from their checkpoints; the results are those of the
    sequential run (``wall_time_s.parallel_training`` is that phase; the learners' own wall times then cover
    restoring and evaluating only).

    ``models``: saved model directories (``models/<name>``) that stand in for the scenario's learner of the same
    agent name (or its only learner), or ``{agent: model_dir}``: restored from the model, not trained. A learner
    is rebuilt with its own spec's algorithm and the model's config and weights (so a variant algorithm can be
    evaluated on the same saved weights).
    """
    from metarl_apps import modelstore

    stand_ins = _model_stand_ins(scenario, models)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    task_seed = scenario.tasks.seed if seed is None else seed
    dist = scenario.make_distribution()
    specs = select_agents(scenario, agents)
    budgets = list(scenario.budgets)
    t0 = time.time()
    import tensorflow as tf

    tf.random.set_seed(task_seed)  # once per run: global-seeded ops (e.g. tf-agents' random policy) repeat
    test_tasks = dist.sample(scenario.tasks.test, split="test", seed=task_seed)
    train_tasks = training_tasks(scenario, dist, task_seed)
    log(f"scenario {scenario.name}: {dist!r}, {len(train_tasks)} training / {len(test_tasks)} held-out tasks, "
        f"budgets {budgets} ({dist.budget_unit})")

    parallel, wall = {}, {}
    if pairs := parallel_pairs(scenario, specs, jobs, skip=stand_ins):
        start = time.time()
        parallel = train_in_parallel(scenario, out, pairs, task_seed=task_seed, resume=resume, jobs=jobs, log=log)
        wall["parallel_training"] = round(time.time() - start, 3)

    curves: dict[str, Curve] = {}
    episode_curves: dict[str, Curve] = {}  # the return of inner episode K alone (not cumulative)
    diagnostics: dict[str, list[dict]] = {}  # numeric adaptation diagnostics of each evaluated policy
    learners: dict = {}
    name_width = max([18, *(len(spec.name) for spec in specs)])  # of the agent column in the log lines
    for spec in specs:
        start = time.time()
        restored = spec.name in stand_ins
        agent = (modelstore.restore_learner(stand_ins[spec.name], dist, algorithm=spec.target)[0] if restored
                 else make_agent(spec))
        seeds = 1 if spec.kind == "baseline" or restored else scenario.seeds
        per_seed, per_seed_episodes = [], []
        for s in range(seeds):
            if spec.kind == "baseline":
                if getattr(agent, "needs_fit", False):
                    agent.fit(dist, train_tasks, seed=s)
            elif restored:
                learners[spec.name] = (agent, None)
                log(f"  {spec.name}: restored from model {stand_ins[spec.name]}")
            else:
                if s > 0:
                    agent = make_agent(spec)
                trained = train_or_restore(agent, spec, scenario, dist, train_tasks, out, s, resume, progress, parallel)
                if s == 0:
                    learners[spec.name] = (agent, trained)
            bar = _tqdm(len(test_tasks), f"{spec.name} seed {s}", progress)
            def make_policy(chunk, cseed, agent=agent, seed_index=s, name=spec.name):
                policy = agent.policy_for(dist, chunk, seed=cseed, budget=max(budgets))
                numbers = adaptation_numbers(policy)
                if numbers:
                    diagnostics.setdefault(name, []).append({"seed": seed_index, "tasks": len(chunk), **numbers})
                return policy

            episodes = trial_returns(make_policy, dist, test_tasks, max(budgets), env_seed=scenario.env_seed,
                                     seed=1_000_003 * s, on_chunk=bar.update)
            bar.close()
            per_seed.append(np.cumsum(episodes, axis=1)[:, [b - 1 for b in budgets]])
            per_seed_episodes.append(episodes[:, [b - 1 for b in budgets]])
        curves[spec.name] = Curve(spec.name, tuple(budgets), np.stack(per_seed))
        episode_curves[spec.name] = Curve(spec.name, tuple(budgets), np.stack(per_seed_episodes))
        wall[spec.name] = round(time.time() - start, 3)
        top = curves[spec.name].rows()[-1]
        log(f"  {spec.name:<{name_width}} @{top['budget']}: {top['mean']:.3f} ± {top['ci95']:.3f}   "
            f"({wall[spec.name]:.1f}s)")

    # The oracle curve on the same tasks: the scenario's own oracle agent if it ran one, else (only when the
    # primary metric is regret) one evaluated here.
    oracle_names = [a.name for a in specs if a.kind == "baseline" and a.target == "oracle"]
    oracle_curve = curves[oracle_names[0]] if oracle_names else None
    if scenario.metric == "regret" and oracle_curve is None:
        if not hasattr(dist, "oracle_policy"):
            raise MetaRLInputError(f"{scenario.path}: metric: regret needs a family with an oracle; "
                                   f"{dist.family!r} has none, use cumulative_reward")
        from metarl_apps.baselines.classic import OracleBaseline

        oracle = OracleBaseline()
        oracle_values = cumulative_returns(lambda chunk, cseed: oracle.make_policy(dist, chunk), dist, test_tasks,
                                           budgets, env_seed=scenario.env_seed)
        oracle_curve = Curve("oracle", tuple(budgets), oracle_values[None])

    reported = curves
    regret_rows = []
    if scenario.metric == "regret":
        reported = {k: regret_curve(c, oracle_curve) for k, c in curves.items()}
    elif oracle_curve is not None:  # regret to the oracle, paired per task, as a secondary metric
        regret_rows = [row for name, c in curves.items() if name != oracle_names[0]
                       for row in regret_curve(c, oracle_curve).rows()]
    rows = [row for c in reported.values() for row in c.rows()]
    means = {(r["agent"], r["budget"]): r["mean"] for r in rows}
    checks = check_expectations(scenario.expectations, means, per_task_values(reported))
    results = {
        "scenario": scenario.name,
        "metric": scenario.metric,
        "rows": rows,
        "expectations": checks,
        "versions": package_versions(),
        "regret_rows": regret_rows,
        "budget_unit": dist.budget_unit,
        "family": {"name": dist.family, "params": dist.params},
        "tasks": {"train": len(train_tasks), "test": len(test_tasks), "seed": task_seed,
                  "env_seed": scenario.env_seed},
        "wall_time_s": {**wall, "total": round(time.time() - t0, 3)},
        "scenario_file": str(scenario.path),
        "models": stand_ins,
        "adaptation": diagnostics,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if dist.budget_unit == "episodes":  # per-episode return (and success rate) at each budget K: episode K alone
        results["episode_rows"] = [row for c in episode_curves.values() for row in c.rows()]
        threshold = getattr(dist, "success_threshold", None)
        if threshold is not None:
            results["success_threshold"] = float(threshold)
            results["success_rows"] = [
                row for c in episode_curves.values()
                for row in Curve(c.agent, c.budgets, (c.values > threshold).astype(np.float64)).rows()]
    filmstrips = _write_filmstrips(dist, scenario, test_tasks, learners, out, log)
    if filmstrips:
        results["filmstrips"] = filmstrips
    references = getattr(dist, "reference_values", None)
    if callable(references):
        results["references"] = references()
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "report.md", render_report(results))
    _write_summaries(out / "tensorboard" / "evaluation", rows)
    from metarl_apps.evaluation.plots import plot_adaptation_curves

    plot_adaptation_curves(results, out / "adaptation.png")
    if regret_rows:
        plot_adaptation_curves(results, out / "regret.png", rows_key="regret_rows", ylabel="regret to the oracle")
    for c in checks:
        log("  " + describe_check(c))
    return RunResult(results, reported, out, learners)


def _write_filmstrips(dist, scenario, test_tasks, learners: dict, out: Path, log) -> list[str]:
    """For families that can draw a level: each learner on the first held-out level, one panel per episode.
    Returns the PNG file names (in ``out``)."""
    from metarl_apps.evaluation import filmstrip

    if not filmstrip.supports_filmstrip(dist) or not test_tasks:
        return []
    task, episodes, names = test_tasks[0], max(scenario.budgets), []
    for name, (agent, _) in learners.items():
        policy = agent.policy_for(dist, [task], seed=0, budget=episodes)
        paths, returns = filmstrip.episode_paths(policy, dist, task, episodes, env_seed=scenario.env_seed)
        path = filmstrip.write_filmstrip(out / f"filmstrip_{name}.png", dist.render_level(task), paths, returns,
                                         dist.cell_px, f"{name} on held-out level {task.task_id}")
        log(f"  wrote {path}")
        names.append(path.name)
    return names


def per_task_values(curves: dict[str, Curve]) -> dict[tuple[str, int], np.ndarray]:
    """``{(agent, budget): [N] per-task values}`` (seed-averaged), the tasks in the same order for every agent."""
    out = {}
    for name, curve in curves.items():
        per_task = curve.per_task()
        for j, budget in enumerate(curve.budgets):
            out[(name, int(budget))] = per_task[:, j]
    return out


def check_expectations(expectations, means: dict, per_task: dict | None = None) -> list[dict]:
    """Judge each expectation on the means; add the paired 95% CI of ``lhs - rhs`` over the same tasks.

    The rule: an expectation passes iff its comparison holds for the means (the point estimate).
    ``paired`` (null when the check is not linear in its references) says how sure that is:
    ``{"diff", "ci95", "low", "high", "n_tasks", "confident"}`` with ``confident`` true when the whole
    interval satisfies the comparison. Expectations whose agents did not run (``--agent``) are skipped.
    """
    from metarl_apps.scenario.expectations import paired_difference

    checks = []
    for exp in expectations:
        if not all(ref in means for ref in exp.refs):  # an agent left out with --agent
            continue
        res = exp.evaluate(means)
        paired = paired_difference(exp, per_task) if per_task else None
        checks.append({"check": res.check, "passed": bool(res.passed), "lhs": float(res.lhs), "rhs": float(res.rhs),
                       "paired": paired})
    return checks


def describe_check(c: dict) -> str:
    """One readable line: ``[PASS] a@10 >= b@10   (6.6 vs 5.8; paired diff +0.8 ± 0.05, 95% CI [...])``."""
    line = f"[{'PASS' if c['passed'] else 'FAIL'}] {c['check']}   ({c['lhs']:.4g} vs {c['rhs']:.4g}"
    p = c.get("paired")
    if p:
        line += (f"; lhs - rhs = {p['diff']:+.4g} ± {p['ci95']:.3g}, paired 95% CI [{p['low']:+.4g}, {p['high']:+.4g}]"
                 f" over {p['n_tasks']} tasks{'' if p['confident'] else ', not confirmed at 95%'}")
    return line + ")"


def render_report(results: dict) -> str:
    """A markdown report: one table row per agent, one column per budget (mean ± 95% CI)."""
    budgets = sorted({r["budget"] for r in results["rows"]})
    lines = [f"# {results['scenario']}", "", "![adaptation curves](adaptation.png)", "",
             f"{results['metric']} after K {results.get('budget_unit', 'units')} on "
             f"{results['tasks']['test']} held-out tasks (mean ± 95% CI).", ""] + _table(results["rows"], budgets)
    multi = [r for r in results["rows"] if r.get("seeds", 1) > 1]
    if multi:
        lines += ["", "Across training seeds (mean ± 95% CI over the seeds' means; each seed's mean in brackets):",
                  ""] + _table(multi, budgets, lambda r: f"{r['mean']:.3f} ± {r['ci95_seeds']:.3f} "
                               f"({', '.join(f'{m:.3f}' for m in r['seed_means'])})")
    if results.get("regret_rows"):
        lines += ["", "Regret to the oracle (paired per task; lower is better; plot: [regret.png](regret.png)):",
                  ""] + _table(results["regret_rows"], budgets)
    if results.get("episode_rows"):
        lines += ["", "Return of inner episode K alone (mean ± 95% CI):", ""] + _table(results["episode_rows"], budgets)
    if results.get("success_rows"):
        lines += ["", f"Success rate in inner episode K (return > {results['success_threshold']:g}; mean ± 95% CI):",
                  ""] + _table(results["success_rows"], budgets)
    for name in results.get("filmstrips", []):
        lines += ["", f"![{name}]({name})"]
    for agent, records in (results.get("adaptation") or {}).items():
        lines += ["", f"Adaptation diagnostics of `{agent}` (per training seed and chunk of held-out tasks):", ""]
        lines += [", ".join(f"{k} {v:.4g}" for k, v in r.items()) for r in records]
    if results.get("references"):
        refs = results["references"]
        shown = [f"{k} = {v:.4f}" + (f" ± {refs[k + '_ci']:.4f}" if k + "_ci" in refs else "")
                 for k, v in refs.items() if not (k.endswith("_ci") and k[:-3] in refs)]
        lines += ["", "Reference values (expected over the task prior): " + ", ".join(shown)]
    if results["expectations"]:
        lines += ["", "Expectations pass on the means; `lhs - rhs` is the paired difference over the same held-out "
                  "tasks with its 95% CI (confirmed: the whole interval satisfies the comparison).", "",
                  "| expectation | result | lhs | rhs | lhs - rhs (paired 95% CI) | confirmed |",
                  "|---|---|---|---|---|---|"]
        for e in results["expectations"]:
            p = e.get("paired")
            paired = f"{p['diff']:+.4g} ± {p['ci95']:.3g}" if p else "n/a"
            sure = ("yes" if p["confident"] else "no") if p else "n/a"
            lines.append(f"| `{e['check']}` | {'pass' if e['passed'] else 'FAIL'} | {e['lhs']:.4g} | {e['rhs']:.4g} "
                         f"| {paired} | {sure} |")
    return "\n".join(lines) + "\n"


def _table(rows: list[dict], budgets: list[int], fmt: Callable[[dict], str] | None = None) -> list[str]:
    """Markdown table: a row per agent, a column per budget; cells ``mean ± ci95`` unless ``fmt`` says."""
    fmt = fmt or (lambda r: f"{r['mean']:.3f} ± {r['ci95']:.3f}")
    cell = {(r["agent"], r["budget"]): fmt(r) for r in rows}
    agents = list(dict.fromkeys(r["agent"] for r in rows))
    lines = ["| agent | " + " | ".join(f"K={b}" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    return lines + [f"| {a} | " + " | ".join(cell.get((a, b), "") for b in budgets) + " |" for a in agents]


def _write_summaries(logdir: Path, rows: list[dict]) -> None:
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        for r in rows:
            tf.summary.scalar(f"{r['agent']}/mean", r["mean"], step=r["budget"])
    writer.flush()
    writer.close()
