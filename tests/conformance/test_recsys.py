"""The recsys families pass the adapter contract (batched == alone, specs, seeds, disjoint splits)."""

import pytest

from metarl_apps.adapters.checks import check_task_distribution
from metarl_apps.adapters.recsys import InterestEvolutionUsers, LatentFactorUsers
from metarl_apps.core.registry import TASK_FAMILIES

SMALL = dict(num_topics=3, num_docs=8, slate_size=3, interactions=4)


@pytest.mark.parametrize(
    "dist",
    [
        InterestEvolutionUsers(**SMALL),
        InterestEvolutionUsers(**SMALL, interest_step_size=0.5, interest_noise=0.2, no_click_mass=-1.0),
        LatentFactorUsers(**SMALL),
        LatentFactorUsers(**SMALL, affinity="negative_euclidean", initial_satisfaction=5.0, corpus_seed=3),
        InterestEvolutionUsers(num_topics=1, num_docs=1, slate_size=1, interactions=1),
    ],
    ids=repr,
)
def test_recsys_family_conforms(dist):
    check_task_distribution(dist)


def test_registered():
    assert isinstance(TASK_FAMILIES.create("recsys.interest_evolution"), InterestEvolutionUsers)
    assert isinstance(TASK_FAMILIES.create("recsys.latent_factor", num_docs=10), LatentFactorUsers)
