"""MkDocs hook: write the Recipes catalogue and the Components reference from the code, on every build.

The pages are generated from `recipes/` (and the recipes of installed plugins) and from the
component registry, so they cannot drift from what `latentreason list` shows. Nothing is written
to `docs/`: the pages exist only in the built site. A page may also hold `<!-- schedule: CORE -->`,
which becomes an SVG diagram of that core's schedule in every recipe that uses it (which updates
carry gradient under each estimator, which field the heads read), drawn from the objects.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
from pathlib import Path

os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")

from mkdocs.structure.files import File  # noqa: E402

KIND_TITLES = {
    "core": "Cores",
    "grad": "Gradient estimators",
    "halt": "Halting policies",
    "task": "Tasks",
    "optim": "Optimizers",
    "infer": "Inference strategies",
    "block": "Blocks",
}
KIND_PAGES = {
    "core": "cores.md",
    "grad": "estimators.md",
    "halt": "halting.md",
    "infer": "inference.md",
    "block": "blocks.md",
}


def anchor(kind: str, name: str) -> str:
    return f"{kind}-{name}".replace("_", "-")


def _code(text: str, language: str = "yaml") -> str:
    return f"```{language}\n{text.rstrip()}\n```\n"


def _signature_table(factory) -> str:
    rows = ["| key | default | type |", "|---|---|---|"]
    for name, p in inspect.signature(factory).parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or name == "self":
            continue
        default = "*required*" if p.default is p.empty else f"`{p.default!r}`"
        annotation = (
            ""
            if p.annotation is p.empty
            else (
                p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", str(p.annotation))
            )
        )
        rows.append(f"| `{name}` | {default} | `{annotation}` |" if annotation else f"| `{name}` | {default} | |")
    return "\n".join(rows) + "\n"


def components_page() -> str:
    from latentreason import catalogue, registry

    lines = [
        "# Components reference",
        "",
        "Every registered component, generated from the registry when the site is built (the same",
        "list as `latentreason list`). Pick one with `<kind>=<name>` on the command line or in a recipe;",
        "its **card** (`registry/<kind>/<name>.yaml`, or a plugin's `conf/<kind>/<name>.yaml`) gives the",
        "defaults of the keys below, and every key can be overridden (`halt.max_steps=8`).",
        "Keys the framework passes itself (e.g. `hidden_size` of a halting policy, `seq_len` of a core)",
        "are listed but are not set in cards.",
        "",
    ]
    for kind in registry.KINDS:
        entries = registry.entries(kind)
        lines += [f"## {KIND_TITLES.get(kind, kind.title())}", ""]
        if kind in KIND_PAGES:
            lines += [f"How they work: [{KIND_TITLES[kind]}]({KIND_PAGES[kind]}).", ""]
        for entry in entries:
            lines += [f"### `{entry.name}` {{#{anchor(kind, entry.name)}}}", ""]
            lines += [
                f"`{kind}={entry.name}` · origin: **{entry.origin}** · `{entry.factory.__module__}.{entry.factory.__qualname__}`",
                "",
            ]
            doc = inspect.getdoc(entry.factory) or ""
            module_doc = inspect.getdoc(inspect.getmodule(entry.factory)) or ""
            lines += [doc, ""]
            if module_doc and module_doc != doc:
                lines += ['??? note "Details (module documentation)"', ""]
                lines += ["    " + line if line else "" for line in module_doc.splitlines()]
                lines += [""]
            lines += [_signature_table(entry.factory), ""]
            card = catalogue.config_options(kind).get(entry.name)
            if card is not None:
                lines += [f"Card (origin {card[1]}):", "", _code(card[0].read_text()), ""]
            else:
                lines += ["This component has no card: set every required key on the command line or in a recipe.", ""]
    return "\n".join(lines)


def recipes_page() -> str:
    from latentreason import catalogue
    from latentreason.config import load_config

    lines = [
        "# Recipes catalogue",
        "",
        "Every recipe, generated from `recipes/` (and from installed plugins) when the site is built.",
        "Run one with `latentreason run recipe=<name>`; `preset=cpu` picks its small CPU preset (the",
        "default on a machine without a GPU), `preset=paper` the configuration as written. See",
        "[Configs, recipes and presets](configs.md) for how a run's config is composed.",
        "",
        "| recipe | core | gradient | halting | task | origin |",
        "|---|---|---|---|---|---|",
    ]
    details = []
    for name, (path, origin) in catalogue.config_options("recipe").items():
        text = path.read_text()
        summary = text.splitlines()[0].lstrip("# ").strip() if text else ""
        config = load_config([f"recipe={name}", "preset=paper"])
        parts = {k: config[k].name for k in ("core", "grad", "halt", "task")}
        cells = " | ".join(f"[`{v}`](components.md#{anchor(k, v)})" for k, v in parts.items())
        lines.append(f"| [`{name}`](#{anchor('recipe', name)}) | {cells} | {origin} |")
        presets = list((config.get("presets") or {}).keys())
        details += [
            f"## `{name}` {{#{anchor('recipe', name)}}}",
            "",
            summary,
            "",
            f"```bash\nlatentreason run recipe={name}\n```",
            "",
            f"Origin: **{origin}** · presets: paper{''.join(', ' + p for p in presets)} · "
            f"`{config.core.name}` core, `{config.grad.name}` gradient, `{config.halt.name}` halting "
            f"(at most {config.halt.get('max_steps', 1)} segments), `{config.task.name}` task.",
            "",
            '??? note "Recipe file"',
            "",
            *("    " + line if line else "" for line in _code(text).splitlines()),
            "",
        ]
    return "\n".join(lines + [""] + details)


def ponder_page() -> str:
    """The example plugin's README, as a page (its link back to the project goes to the home page)."""
    readme = REPO / "plugins" / "latentreason-ponder" / "README.md"
    return readme.read_text().replace("](../../README.md)", "](index.md)")


@functools.cache
def recipe_parts() -> tuple:
    """(recipe, core config, grad config) of every recipe at its paper preset."""
    from omegaconf import OmegaConf

    from latentreason import catalogue
    from latentreason.config import load_config

    out = []
    for name in catalogue.config_options("recipe"):
        config = load_config([f"recipe={name}", "preset=paper"])
        out.append(
            (name, OmegaConf.to_container(config.core, resolve=True), OmegaConf.to_container(config.grad, resolve=True))
        )
    return tuple(out)


def estimator_label(grad: dict) -> str:
    extra = ", ".join(f"{k}={'null (all updates)' if v is None else v}" for k, v in grad.items() if k != "name")
    return f"{grad['name']}" + (f" ({extra})" if extra else "")


def schedule_diagrams(core_name: str) -> str:
    """The schedule of `core_name` in each recipe using it (recipes with the same schedule share one picture),
    with a row for each recipe's estimator and for each estimator's card defaults."""
    import yaml

    from latentreason import catalogue, registry
    from latentreason.analysis.schedule_diagram import schedule_svg, small_core

    defaults = [yaml.safe_load(path.read_text()) for path, _ in catalogue.config_options("grad").values()]
    groups: dict = {}
    for recipe, core_config, grad in recipe_parts():
        if core_config["name"] != core_name:
            continue
        core = small_core(core_config)
        key = tuple((u.name, u.writes) for u in core.schedule())
        entry = groups.setdefault(key, {"core": core, "recipes": [], "grads": {}})
        entry["recipes"].append(recipe)
        entry["grads"].setdefault(estimator_label(grad), (grad, []))[1].append(recipe)
    if not groups:
        return f"*(no recipe uses the `{core_name}` core)*"
    blocks = []
    for entry in groups.values():
        rows = [(label, registry.build("grad", grad)) for label, (grad, _) in entry["grads"].items()]
        for grad in defaults:
            if estimator_label(grad) not in entry["grads"]:
                rows.append((estimator_label(grad), registry.build("grad", grad)))
        used = "; ".join(
            f"`{label}` in {', '.join(f'`{r}`' for r in recipes)}" for label, (_, recipes) in entry["grads"].items()
        )
        svg = schedule_svg(entry["core"], rows)
        blocks.append(
            f"One segment of `{core_name}` as configured in {', '.join(f'`{r}`' for r in entry['recipes'])} "
            f"(paper configuration), under each estimator (the recipes use {used}):\n\n"
            f'<div class="schedule-diagram" style="overflow-x:auto">{svg}</div>\n'
        )
    return "\n".join(blocks)


SCHEDULE = re.compile(r"<!-- schedule: ([A-Za-z0-9_]+) -->")


def on_page_markdown(markdown, page, config, files):
    return SCHEDULE.sub(lambda m: schedule_diagrams(m.group(1)), markdown)


REPO = Path(__file__).resolve().parents[1]
GENERATED = {"recipes.md": recipes_page, "components.md": components_page, "ponder.md": ponder_page}


def on_files(files, config):
    for uri, make in GENERATED.items():
        existing = files.get_file_from_path(uri)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, uri, content=make()))
    return files
