"""Registries of task families, algorithms and baselines, extensible by other packages.

Built-ins are listed explicitly below. Another installed package adds its own by declaring setuptools entry
points in one of these groups (see README "Plugins")::

    [options.entry_points]
    metarl_apps.task_families =
        mycorp.users = mycorp_recsys.population:MyUsers
    metarl_apps.algorithms =
        my_learner = mycorp_meta.learner:MyLearner
    metarl_apps.baselines =
        my_baseline = mycorp_meta.baselines:MyBaseline

An entry point must name a class (or factory) the registry can call with keyword arguments. A plugin cannot
silently replace a built-in: a clash is an error naming both.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any, Callable, Iterator

from metarl_apps.core.errors import MetaRLInputError, UnknownNameError

_SINGULAR = {"task_families": "task family", "algorithms": "algorithm", "baselines": "baseline"}

ENTRY_POINT_GROUPS = {
    "task_families": "metarl_apps.task_families",
    "algorithms": "metarl_apps.algorithms",
    "baselines": "metarl_apps.baselines",
}


class Registry:
    """A name -> factory mapping; built-ins are ``"module:attr"`` strings imported on first use."""

    def __init__(self, kind: str, builtins: dict[str, str]):
        self.kind = kind
        self.group = ENTRY_POINT_GROUPS[kind]
        self.label = _SINGULAR[kind]
        self._targets: dict[str, str | Callable[..., Any]] = dict(builtins)
        self._plugins_loaded = False

    # ----------------------------------------------------------- plugins
    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in metadata.entry_points(group=self.group):
            if ep.name in self._targets and self._targets[ep.name] != ep.value:
                raise MetaRLInputError(
                    f"plugin entry point {ep.name!r} = {ep.value!r} in group {self.group!r} clashes with the "
                    f"registered {self.label} {ep.name!r}; rename the plugin's entry point"
                )
            self._targets[ep.name] = ep.value

    def register(self, name: str, target: str | Callable[..., Any]) -> None:
        """Register ``target`` (a callable or ``"module:attr"``) under ``name`` at run time."""
        self._load_plugins()
        if not isinstance(name, str) or not name:
            raise MetaRLInputError(f"register: name must be a non-empty string, got {name!r}")
        if name in self._targets and self._targets[name] is not target:
            raise MetaRLInputError(f"register: {self.label} {name!r} is already registered")
        self._targets[name] = target

    def unregister(self, name: str) -> None:
        """Remove a name registered at run time or by a plugin (tests, notebooks)."""
        self._load_plugins()
        if name not in self._targets:
            raise UnknownNameError(f"unknown {self.label} {name!r}; valid names: {', '.join(self.names())}")
        del self._targets[name]

    # ------------------------------------------------------------ lookup
    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered as ``name``; an unknown name lists the valid ones."""
        self._load_plugins()
        if name not in self._targets:
            raise UnknownNameError(
                f"unknown {self.label} {name!r}; valid names: {', '.join(self.names())}"
            )
        target = self._targets[name]
        if isinstance(target, str):
            module_name, _, attr = target.partition(":")
            try:
                obj: Any = importlib.import_module(module_name)
                for part in attr.split("."):
                    obj = getattr(obj, part)
            except (ImportError, AttributeError) as err:
                raise MetaRLInputError(
                    f"{self.label} {name!r} points at {target!r}, which cannot be imported ({err}); "
                    f"check that the package providing it (and its dependencies) is installed"
                ) from err
            self._targets[name] = obj
            target = obj
        return target

    def create(self, name: str, **kwargs: Any) -> Any:
        return self.get(name)(**kwargs)


TASK_FAMILIES = Registry(
    "task_families",
    {
        "bandits.bernoulli": "metarl_apps.adapters.bandits:BernoulliBandits",
        "games.gridlevels": "metarl_apps.adapters.games.tasks:GridLevelTasks",
        "games.rps": "metarl_apps.adapters.games.rps:RPSTasks",
        "games.connect_four": "metarl_apps.adapters.games.connect_four:ConnectFourTasks",
        "games.cooperative_pong": "metarl_apps.adapters.games.cooperative_pong:CooperativePongTasks",
        "mdp.tabular": "metarl_apps.adapters.mdp:TabularMDPs",
        "nav.point2d": "metarl_apps.adapters.navigation:PointNavigation",
        "recsys.interest_evolution": "metarl_apps.adapters.recsys:InterestEvolutionUsers",
        "recsys.latent_factor": "metarl_apps.adapters.recsys:LatentFactorUsers",
    },
)

ALGORITHMS = Registry("algorithms", {"rl2": "metarl_apps.algorithms.rl2:RL2",
                                     "maml": "metarl_apps.algorithms.maml.learner:MAML",
                                    "mql": "metarl_apps.algorithms.mql:MQL"})

BASELINES = Registry(
    "baselines",
    {
        "random": "metarl_apps.baselines.classic:RandomBaseline",
        "oracle": "metarl_apps.baselines.classic:OracleBaseline",
        "greedy": "metarl_apps.baselines.bandits:GreedyBaseline",
        "epsilon_greedy": "metarl_apps.baselines.bandits:EpsilonGreedyBaseline",
        "ucb1": "metarl_apps.baselines.bandits:UCB1Baseline",
        "thompson": "metarl_apps.baselines.bandits:ThompsonBaseline",
        "gittins": "metarl_apps.baselines.bandits:GittinsBaseline",
        "bayes_optimal": "metarl_apps.baselines.bandits:BayesOptimalBaseline",
        "q_learning": "metarl_apps.baselines.mdp:QLearningBaseline",
        "psrl": "metarl_apps.baselines.mdp:PSRLBaseline",
        "certainty_equivalent": "metarl_apps.baselines.mdp:CertaintyEquivalentBaseline",
        "random_slate": "metarl_apps.baselines.recsys:RandomSlateBaseline",
        "popularity": "metarl_apps.baselines.recsys:PopularityBaseline",
        "linucb": "metarl_apps.baselines.linear:LinUCBBaseline",
        "lin_ts": "metarl_apps.baselines.linear:LinTSBaseline",
        "global_mlp": "metarl_apps.baselines.recsys:GlobalRewardModelBaseline",
        "random_legal": "metarl_apps.baselines.games:LegalRandomBaseline",
        "rps_bayes": "metarl_apps.baselines.games:RPSBayesBaseline",
        "non_adaptive": "metarl_apps.baselines.games:NonAdaptiveBaseline",
        "specialist": "metarl_apps.baselines.games:SpecialistBaseline",
    },
)


def make_task_distribution(family: str, **params: Any):
    """Build a registered task family with its parameters (``TASK_FAMILIES.create`` with a clear error)."""
    cls = TASK_FAMILIES.get(family)
    try:
        return cls(**params)
    except TypeError as err:
        raise MetaRLInputError(f"task family {family!r}: bad parameters {sorted(params)}: {err}") from err
