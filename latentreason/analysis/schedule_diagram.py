"""An SVG picture of a core's schedule: which updates run, which carry gradient under each estimator,
and which state field the output and halting heads read. Drawn from the objects themselves (the
docs build calls it for every recipe), so the pictures cannot drift from the code. No matplotlib.
"""

from __future__ import annotations

import html
import inspect

import torch

from latentreason import registry
from latentreason.cores.base import Core
from latentreason.grad.base import GradientEstimator

FIELD_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
SMALL = {"hidden_size": 8, "num_heads": 1, "mlp_multiple": 8, "expansion": 1.0}


def small_core(core_config: dict, seq_len: int = 4) -> Core:
    """The core a config card names, with its schedule settings but tiny networks (the schedule is all we draw).

    First tried without building networks at all (the settings set as attributes, which is all the
    built-in cores' `schedule` and `readout` read): building one imports the initialisers, slow
    for a docs build. A core whose schedule needs more is built for real, small.
    """
    config = dict(core_config)
    factory = registry.get("core", config["name"]).factory
    try:
        core = factory.__new__(factory)
        torch.nn.Module.__init__(core)
        for key, value in config.items():
            if key != "name":
                object.__setattr__(core, key, value)
        core.hidden_size = SMALL["hidden_size"]
        core.schedule(), readout_field(core)
        return core
    except Exception:  # noqa: BLE001 - any failure: build the core properly
        pass
    keys = inspect.signature(factory).parameters
    for key in keys:
        if key in SMALL:
            config[key] = SMALL[key]
        elif key.endswith("layers"):
            config[key] = 1
    return registry.build("core", config, seq_len=seq_len, compile=False)


def readout_field(core: Core) -> str:
    """Which state field `core.readout` returns (the heads read it; the halting head at position 0)."""
    state = {f: torch.zeros(1, 1, core.hidden_size) for f in core.state_fields}
    out = core.readout(state)
    return next((f for f, v in state.items() if v is out), "?")


def schedule_svg(core: Core, estimators: list[tuple[str, GradientEstimator]]) -> str:
    """One row per estimator: the segment's updates in order (filled: with gradient), then the heads."""
    schedule = core.schedule()
    fields = list(core.state_fields)
    colours = {f: FIELD_COLOURS[i % len(FIELD_COLOURS)] for i, f in enumerate(fields)}
    box, gap, row_height = 30, 4, 40
    label_width = 16 + 7 * max(len(label) for label, _ in estimators)
    heads_x = label_width + len(schedule) * (box + gap) + 16
    width, height = max(heads_x + 200, 520), 44 + row_height * len(estimators) + 40
    read = readout_field(core)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="sans-serif" font-size="12" role="img" '
        f'aria-label="schedule of the {html.escape(core_name(core))} core">',
        f'<text x="{label_width}" y="16">one segment: {len(schedule)} updates, left to right</text>',
    ]
    for row, (label, estimator) in enumerate(estimators):
        y = 32 + row * row_height
        graded = estimator.graded(schedule)
        parts.append(f'<text x="0" y="{y + 20}">{html.escape(label)}</text>')
        for i, update in enumerate(schedule):
            x = label_width + i * (box + gap)
            colour = colours.get(update.writes, "#555")
            fill = colour if i in graded else "#ffffff"
            text = "#ffffff" if i in graded else colour
            parts.append(
                f'<rect x="{x}" y="{y}" width="{box}" height="{box}" rx="4" fill="{fill}" '
                f'stroke="{colour}" stroke-width="2">'
                f"<title>update {i + 1}: {html.escape(update.name)} writes {html.escape(update.writes)}"
                f"{' (with gradient)' if i in graded else ' (no gradient)'}</title></rect>"
            )
            parts.append(
                f'<text x="{x + box / 2}" y="{y + 20}" text-anchor="middle" fill="{text}" font-weight="bold">'
                f"{html.escape(update.name[:3])}</text>"
            )
        end = label_width + len(schedule) * (box + gap)
        parts.append(
            f'<line x1="{end}" y1="{y + box / 2}" x2="{heads_x - 4}" y2="{y + box / 2}" '
            'stroke="#444" marker-end="url(#arrow)"/>'
        )
        parts.append(f'<text x="{heads_x}" y="{y + 12}">heads read {html.escape(read)}</text>')
        parts.append(f'<text x="{heads_x}" y="{y + 27}" fill="#555">(halting head: {html.escape(read)}[0])</text>')
    legend_y = 32 + len(estimators) * row_height + 12
    parts.append(
        f'<text x="0" y="{legend_y}" fill="#333">filled: runs with gradient · outlined: runs under no_grad · '
        f"colour: the state field the update writes</text>"
    )
    x = 0
    for f in fields:  # one colour swatch per state field
        parts.append(
            f'<rect x="{x}" y="{legend_y + 8}" width="10" height="10" fill="{colours[f]}"/>'
            f'<text x="{x + 13}" y="{legend_y + 18}">{html.escape(f)}</text>'
        )
        x += 24 + 8 * len(f)
    parts.insert(
        1,
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="6" refY="3" orient="auto">'
        '<path d="M0,0 L6,3 L0,6 z" fill="#444"/></marker></defs>',
    )
    parts.append("</svg>")
    return "".join(parts)


def core_name(core: Core) -> str:
    return next((e.name for e in registry.entries("core") if e.factory is type(core)), type(core).__name__)
