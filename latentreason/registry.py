"""The component registry: register a part under a kind and a name, list it, build it from a config.

Config files name components by their registered name only (`name: hrm`), never by an import path,
so a YAML file cannot make the framework import and run arbitrary code.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from latentreason.errors import ConfigError

KINDS = ("core", "grad", "halt", "task")


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    factory: Callable[..., Any]
    origin: str  # "built-in" or "<plugin> <version>"

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.factory) or ""
        return doc.splitlines()[0] if doc else ""


_REGISTRY: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
_current_origin = "built-in"


def close_matches(word: str, choices) -> str:
    """A ' Did you mean ...?' hint, or an empty string."""
    matches = difflib.get_close_matches(str(word), [str(c) for c in choices], n=3, cutoff=0.5)
    return f" Did you mean {' or '.join(repr(m) for m in matches)}?" if matches else ""


def register(kind: str, name: str | None = None):
    """Decorator: `@register("core", "hrm")` makes a class or function buildable from config."""
    if kind not in _REGISTRY:
        raise ConfigError(f"Unknown component kind {kind!r}; kinds are {', '.join(_REGISTRY)}.{close_matches(kind, _REGISTRY)}")

    def decorator(factory):
        key = name or factory.__name__
        if not factory.__module__.startswith("latentreason."):
            load_builtins()  # a plugin's or a notebook's component: clashes with built-ins are caught now
        origin = _origin_of(factory)
        existing = _REGISTRY[kind].get(key)
        if existing is not None and existing.factory is not factory:
            raise ConfigError(
                f"{kind} {key!r} is registered twice: by {existing.origin} ({_where(existing.factory)}) "
                f"and by {origin} ({_where(factory)}). Rename one of them."
            )
        _REGISTRY[kind][key] = Entry(kind, key, factory, origin)
        return factory

    return decorator


def _where(factory) -> str:
    return f"{factory.__module__}.{factory.__qualname__}"


@functools.cache
def _distributions() -> dict:
    """importlib's map of top-level modules to distributions: a scan of site-packages, done once."""
    from importlib.metadata import packages_distributions

    return packages_distributions()


def _origin_of(factory) -> str:
    """Where a component comes from: a plugin while it loads, "built-in", an installed distribution, or the user's module."""
    if _current_origin != "built-in" or factory.__module__.startswith("latentreason."):
        return _current_origin
    from importlib.metadata import version

    top = factory.__module__.split(".")[0]
    for dist in _distributions().get(top, []):
        return f"{dist} {version(dist)}"
    return f"local ({factory.__module__})"


def get(kind: str, name: str) -> Entry:
    load_builtins()
    if kind not in _REGISTRY:
        raise ConfigError(f"Unknown component kind {kind!r}; kinds are {', '.join(_REGISTRY)}.{close_matches(kind, _REGISTRY)}")
    try:
        return _REGISTRY[kind][name]
    except KeyError:
        known = sorted(_REGISTRY[kind])
        raise ConfigError(
            f"No {kind} named {name!r}. Registered {kind}s: {', '.join(known) or 'none'}.{close_matches(name, known)}"
        ) from None


def entries(kind: str | None = None) -> list[Entry]:
    load_builtins()
    kinds = [kind] if kind else list(_REGISTRY)
    return [e for k in kinds for _, e in sorted(_REGISTRY[k].items())]


def check_arguments(factory: Callable, params: Mapping[str, Any], what: str, provided: tuple = ()) -> None:
    """Name every unknown or missing key, with close matches, before anything is built."""
    signature = inspect.signature(factory)
    accepted = {n: p for n, p in signature.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    problems = []
    if not takes_any:
        for key in params:
            if key not in accepted:
                problems.append(f"unknown key {key!r}.{close_matches(key, accepted)}")
    for n, p in accepted.items():
        if p.default is p.empty and n not in params and n not in provided:
            problems.append(f"missing required key {n!r}")
        elif n in params and not _fits(params[n], p.annotation):
            problems.append(f"{n}={params[n]!r} should be {_annotation_text(p.annotation)}")
    if problems:
        keys = ", ".join(n for n in accepted if n not in provided)
        raise ConfigError(f"{what}: " + "; ".join(problems) + f" (its keys are: {keys})")


_SIMPLE_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _annotation_text(annotation) -> str:
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))


def _fits(value: Any, annotation) -> bool:
    """Check a config value against a simple annotation (int, float, bool, str, optionally `| None`)."""
    text = _annotation_text(annotation).replace(" ", "")
    options = text.split("|")
    if value is None:
        return "None" in options or text == "_empty"
    allowed = [t for o in options for t in _SIMPLE_TYPES.get(o, ())]
    if not allowed or not all(o in _SIMPLE_TYPES or o == "None" for o in options):
        return True  # not a simple annotation: let the component check it
    if isinstance(value, bool) and bool not in allowed:
        return False
    return isinstance(value, tuple(allowed))


def build(kind: str, config: Mapping[str, Any], **context: Any) -> Any:
    """Build the component a config card describes: `{name: hrm, hidden_size: 512, ...}`.

    `context` carries what the framework knows and the card should not repeat (e.g. the task's
    sequence length); only the context keys the factory accepts are passed.
    """
    params = dict(config)
    if "name" not in params:
        raise ConfigError(f"The {kind} config has no 'name' key; set {kind}.name to one of: {', '.join(sorted(_REGISTRY.get(kind, {})))}")
    name = params.pop("name")
    entry = get(kind, name)
    accepted = inspect.signature(entry.factory).parameters
    passed = {k: v for k, v in context.items() if k in accepted and k not in params}
    check_arguments(entry.factory, params, f"{kind} {name!r}", provided=tuple(passed))
    return entry.factory(**params, **passed)


_builtins_loaded = False


def load_builtins() -> None:
    """Import the built-in component modules once, so that their @register decorators run; then the plugins."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    import importlib

    for module in ("cores.hrm", "cores.looped", "cores.trm", "cores.latent_diffusion", "grad.one_step", "grad.tbptt", "halt.q_act", "halt.fixed", "halt.halt_only", "tasks.sudoku", "tasks.seq2seq", "tasks.maze", "tasks.arc"):
        importlib.import_module(f"latentreason.{module}")
    from latentreason.plugins import load_plugins

    load_plugins()
