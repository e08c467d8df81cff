"""From the command line to strategy configs: `infer=a,b infer.key=value infer.inner=c infer.inner.key=value`.

A strategy's card (`registry/infer/<name>.yaml`, or a plugin's `conf/infer/<name>.yaml`) gives its
defaults; the options override them. With several strategies (`infer=single,augment_vote`), an
option goes to every strategy that has that key, so one command compares them on the same data.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import yaml

from latentreason.errors import ConfigError


def card(name: str) -> dict[str, Any]:
    """The defaults of a strategy's card, `{name: ...}` alone when it has none."""
    from latentreason import catalogue, registry

    registry.get("infer", name)  # an unknown name is one clear line, with close matches
    found = catalogue.config_options("infer").get(name)
    values = yaml.safe_load(found[0].read_text()) if found is not None else None
    return {**(values or {}), "name": name}


def with_card(config: Mapping[str, Any] | str) -> dict[str, Any]:
    """A strategy config over its card's defaults; an `inner` strategy gets its own card's too."""
    config = {"name": config} if isinstance(config, str) else dict(config)
    if "name" not in config:
        raise ConfigError("An infer config has no 'name'; set infer=NAME (see `latentreason list infer`)")
    defaults = card(str(config["name"]))
    merged = {**defaults, **config}
    inner, default_inner = _as_config(config.get("inner")), _as_config(defaults.get("inner"))
    if (
        inner is not None
        and default_inner is not None
        and inner.get("name", default_inner["name"]) == default_inner["name"]
    ):
        merged["inner"] = {**default_inner, **inner}  # infer.inner.sigma=... keeps the card's inner strategy
    if isinstance(merged.get("inner"), (str, Mapping)):
        merged["inner"] = with_card(merged["inner"])
    return merged


def _as_config(value: Any) -> dict[str, Any] | None:
    return {"name": value} if isinstance(value, str) else dict(value) if isinstance(value, Mapping) else None


def _value(text: str) -> Any:
    """A command-line value as YAML reads it: 8, 0.1, true, null, [a.ckpt, b.ckpt], or a string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _accepts(name: str, key: str) -> bool:
    from latentreason import registry

    parameters = inspect.signature(registry.get("infer", name).factory).parameters
    return key in parameters or any(p.kind == p.VAR_KEYWORD for p in parameters.values())


def parse(args: list[str], default: Mapping[str, Any] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The strategies `infer=`/`infer.*=` ask for (default: `default`, else single), and the other arguments."""
    names, options, rest = None, {}, []
    for arg in args:
        key, eq, value = arg.partition("=")
        if eq and key == "infer":
            names = [n.strip() for n in value.split(",") if n.strip()]
            if not names:
                raise ConfigError(
                    "infer= names no strategy; e.g. infer=single or infer=single,augment_vote (see "
                    "`latentreason list infer`)"
                )
        elif eq and key.startswith("infer."):
            options[key.removeprefix("infer.")] = _value(value)
        else:
            rest.append(arg)
    if names is None:
        configs = [dict(default)] if default is not None else [{"name": "single"}]
    else:
        configs = [{"name": name} for name in names]
    for config in configs:
        card(config["name"])  # check the names before the options
    for dotted, value in options.items():
        path = dotted.split(".")
        takers = [config for config in configs if _accepts(config["name"], path[0])]
        if not takers:
            from latentreason.registry import close_matches

            keys = sorted(
                {k for c in configs for k in inspect.signature(_factory(c["name"])).parameters if k != "trained"}
            )
            names = ", ".join(c["name"] for c in configs)
            raise ConfigError(
                f"infer.{dotted}: no strategy of {names} has the key {path[0]!r} (keys: "
                f"{', '.join(keys)}).{close_matches(path[0], keys)}"
            )
        for config in takers:
            _set(config, path, value)
    return [with_card(c) for c in configs], rest


def _set(node: dict[str, Any], path: list[str], value: Any) -> None:
    """Set a dotted key; a strategy given by name (`inner=noise_select`) becomes `{name: noise_select}`."""
    for part in path[:-1]:
        child = node.get(part)
        node[part] = child = {"name": child} if isinstance(child, str) else (child if isinstance(child, dict) else {})
        node = child
    leaf = path[-1]
    if leaf == "inner" and isinstance(value, str):
        existing = node.get(leaf)
        node[leaf] = {**existing, "name": value} if isinstance(existing, dict) else {"name": value}
    else:
        node[leaf] = value


def _factory(name: str):
    from latentreason import registry

    return registry.get("infer", name).factory


def label(config: Mapping[str, Any]) -> str:
    """A short name for a table row: the strategy and the options that differ from its card."""
    defaults = with_card(str(config["name"]))
    parts = []
    for key, value in with_card(config).items():
        if key == "name" or defaults.get(key) == value:
            continue
        if key == "inner" and isinstance(value, Mapping):
            value = label(value)
        parts.append(f"{key}={value}")
    return config["name"] + (f" ({', '.join(parts)})" if parts else "")
