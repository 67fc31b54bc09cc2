"""The ``metarl`` command.

Exit codes: 0 success; 1 an expectation of the scenario failed; 2 bad input (one line on stderr, no
traceback). ``metarl --help`` and ``metarl COMMAND --help`` document each command.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

EXIT_OK, EXIT_EXPECTATION_FAILED, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_SCENARIO = "scenarios/bandits/rl2_k5_n10.yaml"


def _quiet_imports() -> None:
    """Import TF / tf-agents once with their import-time banners silenced."""
    with contextlib.redirect_stderr(io.StringIO()):
        import tensorflow  # noqa: F401
        import tf_agents  # noqa: F401


def _scenario_roots(extra: Sequence[str]) -> list[Path]:
    roots = [Path(p) for p in extra] or [Path("scenarios")]
    return [r for r in roots if r.is_dir()]


def cmd_list(args) -> int:
    from metarl_apps.core.registry import ALGORITHMS, BASELINES, TASK_FAMILIES
    from metarl_apps.modelstore import list_models
    from metarl_apps.scenario import find_scenarios

    print("task families: " + ", ".join(TASK_FAMILIES.names()))
    print("algorithms:    " + (", ".join(ALGORITHMS.names()) or "(none registered yet)"))
    print("baselines:     " + ", ".join(BASELINES.names()))
    for root in _scenario_roots(args.scenarios):
        files = find_scenarios(root)
        print(f"scenarios in {root}/: " + (", ".join(str(f.relative_to(root)) for f in files) or "(none)"))
    models = Path(args.models)
    if models.is_dir():
        entries = list_models(models)
        print(f"models in {models}/:" + ("" if entries else " (none)"))
        for m in entries:
            if m["error"]:
                print(f"  {m['name']:<28} UNUSABLE: {m['error']}")
            else:
                print(f"  {m['name']:<28} {m['family']:<26} {m['algorithm']:<6} "
                      f"{m['metric'] or 'not evaluated'}")
    return EXIT_OK


def cmd_validate(args) -> int:
    from metarl_apps.core.errors import MetaRLInputError
    from metarl_apps.scenario import load_scenario

    bad = 0
    for f in args.files:
        try:
            s = load_scenario(f)
        except MetaRLInputError as err:
            print(f"metarl: error: {err}", file=sys.stderr)
            bad += 1
        else:
            print(f"ok {f}: {s.name} ({s.family.name}, {len(s.agents)} agents, {len(s.expectations)} expectations)")
    return EXIT_BAD_INPUT if bad else EXIT_OK


def _save_model(args, scenario, spec, learner, train_result, evaluation=None, resumed_from: int = 0) -> None:
    """Save a trained learner into the model registry (``--models``, default ./models)."""
    from metarl_apps import modelstore
    from metarl_apps.scenario.training import checkpoint_dir

    learners = [a for a in scenario.agents if a.kind == "algorithm" and (not args.agent or a.name in args.agent)]
    name = args.model_name if args.model_name and len(learners) == 1 else None
    if args.model_name and len(learners) > 1:
        name = f"{args.model_name}-{spec.name}"
    name = name or modelstore.default_model_name(scenario.name, spec.name)
    dist = scenario.make_distribution()
    training = {"iterations": int(dict(spec.train).get("iterations", 1)), "seed": 0,
                "train_tasks": scenario.tasks.train, "task_seed": scenario.tasks.seed if args.seed is None
                else args.seed, "seeds_trained": scenario.seeds}
    if resumed_from:
        training["resumed_from_iteration"] = resumed_from  # wall_time_s is then the resumed session's only
    if train_result is not None:
        training["wall_time_s"] = round(float(train_result.wall_time_s), 3)
        training["final_metrics"] = {k: round(float(v), 6) for k, v in (train_result.metrics or {}).items()}
    path = modelstore.save_model(learner, dist, args.models, name,
                                 checkpoint_dir=str(checkpoint_dir(args.output, spec.name, 0)), agent=spec.name,
                                 algorithm=spec.target, scenario=scenario, training=training, evaluation=evaluation)
    print(f"saved model {path} (card: {path / 'card.md'})")


def _run(args, *, resume: bool, models=None) -> int:
    from metarl_apps.scenario import load_scenario
    from metarl_apps.scenario.runner import run_scenario, scenario_from_card

    if args.scenario is None:  # evaluate --model without a scenario file: the card says the family and tasks
        from metarl_apps.modelstore import load_card

        scenario = scenario_from_card(load_card(models[0]), models[0], args.tasks)
    else:
        scenario = load_scenario(args.scenario)
    result = run_scenario(scenario, args.output, seed=args.seed, resume=resume or args.resume,
                          progress=not args.no_progress, agents=args.agent or None, models=models,
                          jobs=getattr(args, "jobs", 1))
    print(f"wrote {result.out_dir / 'results.json'} and {result.out_dir / 'report.md'}")
    if getattr(args, "save_model", False):
        for name, (learner, trained) in result.learners.items():
            spec = scenario.agent(name)
            rows = [r for r in result.results["rows"] if r["agent"] == name]
            evaluation = {"metric": result.results["metric"], "n_tasks": rows[0]["n_tasks"] if rows else 0,
                          "task_seed": result.results["tasks"]["seed"], "rows": rows}
            _save_model(args, scenario, spec, learner, trained, evaluation)
    return EXIT_OK if result.passed else EXIT_EXPECTATION_FAILED


def cmd_run(args) -> int:
    return _run(args, resume=False)


def cmd_evaluate(args) -> int:
    from metarl_apps.core.errors import MetaRLInputError

    if args.scenario is None and not args.model:
        raise MetaRLInputError("evaluate: give a SCENARIO file, or --model models/NAME (or both)")
    # Learners are restored from --model, or from the checkpoints a previous `train`/`run` wrote into --output.
    return _run(args, resume=True, models=args.model or None)


def cmd_train(args) -> int:
    from metarl_apps.core.errors import MetaRLInputError
    from metarl_apps.scenario import load_scenario
    from metarl_apps.scenario.training import train_learners

    scenario = load_scenario(args.scenario)
    learners = [a for a in scenario.agents if a.kind == "algorithm"]
    if not learners:
        raise MetaRLInputError(f"{args.scenario}: agents: no learner (an `algorithm:` agent) to train; "
                               f"baselines need no training, use `metarl run`")

    from metarl_apps.scenario.training import checkpoint_dir, latest_iteration

    resumed = {a.name: latest_iteration(checkpoint_dir(args.output, a.name, 0)) if args.resume else 0
               for a in learners}

    def save(spec, seed, learner, result):
        if seed == 0 and not args.no_save_model:
            _save_model(args, scenario, spec, learner, result, resumed_from=resumed[spec.name])

    train_learners(scenario, args.output, seed=args.seed, resume=args.resume, progress=not args.no_progress,
                   agents=args.agent or None, on_trained=save, jobs=args.jobs)
    return EXIT_OK


def cmd_adapt(args) -> int:
    from metarl_apps.core.errors import MetaRLInputError
    from metarl_apps.scenario import load_scenario
    from metarl_apps.scenario.runner import adapt_learner

    if args.model is None and (args.scenario is None or args.output is None or args.agent is None):
        raise MetaRLInputError("adapt: give --model models/NAME, or SCENARIO -o DIR --agent NAME (a trained "
                               "learner's checkpoints)")
    scenario = load_scenario(args.scenario) if args.scenario else None
    adapt_learner(scenario, args.output, agent=args.agent, budget=args.budget, num_tasks=args.tasks,
                  seed=args.seed, model=args.model)
    return EXIT_OK


def cmd_explore(args) -> int:
    from metarl_apps.evaluation.exploration import explore_scenario
    from metarl_apps.scenario import load_scenario

    explore_scenario(load_scenario(args.scenario), args.output, agents=args.agent, seed=args.seed,
                     num_tasks=args.tasks)
    return EXIT_OK


def cmd_report(args) -> int:
    from metarl_apps.evaluation.report import merge_runs

    merged = merge_runs(args.dirs, args.output, labels=args.label or None)
    print(merged.markdown, end="")
    for warning in merged.warnings:
        print(f"metarl: warning: {warning}", file=sys.stderr)
    print(f"wrote {merged.report_path} and {merged.plot_path}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="metarl", description="Meta-RL for new users and new levels: run scenarios, "
                                "train, adapt and evaluate on held-out tasks.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("list", help="registered task families, algorithms, baselines; scenarios and models found")
    s.add_argument("--scenarios", action="append", default=[], metavar="DIR", help="scenario directory "
                   "(repeatable; default ./scenarios)")
    s.add_argument("--models", default="models", metavar="DIR", help="model registry directory (default ./models)")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("validate", help="check scenario files; one line per error, exit 2 if any is bad")
    s.add_argument("files", nargs="+", metavar="FILE")
    s.set_defaults(func=cmd_validate)

    def common(s, output_required=True, scenario_required=True):
        s.add_argument("scenario", nargs=None if scenario_required else "?", metavar="SCENARIO",
                       help="scenario YAML file")
        s.add_argument("-o", "--output", required=output_required, metavar="DIR",
                       help="output directory (results.json, report.md, checkpoints/, tensorboard/)")
        s.add_argument("--seed", type=int, default=None, help="task seed (default: the scenario's tasks.seed)")
        s.add_argument("--agent", action="append", metavar="NAME", help="only this agent (repeatable)")
        s.add_argument("--resume", action="store_true", help="continue training from checkpoints in DIR")
        s.add_argument("--no-progress", action="store_true", help="no progress bars")

    def jobs(s):
        s.add_argument("--jobs", type=int, default=1, metavar="N",
                       help="meta-train up to N (learner, training seed) pairs at once, each in its own process "
                            "with the CPU threads split between them (default 1: one after another); same "
                            "checkpoints and results")

    def registry(s):
        s.add_argument("--models", default="models", metavar="DIR", help="model registry directory (default "
                       "./models)")
        s.add_argument("--model-name", metavar="NAME", help="save as models/NAME (default SCENARIO_NAME-AGENT)")

    s = sub.add_parser("run", help="train what needs training, evaluate on held-out tasks, check expectations")
    common(s, output_required=False, scenario_required=False)
    jobs(s)
    s.add_argument("--save-model", action="store_true", help="also save each trained learner (with its held-out "
                   "metrics) into the model registry")
    registry(s)
    s.set_defaults(func=cmd_run)
    s = sub.add_parser("train", help="meta-train the scenario's learners (checkpoints in DIR/checkpoints) and "
                       "save them as models/<name>")
    common(s)
    jobs(s)
    registry(s)
    s.add_argument("--no-save-model", action="store_true", help="do not save the trained learners as models")
    s.set_defaults(func=cmd_train)
    s = sub.add_parser("evaluate", help="evaluate agents on held-out tasks, learners restored from DIR or --model")
    common(s, scenario_required=False)
    s.add_argument("--model", action="append", metavar="MODEL_DIR", help="a saved model (models/NAME) standing in "
                   "for the scenario's learner of the same agent name; without SCENARIO, evaluated alone on "
                   "held-out tasks of its family (repeatable)")
    s.add_argument("--tasks", type=int, default=None, help="held-out tasks when evaluating --model without a "
                   "scenario (default: the card's)")
    s.set_defaults(func=cmd_evaluate)
    s = sub.add_parser("adapt", help="adapt a trained learner to held-out tasks and print its adaptation curve")
    s.add_argument("scenario", nargs="?", metavar="SCENARIO")
    s.add_argument("-o", "--output", metavar="DIR", help="directory holding the checkpoints")
    s.add_argument("--agent", metavar="NAME")
    s.add_argument("--model", metavar="MODEL_DIR", help="a saved model (models/NAME) instead of SCENARIO -o DIR")
    s.add_argument("--budget", type=int, required=True, help="adaptation budget K")
    s.add_argument("--tasks", type=int, default=100, help="number of held-out tasks (default 100)")
    s.add_argument("--seed", type=int, default=None)
    s.set_defaults(func=cmd_adapt)
    s = sub.add_parser("explore", help="bandit scenarios: how each agent explores (first tries of each arm, best "
                       "arm never pulled or left, regret by gap); learners restored from DIR")
    s.add_argument("scenario", metavar="SCENARIO")
    s.add_argument("-o", "--output", required=True, metavar="DIR", help="run directory (checkpoints of the "
                   "learners); writes DIR/exploration.json")
    s.add_argument("--agent", action="append", metavar="NAME", help="only this agent (repeatable)")
    s.add_argument("--tasks", type=int, default=None, help="held-out bandits (default: the scenario's)")
    s.add_argument("--seed", type=int, default=None, help="task seed (default: the scenario's tasks.seed)")
    s.set_defaults(func=cmd_explore)
    s = sub.add_parser("report", help="merge several run directories (results.json) into one table and plot")
    s.add_argument("dirs", nargs="+", metavar="DIR", help="run directories, each with a results.json")
    s.add_argument("-o", "--output", default="out/report", metavar="OUT", help="writes OUT/report.md and "
                   "OUT/adaptation.png (default out/report)")
    s.add_argument("--label", action="append", metavar="LABEL", help="a label per DIR, in order (default: the "
                   "directory names)")
    s.set_defaults(func=cmd_report)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run" and args.scenario is None:
        args.scenario = DEFAULT_SCENARIO
    if args.command == "run" and args.output is None:
        args.output = "out/" + Path(args.scenario).stem
    _quiet_imports()
    from metarl_apps.core.errors import MetaRLInputError

    try:
        return int(args.func(args))
    except MetaRLInputError as err:
        print(f"metarl: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
        print(f"metarl: error: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("metarl: interrupted; checkpoints written so far are intact (resume with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
