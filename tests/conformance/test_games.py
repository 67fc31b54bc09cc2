"""games.gridlevels passes the adapter contract (batched == alone, specs, disjoint splits, determinism)."""

import pytest

from metarl_apps.adapters.checks import check_task_distribution
from metarl_apps.adapters.games.tasks import GridLevelTasks
from metarl_apps.core.registry import TASK_FAMILIES


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 5, "view_size": 3, "max_steps": 6, "episodes": 2},
        {"size": 6, "max_steps": 8, "episodes": 2, "permute_actions": True, "use_key": False, "step_cost": -0.01},
        {"size": 8, "max_steps": 10, "episodes": 3, "num_hazards": 4, "wall_density": 0.3},
    ],
)
def test_gridlevels_conforms(kwargs):
    check_task_distribution(GridLevelTasks(**kwargs))


def test_gridlevels_is_registered():
    assert isinstance(TASK_FAMILIES.create("games.gridlevels", max_steps=6, episodes=2), GridLevelTasks)
