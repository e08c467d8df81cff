"""The component registry: register a part under a kind and a name, list it, build it from a config.

Config files name components by their registered name only (`name: hrm`), never by an import path,
so a YAML file cannot make the framework import and run arbitrary code.

A leaf module: it imports nothing of the package but its errors. Which modules fill it (the
built-in components, then the plugins) is `latentreason.catalogue`'s business; the package hands
that step to `set_populate`, and the first lookup runs it.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from latentreason.errors import ConfigError

# The kinds of part, as config groups name them (`core=hrm`, `halt=q_act`, `optim=adamw`, `infer=augment_vote`,
# `block=hrm`).
KINDS = ("core", "grad", "halt", "task", "optim", "infer", "block")


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    factory: Callable[..., Any]
    origin: str  # "built-in", "<plugin> <version>", or "local (<module>)"

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.factory) or ""
        return doc.splitlines()[0] if doc else ""


_entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
_origin: str | None = None  # set while a plugin loads
_populate: Callable[[], None] | None = None


def set_populate(step: Callable[[], None]) -> None:
    """Name the step that fills the registry (import built-ins, load plugins); it runs once, at the first lookup."""
    global _populate
    _populate = step


def populate() -> None:
    """Run the populate step now, if it has not run yet."""
    global _populate
    step, _populate = _populate, None  # cleared first: plugins register while it runs
    if step is not None:
        step()


def current_origin() -> str | None:
    """The plugin loading now, if any."""
    return _origin


@contextmanager
def origin(label: str) -> Iterator[None]:
    """Components registered inside this block are listed as coming from `label` (a plugin and its version)."""
    global _origin
    previous, _origin = _origin, label
    try:
        yield
    finally:
        _origin = previous


def close_matches(word: str, choices) -> str:
    """A ' Did you mean ...?' hint, or an empty string."""
    matches = difflib.get_close_matches(str(word), [str(c) for c in choices], n=3, cutoff=0.5)
    return f" Did you mean {' or '.join(repr(m) for m in matches)}?" if matches else ""


def _check_kind(kind: str) -> None:
    if kind not in _entries:
        raise ConfigError(f"Unknown component kind {kind!r}; kinds are {', '.join(KINDS)}.{close_matches(kind, KINDS)}")


def register(kind: str, name: str | None = None):
    """Decorator: `@register("core", "hrm")` makes a class or function buildable from config."""
    _check_kind(kind)

    def decorator(factory):
        key = name or factory.__name__
        if not factory.__module__.startswith("latentreason."):
            populate()  # a plugin's or a notebook's component: clashes with built-ins are caught now
        where = _origin_of(factory)
        existing = _entries[kind].get(key)
        if existing is not None and existing.factory is not factory:
            raise ConfigError(
                f"{kind} {key!r} is registered twice: by {existing.origin} ({_where(existing.factory)}) "
                f"and by {where} ({_where(factory)}). Rename one of them."
            )
        _entries[kind][key] = Entry(kind, key, factory, where)
        return factory

    return decorator


def unregister(kind: str, name: str) -> None:
    """Remove a component (a plugin that failed half-way, a test's own part)."""
    _entries[kind].pop(name, None)


def _where(factory) -> str:
    return f"{factory.__module__}.{factory.__qualname__}"


@functools.cache
def _distributions() -> dict:
    """importlib's map of top-level modules to distributions: a scan of site-packages, done once."""
    from importlib.metadata import packages_distributions

    return packages_distributions()


def _origin_of(factory) -> str:
    """Where a component comes from: the plugin loading now, "built-in", an installed distribution, or the user's module."""
    if _origin is not None:
        return _origin
    if factory.__module__.startswith("latentreason."):
        return "built-in"
    from importlib.metadata import version

    top = factory.__module__.split(".")[0]
    for dist in _distributions().get(top, []):
        return f"{dist} {version(dist)}"
    return f"local ({factory.__module__})"


def get(kind: str, name: str) -> Entry:
    populate()
    _check_kind(kind)
    try:
        return _entries[kind][name]
    except KeyError:
        known = sorted(_entries[kind])
        raise ConfigError(
            f"No {kind} named {name!r}. Registered {kind}s: {', '.join(known) or 'none'}.{close_matches(name, known)}"
        ) from None


def entries(kind: str | None = None) -> list[Entry]:
    populate()
    kinds = [kind] if kind else list(_entries)
    return [e for k in kinds for _, e in sorted(_entries[k].items())]


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
        raise ConfigError(
            f"The {kind} config has no 'name' key; set {kind}.name to one of: {', '.join(e.name for e in entries(kind))}"
        )
    name = params.pop("name")
    entry = get(kind, name)
    accepted = inspect.signature(entry.factory).parameters
    passed = {k: v for k, v in context.items() if k in accepted and k not in params}
    check_arguments(entry.factory, params, f"{kind} {name!r}", provided=tuple(passed))
    return entry.factory(**params, **passed)
