"""Pictures of grids: coloured in the terminal (rich) and as PNG files (Pillow), for Sudoku, Maze and ARC.

A task turns tokens into a `Grid` (cell values plus a style); `show` prints panels of grids side
by side in the terminal, `save_png` draws the same panels into one image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.columns import Columns
from rich.panel import Panel as RichPanel
from rich.text import Text

from latentreason.console import console

# The ARC palette (colour 0..9) as the ARC-AGI web viewer draws it.
ARC_COLOURS = (
    "#000000",
    "#0074D9",
    "#FF4136",
    "#2ECC40",
    "#FFDC00",
    "#AAAAAA",
    "#F012BE",
    "#FF851B",
    "#7FDBFF",
    "#870C25",
)
# Maze ids 0..5: padding, wall, open, start, goal, path.
MAZE_COLOURS = ("#DDDDDD", "#333333", "#FFFFFF", "#2ECC40", "#FF4136", "#0074D9")
MAZE_CHARS = ("  ", "██", "  ", "S ", "G ", "o ")
DIGITS = "123456789ABCDEFG"


@dataclass
class Grid:
    """Cells of a grid and how to draw them: `digits` (0 = blank; `box` draws Sudoku boxes), `maze` (ids 0..5), `arc` (colours 0..9)."""

    cells: np.ndarray
    style: str
    box: int = 0


@dataclass
class Panel:
    title: str
    grid: Grid | None = None
    text: str = ""  # shown instead when there is no grid (e.g. a seq2seq output)


def terminal(grid: Grid) -> Text:
    out = Text()
    rows, cols = grid.cells.shape
    for r in range(rows):
        if r:
            out.append("\n")
            if grid.box and r % grid.box == 0:
                out.append("+".join(["-" * (2 * grid.box + 1)] * (cols // grid.box)) + "\n")
        for c in range(cols):
            value = int(grid.cells[r, c])
            if grid.style == "arc":
                out.append("  ", style=f"on {_cell_colour(grid, value)}")
            elif grid.style == "maze":
                colour = _cell_colour(grid, value)
                out.append(
                    MAZE_CHARS[value] if 0 <= value < len(MAZE_CHARS) else "? ",
                    style=f"bold {colour}" if value in (3, 4, 5) else colour,
                )
            else:
                if grid.box and c and c % grid.box == 0:
                    out.append("|")
                out.append(
                    " " + (DIGITS[value - 1] if 0 < value <= len(DIGITS) else "."), style="bold" if value else "dim"
                )
                if grid.box and (c + 1) % grid.box == 0:
                    out.append(" ")
    return out


def show(panels: list[Panel]) -> None:
    """Print the panels side by side (wrapping when the terminal is narrow)."""
    boxes = [
        RichPanel(terminal(p.grid) if p.grid is not None else Text(p.text), title=p.title, expand=False) for p in panels
    ]
    console.print(Columns(boxes))


def _cell_colour(grid: Grid, value: int) -> str:
    if grid.style == "arc":
        return ARC_COLOURS[value % 10]
    if grid.style == "maze":
        return MAZE_COLOURS[value] if 0 <= value < len(MAZE_COLOURS) else "#FF00FF"
    return "#FFFFFF"


def save_png(panels: list[Panel], path: str | Path, cell: int = 20) -> Path:
    """Draw the panels that hold a grid side by side, each under its title, into a PNG file."""
    from PIL import Image, ImageDraw, ImageFont

    from latentreason.errors import ConfigError

    grids = [p for p in panels if p.grid is not None]
    if not grids:
        raise ConfigError("This task's outputs are not grids, so there is nothing to draw; leave out png=.")
    font = ImageFont.load_default()
    title_h, gap = 18, cell
    widths = [max(p.grid.cells.shape[1] * cell, int(font.getlength(p.title)) + 4) for p in grids]
    height = max(p.grid.cells.shape[0] * cell for p in grids) + title_h + 2 * gap
    image = Image.new("RGB", (sum(widths) + gap * (len(grids) + 1), height), "white")
    draw = ImageDraw.Draw(image)
    x = gap
    for panel, panel_width in zip(grids, widths):
        grid = panel.grid
        rows, cols = grid.cells.shape
        draw.text((x, gap // 2), panel.title, fill="black", font=font)
        top = gap // 2 + title_h
        for r in range(rows):
            for c in range(cols):
                value = int(grid.cells[r, c])
                box = (x + c * cell, top + r * cell, x + (c + 1) * cell - 1, top + (r + 1) * cell - 1)
                draw.rectangle(box, fill=_cell_colour(grid, value), outline="#888888" if grid.style != "maze" else None)
                if grid.style == "digits" and 0 < value <= len(DIGITS):
                    draw.text((box[0] + cell // 3, box[1] + cell // 5), DIGITS[value - 1], fill="black", font=font)
        if grid.box:  # thick lines between Sudoku boxes
            for k in range(0, rows + 1, grid.box):
                draw.line((x, top + k * cell, x + cols * cell, top + k * cell), fill="black", width=2)
                draw.line((x + k * cell, top, x + k * cell, top + rows * cell), fill="black", width=2)
        x += panel_width + gap
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
