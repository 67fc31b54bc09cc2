import sys
import textwrap

import pytest

from metarl_apps.core.errors import MetaRLInputError, UnknownNameError
from metarl_apps.core.registry import BASELINES, TASK_FAMILIES, Registry, make_task_distribution


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNameError, match="unknown task family 'bandits.gaussian'; valid names: ") as e:
        TASK_FAMILIES.get("bandits.gaussian")
    assert "bandits.bernoulli" in str(e.value) and "mdp.tabular" in str(e.value)
    with pytest.raises(UnknownNameError, match="valid names: .*thompson"):
        BASELINES.get("thomson")


def test_builtins_resolve_and_bad_params_are_one_line():
    dist = make_task_distribution("bandits.bernoulli", arms=3, pulls=2)
    assert dist.episodes_per_trial == 2
    with pytest.raises(MetaRLInputError, match="bad parameters.*unexpected keyword"):
        make_task_distribution("bandits.bernoulli", armz=3)


def test_register_at_runtime_and_clash():
    reg = Registry("baselines", {"a": "math:sqrt"})
    assert reg.get("a")(4.0) == 2.0
    reg.register("b", len)
    assert reg.names() == ["a", "b"]
    with pytest.raises(MetaRLInputError, match="already registered"):
        reg.register("a", len)
    broken = Registry("baselines", {"x": "no_such_module_xyz:thing"})
    with pytest.raises(MetaRLInputError, match="cannot be imported"):
        broken.get("x")


def _install_fake_plugin(tmp_path, group, name, target, module_src):
    """A real installed distribution (dist-info with entry_points.txt) on sys.path, as pip would leave it."""
    (tmp_path / "my_plugin_pkg.py").write_text(textwrap.dedent(module_src))
    info = tmp_path / "my_plugin_pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin-pkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {target}\n")
    sys.path.insert(0, str(tmp_path))


def test_plugin_family_is_discovered_through_entry_points(tmp_path):
    _install_fake_plugin(
        tmp_path, "metarl_apps.task_families", "mycorp.tiny_bandits", "my_plugin_pkg:TinyBandits",
        """
        from metarl_apps.adapters.bandits import BernoulliBandits

        class TinyBandits(BernoulliBandits):
            family = "mycorp.tiny_bandits"

            def __init__(self):
                super().__init__(arms=2, pulls=3)
        """,
    )
    try:
        reg = Registry("task_families", {"bandits.bernoulli": "metarl_apps.adapters.bandits:BernoulliBandits"})
        assert "mycorp.tiny_bandits" in reg.names()
        dist = reg.create("mycorp.tiny_bandits")
        from metarl_apps.adapters.checks import check_task_distribution

        check_task_distribution(dist)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("my_plugin_pkg", None)


def test_plugin_cannot_shadow_a_builtin(tmp_path):
    _install_fake_plugin(tmp_path, "metarl_apps.baselines", "random", "my_plugin_pkg:Other", "Other = object\n")
    try:
        reg = Registry("baselines", {"random": "metarl_apps.baselines.classic:RandomBaseline"})
        with pytest.raises(MetaRLInputError, match="clashes with the registered baseline 'random'"):
            reg.names()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("my_plugin_pkg", None)
