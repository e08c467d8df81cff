"""Compose a run's config with Hydra: the primary config, the component cards, a recipe, a preset.

`registry/` holds the primary config and one card per component, grouped by kind; `recipes/` holds
recipes, which Hydra sees as the `recipe` group. A recipe may declare presets (named lists of
overrides, e.g. a small `cpu` one); `preset=auto` picks `cpu` on a machine without a GPU. A recipe's
`paper_data` names the paper's datasets, which `preset=paper` uses when they are on this machine. The
order of precedence is: card < recipe < preset < command line.
"""

from __future__ import annotations

import torch
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import DictConfig, OmegaConf

from latentreason import catalogue
from latentreason.datasets import paper_overrides
from latentreason.errors import ConfigError
from latentreason.registry import close_matches

_stored: set[tuple[str, str]] = set()


def _store_recipes() -> None:
    """Put what Hydra cannot find in the primary config folder into its ConfigStore.

    Every recipe becomes an option of the group `recipe` (global package); the cards of plugins
    and of `add_config_dir` folders become options of their group (`halt=ponder`), with the package
    their `# @package` header names (their group by default).
    """
    store = ConfigStore.instance()
    for source in catalogue.config_sources():
        for group in source.groups():
            if group != "recipe" and source.origin == "built-in":
                continue  # the built-in cards are files of the primary config folder
            for name, path in source.options(group).items():
                if (group, name) in _stored:
                    continue
                package = "_global_" if group == "recipe" else catalogue.config_package(path)
                store.store(group=group, name=name, node=OmegaConf.load(path), package=package)
                _stored.add((group, name))


def _compose(overrides: list[str]) -> DictConfig:
    _store_recipes()
    try:
        with initialize_config_dir(config_dir=str(catalogue.cards_dir()), version_base=None):
            return compose(config_name="config", overrides=overrides)
    except (ConfigCompositionException, MissingConfigException) as error:
        raise ConfigError(_explain(error, overrides)) from None


def _explain(error: Exception, overrides: list[str]) -> str:
    """Turn Hydra's composition errors into one line that names the bad value and its close matches."""
    cause = error if str(error).strip() else (error.__cause__ or error)
    message = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        options = group_options(key)
        if options is not None and value not in options:
            return f"Unknown {key} {value!r}. Available: {', '.join(options)}.{close_matches(value, options)}"
        if "Could not override" in message and f"'{key}'" in message:
            parent, _, leaf = key.rpartition(".")
            siblings = _keys_at(parent, [o for o in overrides if o != override])
            hint = close_matches(leaf, siblings) if siblings else ""
            return f"Unknown config key {key!r}.{hint} Use +{key}=... only to add a new key on purpose."
    return message


def _keys_at(path: str, overrides: list[str]) -> list[str]:
    """The keys of the config node at `path` (for suggesting a misspelt key), or [] if unknown."""
    try:
        with initialize_config_dir(config_dir=str(catalogue.cards_dir()), version_base=None):
            node = OmegaConf.select(compose(config_name="config", overrides=overrides), path) if path else None
    except Exception:  # noqa: BLE001 - only a hint: any failure means no suggestion
        return []
    return list(node.keys()) if isinstance(node, DictConfig) else []


def group_options(group: str) -> list[str] | None:
    """The options of a config group (built-in and added ones), or None if there is no such group."""
    options = sorted(catalogue.config_options(group))
    return options or (None if group != "recipe" else [])


def resolve_preset(requested: str, presets: dict) -> str:
    if requested == "auto":
        return "cpu" if not torch.cuda.is_available() and "cpu" in presets else "paper"
    if requested != "paper" and requested not in presets:
        raise ConfigError(
            f"Unknown preset {requested!r}; this recipe has: paper, {', '.join(presets)}.{close_matches(requested, presets)}"
        )
    return requested


def load_config(overrides: list[str]) -> DictConfig:
    """The full config for `latentreason run <overrides>`, with the recipe's preset applied."""
    first = _compose(overrides)
    presets = OmegaConf.to_container(first.get("presets") or {}, resolve=False)
    preset = resolve_preset(str(first.preset), presets)
    preset_overrides = list(presets.get(preset) or []) + paper_overrides(first, preset)
    try:
        config = _compose(preset_overrides + overrides) if preset_overrides else first
    except ConfigError as error:
        # A preset sized for the recipe's own parts may not fit a part swapped in on the command line.
        bad = [o for o in preset_overrides if o.partition("=")[0] in str(error)]
        if not bad:
            raise
        raise ConfigError(
            f"The {preset} preset of this recipe sets {', '.join(bad)}, which does not fit your overrides ({error}). "
            f"Use the recipe made for that part (latentreason list recipe), pass preset=paper, or give its settings yourself."
        ) from None
    with_preset = OmegaConf.to_container(config, resolve=False)
    with_preset["preset"] = preset
    return OmegaConf.create(with_preset)
