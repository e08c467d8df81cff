"""The package's shape: no import cycles, built-ins found by walking their packages, one source of defaults."""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from omegaconf import OmegaConf

from latentreason import catalogue, registry

PACKAGE = Path(__file__).resolve().parents[1] / "latentreason"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level_imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules `path` imports when it is imported (imports inside functions run later and do not count)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from latentreason import registry` imports the module latentreason.registry
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
    return {m for m in found if m in modules}


def test_no_import_cycle_inside_the_package():
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: _module_level_imports(path, set(files)) - {name} for name, path in files.items()}
    state: dict[str, str] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph[node]):
            if dep == "latentreason":
                continue  # every submodule's parent package runs first; what it imports is checked as its own node
            if state.get(dep) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(dep) :] + [dep]))
            if dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_registry_is_a_leaf():
    files = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    assert _module_level_imports(PACKAGE / "registry.py", files) <= {"latentreason.errors"}
    assert _module_level_imports(PACKAGE / "errors.py", files) == set()


def test_every_module_imports_on_its_own():
    """Each module alone in a fresh interpreter: an import-order dependence would fail here."""
    names = sorted(_module_name(p) for p in PACKAGE.rglob("*.py"))
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n    [sys.modules.pop(m) for m in list(sys.modules) if m.startswith('latentreason')]\n"
    result = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_new_core_file_is_listed_with_no_other_edit(tmp_path):
    """A copy of the package with one new file in cores/: `latentreason list` shows it."""
    import shutil

    copy = tmp_path / "latentreason"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ("registry", "recipes"):
        shutil.copytree(PACKAGE.parent / folder, tmp_path / folder)
    (copy / "cores" / "my_new_core.py").write_text(
        textwrap.dedent('''
        """A core that a contributor just added."""
        from latentreason.cores.looped import Looped
        from latentreason.registry import register


        @register("core", "my_new_core")
        class MyNewCore(Looped):
            """A looped core under a new name."""
        ''')
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "COLUMNS": "200"}
    command = [sys.executable, "-m", "latentreason.cli", "list", "core"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    row = next((line for line in result.stdout.splitlines() if "my_new_core" in line), "")
    assert "built-in" in row and "A looped core under a new name." in row, result.stdout[-3000:]


def test_cards_and_constructors_agree_on_every_default():
    """A key with a default in both the card and the constructor must have one value: the card is what users read."""
    disagreements = []
    for entry in registry.entries():
        card = catalogue.config_options(entry.kind).get(entry.name)
        if card is None:
            continue
        values = OmegaConf.to_container(OmegaConf.load(card[0]), resolve=False)
        parameters = inspect.signature(entry.factory).parameters
        for key, value in values.items():
            p = parameters.get(key)
            if p is None or p.default is p.empty:
                continue
            default = list(p.default) if isinstance(p.default, tuple) else p.default
            if default != value:
                disagreements.append(
                    f"{entry.kind} {entry.name}: {key} is {value!r} in {card[0].name}, {default!r} in the constructor"
                )
    assert not disagreements, "\n".join(disagreements)
