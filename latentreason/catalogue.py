"""The catalogue: everything a run can name, and where it comes from.

- Built-in components: every module of the component packages (`cores/`, `grad/`, `halt/`,
  `tasks/`, `optim/`, `infer/`, `blocks/`) is imported, so its `@register` decorators run. A new `cores/foo.py` is
  found without any other edit.
- Plugins: entry points of the group `latentreason.plugins`. Importing one registers its
  components; its `conf/` folder, if any, adds config cards and recipes.
- Config folders: the built-in cards (`registry/` at the top of a checkout, `latentreason/_cards`
  once installed) and recipes, then those of plugins and of `add_config_dir`, which Hydra composes
  alike (see `latentreason.config`).

`populate` is the step the registry runs before its first lookup (the package wires it up).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path

from latentreason import registry
from latentreason.errors import ConfigError

COMPONENT_PACKAGES = ("cores", "grad", "halt", "tasks", "optim", "infer", "blocks")
PLUGIN_GROUP = "latentreason.plugins"
_plugins_seen: set[str] = set()


def populate() -> None:
    """Register the built-in components, then the plugins' (once; `registry.populate` calls this)."""
    load_builtins()
    load_plugins()


def load_builtins() -> None:
    """Import every module of the component packages, so that their @register decorators run."""
    for package_name in COMPONENT_PACKAGES:
        package = importlib.import_module(f"latentreason.{package_name}")
        for module in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            importlib.import_module(module.name)


def load_plugins() -> None:
    """Import every plugin of the entry-point group `latentreason.plugins`, once.

    An entry point names a module (`my_plugin`) or a function (`my_plugin:setup`, called with no
    arguments). While it loads, components it registers get the origin `<distribution> <version>`.
    If the plugin's package has a `conf/` folder, its cards (`conf/<kind>/*.yaml`) and recipes
    (`conf/recipes/*.yaml`) join the config search. A plugin that fails is reported once, in
    yellow, and left out (whatever it registered is removed); everything else keeps working.
    """
    from importlib.metadata import entry_points

    for point in sorted(entry_points(group=PLUGIN_GROUP), key=lambda p: p.name):
        if point.name in _plugins_seen:
            continue
        _plugins_seen.add(point.name)
        dist = getattr(point, "dist", None)
        origin = f"{dist.name} {dist.version}" if dist is not None else point.name
        before = {(e.kind, e.name) for e in registry.entries()}
        sources_before = len(_CONFIG_SOURCES)
        try:
            with registry.origin(origin):
                loaded = point.load()
            folders: list = []
            if callable(loaded) and not inspect.ismodule(loaded):
                with registry.origin(origin):
                    returned = loaded()  # may return a config folder, or a list of them
                folders = [returned] if isinstance(returned, (str, Path)) else list(returned or [])
            module = loaded if inspect.ismodule(loaded) else inspect.getmodule(loaded)
            if not folders and getattr(module, "__file__", None):
                conf = Path(module.__file__).resolve().parent / "conf"
                folders = [conf] if conf.is_dir() else []
            for folder in folders:
                add_config_dir(folder, origin=origin)
        except Exception as error:  # noqa: BLE001 - a broken plugin must not break the framework
            for kind, name in {(e.kind, e.name) for e in registry.entries()} - before:
                registry.unregister(kind, name)
            del _CONFIG_SOURCES[sources_before:]
            from latentreason.console import console

            console.print(
                f"[yellow]Plugin {origin} ({point.value}) failed to load and is left out: {type(error).__name__}: {error}[/]"
            )


# -- config folders: the built-in cards and recipes, and those plugins or users add ---------------

CONFIG_GROUP_RECIPES = "recipes"  # the folder of a config source that holds recipes (Hydra group `recipe`)


@dataclass(frozen=True)
class ConfigSource:
    """A folder of config cards (`<group>/<name>.yaml`) and a folder of recipes, with their origin."""

    cards: Path | None
    recipes: Path | None
    origin: str

    def options(self, group: str) -> dict[str, Path]:
        if group == "recipe":
            folder = self.recipes
        else:
            folder = self.cards / group if self.cards is not None and group != CONFIG_GROUP_RECIPES else None
        return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder is not None and folder.is_dir() else {}

    def groups(self) -> list[str]:
        found = ["recipe"] if self.options("recipe") else []
        if self.cards is not None and self.cards.is_dir():
            found += sorted(
                p.name
                for p in self.cards.iterdir()
                if p.is_dir() and p.name != CONFIG_GROUP_RECIPES and any(p.glob("*.yaml"))
            )
        return found


_CONFIG_SOURCES: list[ConfigSource] = []


def _builtin_folder(packaged: str, top_level: str) -> Path:
    """A built-in config folder: inside the installed package, or at the top of a checkout."""
    package = Path(__file__).resolve().parent
    return package / packaged if (package / packaged).is_dir() else package.parent / top_level


def cards_dir() -> Path:
    """The built-in config cards (`registry/` in a checkout): the primary config and one card per component."""
    return _builtin_folder("_cards", "registry")


def recipes_dir() -> Path:
    return _builtin_folder("_recipes", "recipes")


def builtin_source() -> ConfigSource:
    return ConfigSource(cards_dir(), recipes_dir(), "built-in")


def config_sources() -> list[ConfigSource]:
    """The built-in config folders first, then those of plugins and of `add_config_dir`, in order."""
    registry.populate()
    return [builtin_source(), *_CONFIG_SOURCES]


def config_options(group: str) -> dict[str, tuple[Path, str]]:
    """Every option of a config group (`core`, `halt`, ..., or `recipe`): name -> (file, origin)."""
    found: dict[str, tuple[Path, str]] = {}
    for source in config_sources():
        for name, path in source.options(group).items():
            found.setdefault(name, (path, source.origin))
    return found


def add_config_dir(path: str | Path, origin: str | None = None) -> None:
    """Add a folder of config cards and recipes: `<path>/<group>/<name>.yaml` and `<path>/recipes/<name>.yaml`.

    Its cards become options of their group (`halt=<name>`) and its recipes options of `recipe=`,
    exactly like the built-in ones. A file whose first lines say `# @package _global_` is composed at
    the top level (as recipes and the `cpu` presets are). A name that a group already has is an
    error that names both files. Adding the same folder twice does nothing.
    """
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise ConfigError(
            f"Config folder {folder} does not exist (expected <folder>/<group>/<name>.yaml and <folder>/recipes/<name>.yaml)"
        )
    if origin is None:
        origin = registry.current_origin() or f"local ({folder})"
    if any(s.cards == folder for s in _CONFIG_SOURCES):
        return
    new = ConfigSource(folder, folder / CONFIG_GROUP_RECIPES, origin)
    existing = [builtin_source(), *_CONFIG_SOURCES]
    for group in new.groups():
        for name, file in new.options(group).items():
            for source in existing:
                other = source.options(group).get(name)
                if other is not None:
                    what = "recipe" if group == "recipe" else f"{group} card"
                    raise ConfigError(
                        f"{what} {name!r} is provided twice: by {source.origin} ({other}) and by {origin} ({file}). Rename one of them."
                    )
    _CONFIG_SOURCES.append(new)


def config_package(path: Path) -> str | None:
    """The `# @package` directive of a YAML file's header, if any (e.g. `_global_`)."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.startswith("#"):
                break
            match = re.match(r"#\s*@package\s+(\S+)", line)
            if match:
                return match.group(1)
    return None
