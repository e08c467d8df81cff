"""Third-party plugins: entry points, origins, config cards and recipes, failures, and the Python API.

The plugins here are real distributions made on the fly (a `*.dist-info` with an
`entry_points.txt` on PYTHONPATH), so importlib.metadata finds them as it finds an installed one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from latentreason import registry
from latentreason.errors import ConfigError

GOOD_MODULE = '''
"""A test plugin."""
from latentreason import register
from latentreason.halt.fixed import Fixed


@register("halt", "fake_fixed")
class FakeFixed(Fixed):
    """A fixed segment count, from a plugin."""
'''

CARD = "# A test card.\nname: fake_fixed\nmax_steps: 3\n"
RECIPE = textwrap.dedent("""\
    # A recipe from a plugin.
    # @package _global_
    defaults:
      - hrm_sudoku
      - override /halt: fake_fixed
      - _self_
    """)


def make_plugin(
    site: Path,
    dist: str,
    version: str,
    module: str,
    source: str,
    entry: str | None = None,
    conf: dict[str, str] | None = None,
) -> None:
    package = site / module
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(source)
    for relative, text in (conf or {}).items():
        path = package / "conf" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    info = site / f"{dist}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[latentreason.plugins]\n{module} = {entry or module}\n")


def cli(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "latentreason.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def good_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    make_plugin(
        site,
        "fakeplug",
        "1.2.3",
        "fakeplug",
        GOOD_MODULE,
        conf={"halt/fake_fixed.yaml": CARD, "recipes/fake_recipe.yaml": RECIPE},
    )
    return site


def rows_of(output: str, name: str) -> list[str]:
    return [line for line in output.splitlines() if f" {name} " in line]


def test_plugin_components_and_recipes_are_listed_with_their_origin(good_site):
    result = cli(good_site, "list")
    assert result.returncode == 0, result.stdout + result.stderr
    (component,) = rows_of(result.stdout, "fake_fixed")
    assert "halt" in component and "fakeplug 1.2.3" in component and "(no card)" not in component
    (recipe,) = rows_of(result.stdout, "fake_recipe")
    assert "recipe" in recipe and "fakeplug 1.2.3" in recipe
    assert "built-in" in rows_of(result.stdout, "q_act")[0]


def test_plugin_card_and_recipe_compose(good_site):
    by_recipe = cli(good_site, "run", "recipe=fake_recipe", "preset=cpu", "--dry-run")
    assert by_recipe.returncode == 0, by_recipe.stdout + by_recipe.stderr
    assert "name: fake_fixed" in by_recipe.stdout and "max_steps: 8" in by_recipe.stdout  # the cpu preset still applies
    by_group = cli(good_site, "run", "recipe=hrm_sudoku", "halt=fake_fixed", "preset=paper", "--dry-run")
    assert by_group.returncode == 0, by_group.stdout + by_group.stderr
    assert "name: fake_fixed" in by_group.stdout and "max_steps: 3" in by_group.stdout


def test_a_broken_plugin_is_reported_once_and_the_rest_works(tmp_path):
    make_plugin(tmp_path, "brokenplug", "0.0.1", "brokenplug", "raise ImportError('needs frobnicate>=2')\n")
    make_plugin(tmp_path, "fakeplug", "1.2.3", "fakeplug", GOOD_MODULE, conf={"halt/fake_fixed.yaml": CARD})
    result = cli(tmp_path, "list")
    assert result.returncode == 0, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert out.count("brokenplug 0.0.1") == 1 and "needs frobnicate>=2" in out and "failed to load" in out
    assert rows_of(result.stdout, "fake_fixed") and rows_of(result.stdout, "hrm_sudoku")
    run = cli(tmp_path, "run", "recipe=hrm_sudoku", "preset=cpu", "--dry-run")
    assert run.returncode == 0 and " ".join(run.stdout.split()).count("brokenplug 0.0.1") == 1


def test_a_function_entry_point_is_called(tmp_path):
    source = (
        GOOD_MODULE.replace("@register", "def setup():\n    global FakeFixed\n\n    @register")
        .replace("\nclass FakeFixed", "\n    class FakeFixed")
        .replace(
            '    """A fixed segment count, from a plugin."""', '        """A fixed segment count, from a plugin."""'
        )
    )
    make_plugin(
        tmp_path, "funcplug", "2.0", "funcplug", source, entry="funcplug:setup", conf={"halt/fake_fixed.yaml": CARD}
    )
    result = cli(tmp_path, "list", "halt")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "funcplug 2.0" in rows_of(result.stdout, "fake_fixed")[0]


def test_a_clash_with_a_builtin_names_both_sources(tmp_path):
    clash = 'from latentreason import register\n\n@register("halt", "q_act")\nclass Mine:\n    """Mine."""\n'
    make_plugin(tmp_path, "clashplug", "0.1", "clashplug", clash)
    result = cli(tmp_path, "list", "halt")
    out = " ".join(result.stdout.split())
    assert result.returncode == 0
    assert (
        "registered twice" in out and "built-in" in out and "clashplug 0.1" in out and "QACT" in out and "Mine" in out
    )
    assert "built-in" in rows_of(result.stdout, "q_act")[0]  # the built-in one is kept


def test_a_card_clash_names_both_files(tmp_path):
    make_plugin(tmp_path, "cardclash", "0.1", "cardclash", "", conf={"halt/q_act.yaml": CARD})
    result = cli(tmp_path, "list", "recipe")
    out = " ".join(result.stdout.split())
    assert "halt card 'q_act' is provided twice" in out and "built-in" in out and "cardclash 0.1" in out


def test_python_api_register_and_add_config_dir(tmp_path):
    import latentreason
    from latentreason.halt.fixed import Fixed

    @latentreason.register("halt", "api_test_fixed")
    class ApiFixed(Fixed):
        """A policy registered from a notebook."""

    try:
        (tmp_path / "halt").mkdir()
        (tmp_path / "halt" / "api_test_fixed.yaml").write_text("name: api_test_fixed\nmax_steps: 5\n")
        (tmp_path / "recipes").mkdir()
        (tmp_path / "recipes" / "api_test_recipe.yaml").write_text(RECIPE.replace("fake_fixed", "api_test_fixed"))
        latentreason.add_config_dir(tmp_path)
        latentreason.add_config_dir(tmp_path)  # the same folder twice: nothing happens
        assert ("halt", "api_test_fixed", f"local ({__name__})") in latentreason.components("halt")
        assert latentreason.recipes()["api_test_recipe"] == f"local ({tmp_path})"
        config = latentreason.load_config(["recipe=api_test_recipe", "preset=paper"])
        assert config.halt.name == "api_test_fixed" and config.halt.max_steps == 5
        with pytest.raises(ConfigError, match="provided twice"):
            other = tmp_path / "other"
            (other / "recipes").mkdir(parents=True)
            (other / "recipes" / "hrm_sudoku.yaml").write_text(RECIPE)
            latentreason.add_config_dir(other)
        with pytest.raises(ConfigError, match="does not exist"):
            latentreason.add_config_dir(tmp_path / "missing")
    finally:
        registry.unregister("halt", "api_test_fixed")
