"""The shared config-field rules: each kind accepts what it names and refuses the rest with a one-line error."""

import dataclasses
import re

import pytest

from metarl_apps.algorithms.maml.config import MAMLConfig
from metarl_apps.algorithms.mql.config import MQLConfig
from metarl_apps.algorithms.rl2.config import RL2Config
from metarl_apps.core.config_fields import KINDS, check_fields
from metarl_apps.core.errors import MetaRLInputError


@dataclasses.dataclass(frozen=True)
class Cfg:
    x: object = None
    y: object = None


CASES = {  # kind -> (accepted values, refused values)
    "pos_int": ([1, 7], [0, -1, 1.0, True, "1", None]),
    "nonneg_int": ([0, 3], [-1, 0.5, False, None]),
    "pos_num": ([1e-9, 2, 0.5], [0, -0.1, True, "2", None]),
    "nonneg_num": ([0, 0.0, 3.5], [-1e-9, False, None]),
    "unit": ([0, 1, 0.5, 1.0], [-0.01, 1.01, True, None]),
    "bool": ([True, False], [0, 1, "true", None]),
    "int_list": ([[], [1, 2], (3,)], [[0], [1.0], 5, "12", None]),
    "nonempty_int_list": ([[1], (2, 3)], [[], (), [0], 4, None]),
}


def test_every_kind_is_covered():
    assert set(CASES) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_kind_accepts_and_refuses(kind):
    good, bad = CASES[kind]
    for v in good:
        check_fields(Cfg(x=v), [("x", kind)])
    for v in bad:
        with pytest.raises(MetaRLInputError, match=rf"^Cfg\.x={re.escape(repr(v))}: must be") as err:
            check_fields(Cfg(x=v), [("x", kind)])
        assert "\n" not in str(err.value)


def test_nullable_rule_text_and_first_failure():
    check_fields(Cfg(x=None), [("x", "pos_num?")])
    with pytest.raises(MetaRLInputError, match=r"^Cfg\.x=0: must be positive or null$"):
        check_fields(Cfg(x=0), [("x", "pos_num?", "must be positive or null")])
    with pytest.raises(MetaRLInputError, match=r"^Cfg\.x=-1:"):  # rules and fields are checked in order
        check_fields(Cfg(x=-1, y=-1), [(("x", "y"), "pos_int")])
    with pytest.raises(MetaRLInputError, match=r"^Cfg\.y=-1:"):
        check_fields(Cfg(x=1, y=-1), [(("x", "y"), "pos_int")])


def test_int_lists_are_stored_as_tuples():
    cfg = Cfg(x=[1, 2], y=[3])
    check_fields(cfg, [("x", "int_list"), ("y", "nonempty_int_list?")])
    assert cfg.x == (1, 2) and cfg.y == (3,)
    hash(cfg)


@pytest.mark.parametrize("config, kwargs, message", [
    (RL2Config, {"embed_sizes": 64}, r"RL2Config\.embed_sizes=64: must be a list of positive integers"),
    (RL2Config, {"select_budgets": []}, r"RL2Config\.select_budgets=\[\]: must be a non-empty list"),
    (RL2Config, {"discount_final": 1.5, "discount_anneal_iterations": 10}, r"RL2Config\.discount_final=1\.5"),
    (RL2Config, {"set_normalize_keyed": 1}, r"RL2Config\.set_normalize_keyed=1: must be true or false"),
    (RL2Config, {"cell": "set", "set_normalize_keyed": True}, r"set_normalize_keyed=True: needs cell 'set' with"),
    (RL2Config, {"set_keys": 4, "set_normalize_keyed": True}, r"set_normalize_keyed=True: needs cell 'set' with"),
    (MAMLConfig, {"hidden_sizes": [32, 0]}, r"MAMLConfig\.hidden_sizes=\[32, 0\]: must be a list"),
    (MAMLConfig, {"init_only": 1}, r"MAMLConfig\.init_only=1: must be true or false"),
    (MQLConfig, {"trunk_sizes": "64"}, r"MQLConfig\.trunk_sizes='64': must be a list"),
    (MQLConfig, {"huber_delta": 0}, r"MQLConfig\.huber_delta=0: must be a positive number, or null"),
])
def test_learner_configs_use_the_rules(config, kwargs, message):
    with pytest.raises(MetaRLInputError, match=message):
        config(**kwargs)


def test_learner_configs_normalise_lists():
    assert RL2Config(embed_sizes=[32], select_budgets=[10, 1, 10]).select_budgets == (1, 10)
    assert RL2Config(embed_sizes=[32]).embed_sizes == (32,)
    assert MAMLConfig(hidden_sizes=[8, 8]).hidden_sizes == (8, 8)
    assert MQLConfig(trunk_sizes=[16]).trunk_sizes == (16,)
