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
    from metarl_apps.scenario import find_scenarios

    print("task families: " + ", ".join(TASK_FAMILIES.names()))
    print("algorithms:    " + (", ".join(ALGORITHMS.names()) or "(none registered yet)"))
    print("baselines:     " + ", ".join(BASELINES.names()))
    for root in _scenario_roots(args.scenarios):
        files = find_scenarios(root)
        print(f"scenarios in {root}/: " + (", ".join(str(f.relative_to(root)) for f in files) or "(none)"))
    models = Path(args.models)
    if models.is_dir():
        names = sorted(p.name for p in models.iterdir() if p.is_dir())
        print(f"models in {models}/: " + (", ".join(names) or "(none)"))
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


def _run(args, *, resume: bool) -> int:
    from metarl_apps.scenario import load_scenario
    from metarl_apps.scenario.runner import run_scenario

    scenario = load_scenario(args.scenario)
    result = run_scenario(scenario, args.output, seed=args.seed, resume=resume or args.resume,
                          progress=not args.no_progress, agents=args.agent or None)
    print(f"wrote {result.out_dir / 'results.json'} and {result.out_dir / 'report.md'}")
    return EXIT_OK if result.passed else EXIT_EXPECTATION_FAILED


def cmd_run(args) -> int:
    return _run(args, resume=False)


def cmd_evaluate(args) -> int:
    # Evaluation restores learners from the checkpoints a previous `train`/`run` wrote into --output.
    return _run(args, resume=True)


def cmd_train(args) -> int:
    from metarl_apps.core.errors import MetaRLInputError
    from metarl_apps.scenario import load_scenario
    from metarl_apps.scenario.runner import train_learners

    scenario = load_scenario(args.scenario)
    learners = [a for a in scenario.agents if a.kind == "algorithm"]
    if not learners:
        raise MetaRLInputError(f"{args.scenario}: agents: no learner (an `algorithm:` agent) to train; "
                               f"baselines need no training, use `metarl run`")
    train_learners(scenario, args.output, seed=args.seed, resume=args.resume, progress=not args.no_progress,
                   agents=args.agent or None)
    return EXIT_OK


def cmd_adapt(args) -> int:
    from metarl_apps.scenario import load_scenario
    from metarl_apps.scenario.runner import adapt_learner

    scenario = load_scenario(args.scenario)
    adapt_learner(scenario, args.output, agent=args.agent, budget=args.budget, num_tasks=args.tasks,
                  seed=args.seed)
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

    def common(s, output_required=True):
        s.add_argument("scenario", nargs="?" if not output_required else None, metavar="SCENARIO",
                       help="scenario YAML file")
        s.add_argument("-o", "--output", required=output_required, metavar="DIR",
                       help="output directory (results.json, report.md, checkpoints/, tensorboard/)")
        s.add_argument("--seed", type=int, default=None, help="task seed (default: the scenario's tasks.seed)")
        s.add_argument("--agent", action="append", metavar="NAME", help="only this agent (repeatable)")
        s.add_argument("--resume", action="store_true", help="continue training from checkpoints in DIR")
        s.add_argument("--no-progress", action="store_true", help="no progress bars")

    s = sub.add_parser("run", help="train what needs training, evaluate on held-out tasks, check expectations")
    common(s, output_required=False)
    s.set_defaults(func=cmd_run)
    s = sub.add_parser("train", help="meta-train the scenario's learners (checkpoints in DIR/checkpoints)")
    common(s)
    s.set_defaults(func=cmd_train)
    s = sub.add_parser("evaluate", help="evaluate agents on held-out tasks, learners restored from DIR")
    common(s)
    s.set_defaults(func=cmd_evaluate)
    s = sub.add_parser("adapt", help="adapt a trained learner to held-out tasks and print its adaptation curve")
    s.add_argument("scenario", metavar="SCENARIO")
    s.add_argument("-o", "--output", required=True, metavar="DIR", help="directory holding the checkpoints")
    s.add_argument("--agent", required=True, metavar="NAME")
    s.add_argument("--budget", type=int, required=True, help="adaptation budget K")
    s.add_argument("--tasks", type=int, default=100, help="number of held-out tasks (default 100)")
    s.add_argument("--seed", type=int, default=None)
    s.set_defaults(func=cmd_adapt)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "scenario", "x") is None:
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
