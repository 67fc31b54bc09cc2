"""Family-agnostic baselines: uniform random, and the oracle that knows each task's hidden parameters."""

from __future__ import annotations

from tf_agents.policies import random_tf_policy, tf_policy

from metarl_apps.core.agent import Baseline
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.task import Task, TaskDistribution


class RandomBaseline(Baseline):
    """Uniformly random actions (tf-agents ``RandomTFPolicy``): the floor every learner must clear."""

    def _make_policy(self, dist: TaskDistribution, tasks: list[Task], seed: int) -> tf_policy.TFPolicy:
        return random_tf_policy.RandomTFPolicy(dist.time_step_spec(), dist.action_spec())


class OracleBaseline(Baseline):
    """Knows each task's hidden parameters and acts optimally for them: the ceiling (regret is measured to it).

    The family provides the policy through ``dist.oracle_policy(tasks)``; families without one are refused.
    """

    def supports(self, dist: TaskDistribution) -> bool:
        return callable(getattr(dist, "oracle_policy", None))

    def _check_family(self, dist: TaskDistribution) -> None:
        if not self.supports(dist):
            raise MetaRLInputError(
                f"baseline 'oracle' needs family {dist.family!r} to define oracle_policy(tasks); "
                f"remove the oracle from this scenario"
            )

    def _make_policy(self, dist: TaskDistribution, tasks: list[Task], seed: int) -> tf_policy.TFPolicy:
        policy = dist.oracle_policy(tasks)
        assert isinstance(policy, tf_policy.TFPolicy), "oracle_policy must return a TFPolicy"
        return policy



