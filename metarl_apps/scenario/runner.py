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

from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.io import atomic_write_json, atomic_write_text
from metarl_apps.core.registry import ALGORITHMS, BASELINES
from metarl_apps.evaluation.evaluator import Curve, cumulative_returns, regret_curve

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

    @property
    def passed(self) -> bool:
        return all(e["passed"] for e in self.results["expectations"])


def _tqdm(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="task", disable=not enabled, leave=False)


def make_agent(spec):
    """Instantiate a scenario agent (a baseline or a meta-learner) from its spec."""
    if spec.kind == "baseline":
        return BASELINES.get(spec.target)(**dict(spec.config))
    return ALGORITHMS.get(spec.target)(dict(spec.config))


def _checkpoint_dir(out: Path, agent: str, seed: int) -> Path:
    return out / "checkpoints" / agent / f"seed_{seed}"


def _train_one(agent, spec, scenario, dist, train_tasks, out: Path, seed: int, resume: bool, progress: bool):
    if not train_tasks:
        raise MetaRLInputError(f"{scenario.path}: tasks.train: learner {spec.name!r} needs training tasks; "
                               f"set tasks.train > 0")
    iterations = int(dict(spec.train).get("iterations", 1))
    return agent.meta_train(dist, train_tasks, iterations=iterations, seed=seed,
                            checkpoint_dir=str(_checkpoint_dir(out, spec.name, seed)), resume=resume,
                            summary_dir=str(out / "tensorboard" / spec.name / f"seed_{seed}"), progress=progress)


def _select(scenario, agents: list[str] | None, kind: str | None = None):
    known = [a.name for a in scenario.agents]
    missing = sorted(set(agents or []) - set(known))
    if missing:
        raise MetaRLInputError(f"--agent {', '.join(missing)}: not in scenario {scenario.name!r} (agents: {known})")
    return [a for a in scenario.agents if (agents is None or a.name in agents) and (kind is None or a.kind == kind)]


def train_learners(scenario, out_dir, *, seed=None, resume=False, progress=True, agents=None,
                   log: Callable[[str], None] = print) -> dict:
    """Meta-train the scenario's learners (every training seed); checkpoints under ``out_dir/checkpoints``."""
    out = Path(out_dir)
    dist = scenario.make_distribution()
    task_seed = scenario.tasks.seed if seed is None else seed
    train_tasks = dist.sample(scenario.tasks.train, split="train", seed=task_seed) if scenario.tasks.train else []
    reports = {}
    for spec in _select(scenario, agents, kind="algorithm"):
        for s in range(scenario.seeds):
            result = _train_one(make_agent(spec), spec, scenario, dist, train_tasks, out, s, resume, progress)
            reports[(spec.name, s)] = result
            log(f"trained {spec.name} seed {s}: {result.iterations} iterations in {result.wall_time_s:.1f}s "
                f"-> {_checkpoint_dir(out, spec.name, s)}")
    return reports


def adapt_learner(scenario, out_dir, *, agent: str, budget: int, num_tasks: int = 100, seed=None,
                  log: Callable[[str], None] = print) -> Curve:
    """Restore a trained learner from ``out_dir`` and adapt it to ``num_tasks`` held-out tasks."""
    from metarl_apps.core.agent import check_budget

    out = Path(out_dir)
    (spec,) = _select(scenario, [agent])
    if spec.kind != "algorithm":
        raise MetaRLInputError(f"--agent {agent}: is a baseline; adapt applies to learners (algorithm agents)")
    dist = scenario.make_distribution()
    check_budget(budget, dist.episodes_per_trial, what="--budget")
    check_budget(num_tasks, what="--tasks")
    learner = make_agent(spec)
    learner.restore(str(_checkpoint_dir(out, spec.name, 0)), dist)
    tasks = dist.sample(num_tasks, split="test", seed=scenario.tasks.seed if seed is None else seed)
    curve = learner.evaluate(dist, tasks, list(range(1, budget + 1)), env_seed=scenario.env_seed, name=spec.name)
    for row in curve.rows():
        log(f"{spec.name} after {row['budget']} {dist.budget_unit}: {row['mean']:.3f} ± {row['ci95']:.3f}")
    return curve


def run_scenario(
    scenario,
    out_dir: str | os.PathLike,
    *,
    seed: int | None = None,
    resume: bool = False,
    progress: bool = True,
    agents: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> RunResult:
    """Run ``scenario`` (a loaded ``Scenario``) and write its artefacts to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    task_seed = scenario.tasks.seed if seed is None else seed
    dist = scenario.make_distribution()
    specs = _select(scenario, agents)
    budgets = list(scenario.budgets)
    t0 = time.time()
    import tensorflow as tf

    tf.random.set_seed(task_seed)  # once per run: global-seeded ops (e.g. tf-agents' random policy) repeat
    test_tasks = dist.sample(scenario.tasks.test, split="test", seed=task_seed)
    train_tasks = dist.sample(scenario.tasks.train, split="train", seed=task_seed) if scenario.tasks.train else []
    log(f"scenario {scenario.name}: {dist!r}, {len(train_tasks)} training / {len(test_tasks)} held-out tasks, "
        f"budgets {budgets} ({dist.budget_unit})")

    curves: dict[str, Curve] = {}
    wall: dict[str, float] = {}
    for spec in specs:
        start = time.time()
        agent = make_agent(spec)
        seeds = 1 if spec.kind == "baseline" else scenario.seeds
        per_seed = []
        for s in range(seeds):
            if spec.kind == "baseline":
                if getattr(agent, "needs_fit", False):
                    agent.fit(dist, train_tasks, seed=s)
            else:
                if s > 0:
                    agent = make_agent(spec)
                _train_one(agent, spec, scenario, dist, train_tasks, out, s, resume, progress)
            bar = _tqdm(len(test_tasks), f"{spec.name} seed {s}", progress)
            values = cumulative_returns(
                lambda chunk, cseed, agent=agent: agent.policy_for(dist, chunk, seed=cseed, budget=max(budgets)),
                dist, test_tasks, budgets, env_seed=scenario.env_seed, seed=1_000_003 * s, on_chunk=bar.update)
            bar.close()
            per_seed.append(values)
        curves[spec.name] = Curve(spec.name, tuple(budgets), np.stack(per_seed))
        wall[spec.name] = round(time.time() - start, 3)
        top = curves[spec.name].rows()[-1]
        log(f"  {spec.name:<18} @{top['budget']}: {top['mean']:.3f} ± {top['ci95']:.3f}   ({wall[spec.name]:.1f}s)")

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
    checks = []
    for exp in scenario.expectations:
        if not all(ref in means for ref in exp.refs):  # an agent left out with --agent
            continue
        res = exp.evaluate(means)
        checks.append({"check": res.check, "passed": bool(res.passed), "lhs": float(res.lhs), "rhs": float(res.rhs)})
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
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
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
        log(f"  [{'PASS' if c['passed'] else 'FAIL'}] {c['check']}   ({c['lhs']:.4g} vs {c['rhs']:.4g})")
    return RunResult(results, reported, out)


def render_report(results: dict) -> str:
    """A markdown report: one table row per agent, one column per budget (mean ± 95% CI)."""
    budgets = sorted({r["budget"] for r in results["rows"]})
    agents = list(dict.fromkeys(r["agent"] for r in results["rows"]))
    cell = {(r["agent"], r["budget"]): f"{r['mean']:.3f} ± {r['ci95']:.3f}" for r in results["rows"]}
    lines = [f"# {results['scenario']}", "", "![adaptation curves](adaptation.png)", "",
             f"{results['metric']} after K {results.get('budget_unit', 'units')} on "
             f"{results['tasks']['test']} held-out tasks (mean ± 95% CI).", "",
             "| agent | " + " | ".join(f"K={b}" for b in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    for a in agents:
        lines.append(f"| {a} | " + " | ".join(cell.get((a, b), "") for b in budgets) + " |")
    if results.get("regret_rows"):
        rcell = {(r["agent"], r["budget"]): f"{r['mean']:.3f} ± {r['ci95']:.3f}" for r in results["regret_rows"]}
        ragents = list(dict.fromkeys(r["agent"] for r in results["regret_rows"]))
        lines += ["", "Regret to the oracle (paired per task; lower is better):", "",
                  "| agent | " + " | ".join(f"K={b}" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
        for a in ragents:
            lines.append(f"| {a} | " + " | ".join(rcell.get((a, b), "") for b in budgets) + " |")
    if results.get("references"):
        lines += ["", "Reference values: " + ", ".join(f"{k} = {v:.4f}" for k, v in results["references"].items())]
    if results["expectations"]:
        lines += ["", "| expectation | result | lhs | rhs |", "|---|---|---|---|"]
        for e in results["expectations"]:
            lines.append(f"| `{e['check']}` | {'pass' if e['passed'] else 'FAIL'} | {e['lhs']:.4g} | {e['rhs']:.4g} |")
    return "\n".join(lines) + "\n"


def _write_summaries(logdir: Path, rows: list[dict]) -> None:
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        for r in rows:
            tf.summary.scalar(f"{r['agent']}/mean", r["mean"], step=r["budget"])
    writer.flush()
    writer.close()
