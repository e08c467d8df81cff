"""The documentation: the plugin tutorial's code runs as written, and the site builds (strict) and covers everything."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest
import yaml

from conftest import REPO
from latentreason import catalogue, registry

DOCS = REPO / "docs"


def python_blocks(page) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)


def test_the_plugin_tutorial_runs_as_written(tmp_path):
    blocks = python_blocks(DOCS / "plugins.md")
    assert len(blocks) >= 4
    script = tmp_path / "tutorial.py"
    script.write_text("\n\n".join(blocks))
    env = {**os.environ, "LATENTREASON_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = " ".join(result.stdout.split())
    assert "'confident', 'local (__main__)'" in out and "exact accuracy" in out
    assert (tmp_path / "my_conf" / "recipes" / "confident_sudoku.yaml").is_file() and any((tmp_path / "runs").iterdir())


def mkdocs_installed() -> bool:
    return all(
        importlib.util.find_spec(m) is not None
        for m in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not mkdocs_installed():
        if os.environ.get("CI"):
            pytest.fail(
                "mkdocs-material and mkdocstrings-python must be installed in CI (they are in the `test` extra)"
            )
        pytest.skip("mkdocs-material and mkdocstrings-python are not installed: pip install '.[test]'")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def test_every_page_of_the_nav_is_built(site):
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    pages = [next(iter(item.values())) for item in nav]
    assert {
        "quickstart.md",
        "recipes.md",
        "components.md",
        "plugins.md",
        "papers.md",
        "cli.md",
        "faq.md",
        "errors.md",
        "distributed.md",
    } <= set(pages)
    for page in pages:
        built = site / ("index.html" if page == "index.md" else page.removesuffix(".md") + "/index.html")
        assert built.is_file(), page


def anchor(kind: str, name: str) -> str:
    return f"{kind}-{name}".replace("_", "-")


def test_every_component_and_recipe_has_an_entry(site):
    components = (site / "components" / "index.html").read_text()
    shipped = [
        e for e in registry.entries() if not e.origin.startswith("local (")
    ]  # not those tests register on the fly
    assert len(shipped) >= 12
    for entry in shipped:
        assert f'id="{anchor(entry.kind, entry.name)}"' in components, (
            f"{entry.kind} {entry.name} has no entry in the Components reference"
        )
    recipes = (site / "recipes" / "index.html").read_text()
    for name, (_, origin) in catalogue.config_options("recipe").items():
        if not origin.startswith("local ("):
            assert f'id="{anchor("recipe", name)}"' in recipes, f"recipe {name} has no entry in the Recipes catalogue"
    assert "hrm_seq2seq" in recipes and "latentreason.api" in (site / "api" / "index.html").read_text()


def test_schedule_diagrams_are_drawn_into_concepts_and_cores(site):
    cores = (site / "cores" / "index.html").read_text()
    for core in ("hrm", "looped", "trm", "latent_diffusion"):
        assert f'aria-label="schedule of the {core} core"' in cores, core
    assert (
        "<!-- schedule:" not in cores
        and 'aria-label="schedule of the hrm core"' in (site / "concepts" / "index.html").read_text()
    )
