"""ARC-AGI tasks for latent-reasoning models: load, validate, augment, tokenise, decode.

Plain numpy, like sudoku_data, and following the HRM reference (dataset/build_arc_dataset.py)
so that its data and checkpoints line up with ours:

* A grid is a 2-D uint8 array of colours 0..9 with 1..30 rows and columns.
* Tokens: 0 PAD, 1 EOS, colour c is c + 2, so the vocabulary has 12 entries. A grid sits on a
  size x size canvas (30 in HRM) at an offset, (0, 0) unless translated; EOS tokens mark the row
  just below it and the column just right of it, where those lie inside the canvas.
* An augmentation is one of the 8 dihedral transforms plus a relabelling of colours 1..9 (black,
  0, is the background and stays), applied to every grid of a task.
* A prediction is read back as the largest top-left rectangle of colour tokens.

Positions in error messages are JSON indices, counted from 0: `train[2].output[3]` is row 3 of
the output grid of the third training pair, `train[2].output[3][5]` a cell of that row.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from latentreason.errors import DatasetFormatError
from latentreason.tasks.grids import dihedral, inverse_dihedral

MAX_SIZE = 30
PAD, EOS, COLOUR_OFFSET, VOCAB_SIZE = 0, 1, 2, 12
NUM_COLOURS = 10
NUM_TRANSFORMS = 8
RETRIES_FACTOR = 5  # HRM's augment_retries_factor: random draws allowed per wanted augmentation

PAIR_FORMAT = 'a list of {"input": grid, "output": grid} pairs, each grid a list of rows of colours 0..9'


# --------------------------------------------------------------------------------------------
# Tasks and loading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # eq=False: comparing lists of arrays with == would raise
class ArcTask:
    """One ARC task: demonstration pairs, and test pairs whose output is None when not known."""

    id: str
    train: list[tuple[np.ndarray, np.ndarray]]
    test: list[tuple[np.ndarray, np.ndarray | None]]

    def grids(self) -> Iterator[np.ndarray]:
        """Every known grid, in file order: train inputs and outputs, then test ones."""
        for inp, out in (*self.train, *self.test):
            yield inp
            if out is not None:
                yield out


def _kind(value: object) -> str:
    """How a JSON value reads in an error message."""
    if isinstance(value, bool):
        return f"the boolean {json.dumps(value)}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    return {list: "a list", dict: "an object", type(None): "null"}[type(value)]


def _parse_grid(raw: object, where: str) -> np.ndarray:
    """A validated uint8 grid from its JSON form, or a DatasetFormatError naming the bad spot."""
    if not isinstance(raw, list) or not raw:
        found = "an empty list" if raw == [] else _kind(raw)
        raise DatasetFormatError(f"{where} is {found}; write a grid as a list of 1..{MAX_SIZE} rows")
    for r, row in enumerate(raw):
        if not isinstance(row, list) or not row:
            found = "an empty row" if row == [] else _kind(row)
            raise DatasetFormatError(f"{where}[{r}] is {found}; write each row as a list of 1..{MAX_SIZE} colours 0..9")
    rows, cols = len(raw), len(raw[0])
    for r, row in enumerate(raw):
        if len(row) != cols:
            raise DatasetFormatError(
                f"{where}[{r}] has {len(row)} cells but row 0 has {cols}; make every row of a grid the same length"
            )
    if rows > MAX_SIZE or cols > MAX_SIZE:
        raise DatasetFormatError(
            f"{where} is {rows}x{cols}, larger than the ARC limit of {MAX_SIZE}x{MAX_SIZE}; shrink or drop the grid"
        )
    for r, row in enumerate(raw):
        for c, value in enumerate(row):
            if type(value) is not int or not 0 <= value < NUM_COLOURS:
                found = f"colour {value}" if type(value) is int else _kind(value)
                raise DatasetFormatError(f"{where}[{r}][{c}] is {found}; colours are whole numbers 0..9")
    return np.array(raw, dtype=np.uint8)


def _parse_task(raw: object, path: Path, task_id: str) -> ArcTask:
    where = f"{path}: task {task_id!r}"
    if not isinstance(raw, dict):
        raise DatasetFormatError(f'{where} is {_kind(raw)}; write a task as {{"train": [...], "test": [...]}}')
    splits = {}
    for split in ("train", "test"):
        if split not in raw:
            raise DatasetFormatError(f'{where} has no "{split}" key; give it "{split}": {PAIR_FORMAT}')
        pairs = raw[split]
        if not isinstance(pairs, list) or not pairs:
            found = "an empty list" if pairs == [] else _kind(pairs)
            raise DatasetFormatError(f'{where}: "{split}" is {found}; make it {PAIR_FORMAT}')
        parsed = []
        for i, pair in enumerate(pairs):
            at = f"{where}, {split}[{i}]"
            if not isinstance(pair, dict):
                raise DatasetFormatError(f'{at} is {_kind(pair)}; write each pair as {{"input": grid, "output": grid}}')
            needed = ("input", "output") if split == "train" else ("input",)  # test outputs may be unknown
            for key in needed:
                if key not in pair:
                    raise DatasetFormatError(f'{at} has no "{key}"; give every {split} pair an "{key}" grid')
            out = pair.get("output")
            parsed.append(
                (_parse_grid(pair["input"], f"{at}.input"), None if out is None else _parse_grid(out, f"{at}.output"))
            )
        splits[split] = parsed
    return ArcTask(str(task_id), splits["train"], splits["test"])


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DatasetFormatError(
            f"{path}:{error.lineno}:{error.colno}: not valid JSON ({error.msg}); fix the file there"
        ) from None
    except UnicodeDecodeError as error:
        raise DatasetFormatError(f"{path}: not UTF-8 text (byte {error.start}); save the file as UTF-8 JSON") from None


def _fill_solutions(tasks: dict[str, ArcTask], path: Path) -> dict[str, ArcTask]:
    """The tasks with test outputs taken from a solutions file {task_id: [output grid per test input]}."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise DatasetFormatError(f"{path} holds {_kind(data)}; a solutions file maps task ids to lists of output grids")
    filled = dict(tasks)
    for task_id, outputs in data.items():
        where = f"{path}: task {task_id!r}"
        if task_id not in tasks:
            raise DatasetFormatError(
                f"{where} is not among the {len(tasks)} loaded tasks; use the solutions file that belongs to these challenges"
            )
        task = tasks[task_id]
        if not isinstance(outputs, list) or len(outputs) != len(task.test):
            found = f"{len(outputs)} solutions" if isinstance(outputs, list) else _kind(outputs)
            raise DatasetFormatError(
                f"{where} has {found} but the task has {len(task.test)} test inputs; give one output grid per test input, in order"
            )
        test = []
        for i, ((inp, known), raw) in enumerate(zip(task.test, outputs)):
            out = _parse_grid(raw, f"{where}, solution[{i}]")
            if known is not None and not np.array_equal(known, out):
                raise DatasetFormatError(
                    f"{where}, solution[{i}] differs from the test[{i}].output already in the challenges; drop one of them"
                )
            test.append((inp, out))
        filled[task_id] = replace(task, test=test)
    return filled


def load_tasks(path: str | Path, solutions: str | Path | None = None) -> list[ArcTask]:
    """ARC tasks sorted by id, from a folder of `<task_id>.json` files or one combined JSON file.

    A combined file maps task ids to tasks (`arc-agi_*_challenges.json`); a single task file is
    read as one task named after the file. `solutions` (`arc-agi_*_solutions.json`) fills in
    the test outputs. Everything is validated up front, so bad data fails here with its place.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise DatasetFormatError(
                f"{path}: the folder holds no .json files; point to a folder of <task_id>.json files "
                "or to a combined challenges .json file"
            )
        tasks = {file.stem: _parse_task(_read_json(file), file, file.stem) for file in files}
    elif path.is_file():
        data = _read_json(path)
        if isinstance(data, dict) and isinstance(data.get("train"), list):
            tasks = {path.stem: _parse_task(data, path, path.stem)}
        elif isinstance(data, dict) and data:
            tasks = {str(task_id): _parse_task(raw, path, str(task_id)) for task_id, raw in data.items()}
        else:
            raise DatasetFormatError(
                f"{path} holds {'an empty object' if data == {} else _kind(data)}; "
                "a combined challenges file maps task ids to tasks"
            )
    else:
        raise FileNotFoundError(f"ARC data not found: {path}")
    if solutions is not None:
        tasks = _fill_solutions(tasks, Path(solutions))
    return [tasks[task_id] for task_id in sorted(tasks)]


def fits(task: ArcTask, size: int) -> bool:
    """Whether every known grid of the task fits on a size x size canvas (to pick small tasks)."""
    return all(max(grid.shape) <= size for grid in task.grids())


# --------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Augmentation:
    """Dihedral transform `transform` (see grids.DIHEDRAL_NAMES), then colour c -> colours[c].

    Black stays black (colours[0] == 0): it is the background of nearly every task.
    """

    transform: int = 0
    colours: tuple[int, ...] = field(default=tuple(range(NUM_COLOURS)))

    def __post_init__(self) -> None:
        object.__setattr__(self, "colours", tuple(int(colour) for colour in self.colours))
        if not 0 <= self.transform < NUM_TRANSFORMS:
            raise ValueError(f"transform must be 0..{NUM_TRANSFORMS - 1}, got {self.transform}")
        if sorted(self.colours) != list(range(NUM_COLOURS)) or self.colours[0] != 0:
            raise ValueError(f"colours must be a permutation of 0..9 that keeps 0 first, got {self.colours}")

    @property
    def name(self) -> str:
        """Stable short form, e.g. 't3-0271845936': transform 3, colour 1 -> 2, 2 -> 7, ..."""
        return f"t{self.transform}-{''.join(map(str, self.colours))}"

    @classmethod
    def from_name(cls, name: str) -> Augmentation:
        match = re.fullmatch(r"t(\d)-(\d{10})", name)
        if match is None:
            raise ValueError(f"{name!r} is not an augmentation name like 't3-0271845936' (transform, then 10 colours)")
        return cls(int(match[1]), tuple(int(digit) for digit in match[2]))


IDENTITY = Augmentation()


def apply(grid: np.ndarray, aug: Augmentation) -> np.ndarray:
    """The augmented grid: transform first, then recolour (the two commute)."""
    return np.asarray(aug.colours, dtype=np.uint8)[dihedral(np.asarray(grid), aug.transform)]


def invert(grid: np.ndarray, aug: Augmentation) -> np.ndarray:
    """Undo `apply`, e.g. to map a prediction on an augmented task back to the original."""
    inverse_colours = np.argsort(aug.colours).astype(np.uint8)
    return inverse_dihedral(inverse_colours[np.asarray(grid)], aug.transform)


def _fingerprint(task: ArcTask, aug: Augmentation) -> bytes:
    """Hash of all the augmented task's grids (shapes included: a 2x3 and a 3x2 grid differ)."""
    hasher = hashlib.blake2b(digest_size=16)
    for grid in task.grids():
        augmented = apply(grid, aug)
        hasher.update(np.array(augmented.shape, dtype=np.int64).tobytes())
        hasher.update(augmented.tobytes())
    return hasher.digest()


def augmentations(task: ArcTask, count: int, rng: np.random.Generator) -> list[Augmentation]:
    """IDENTITY, then up to `count` random augmentations that each turn the task into a new one.

    As in HRM, drawing stops after `count` new ones or `count * 5` draws, so a task with few
    distinct variants (symmetric grids, few colours) gets fewer rather than duplicates.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    found = [IDENTITY]
    seen = {_fingerprint(task, IDENTITY)}
    for _ in range(RETRIES_FACTOR * count):
        if len(found) > count:
            break
        transform = int(rng.integers(NUM_TRANSFORMS))
        aug = Augmentation(transform, (0, *rng.permutation(np.arange(1, NUM_COLOURS)).tolist()))
        key = _fingerprint(task, aug)
        if key not in seen:
            seen.add(key)
            found.append(aug)
    return found


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


def _check_fits(grid: np.ndarray, size: int) -> np.ndarray:
    grid = np.asarray(grid)
    if grid.ndim != 2 or not np.issubdtype(grid.dtype, np.integer):
        raise ValueError(f"a grid must be a 2-D integer array, got shape {grid.shape} and dtype {grid.dtype}")
    if grid.size and (grid.min() < 0 or grid.max() >= NUM_COLOURS):
        raise ValueError(f"grid colours must lie in 0..9, found {grid.min()}..{grid.max()}")
    if max(grid.shape) > size:
        rows, cols = grid.shape
        raise ValueError(
            f"a {rows}x{cols} grid does not fit on the {size}x{size} canvas (size={size}); "
            f"raise size to at least {max(rows, cols)} or leave such tasks out (see fits())"
        )
    return grid


def encode(grid: np.ndarray, size: int = MAX_SIZE, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Flat (size*size,) uint8 tokens: the grid at `offset`, EOS below and right of it, PAD elsewhere."""
    grid = _check_fits(grid, size)
    rows, cols = grid.shape
    top, left = offset
    if not (0 <= top <= size - rows and 0 <= left <= size - cols):
        raise ValueError(f"offset {offset} puts the {rows}x{cols} grid outside the {size}x{size} canvas")
    canvas = np.full((size, size), PAD, dtype=np.uint8)
    canvas[top : top + rows, left : left + cols] = grid + COLOUR_OFFSET
    if top + rows < size:
        canvas[top + rows, left : left + cols] = EOS
    if left + cols < size:
        canvas[top : top + rows, left + cols] = EOS
    return canvas.reshape(-1)


def encode_pair(
    inp: np.ndarray, out: np.ndarray, size: int = MAX_SIZE, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Tokens of an input and its output; with `rng`, both shifted by one random offset (training only).

    The offset keeps the larger of the two grids inside the canvas, as in HRM.
    """
    inp, out = _check_fits(inp, size), _check_fits(out, size)
    offset = (0, 0)
    if rng is not None:
        rows, cols = max(inp.shape[0], out.shape[0]), max(inp.shape[1], out.shape[1])
        offset = (int(rng.integers(size - rows + 1)), int(rng.integers(size - cols + 1)))
    return encode(inp, size, offset), encode(out, size, offset)


def decode(tokens: np.ndarray, size: int = MAX_SIZE) -> np.ndarray:
    """The grid a prediction spells: the largest top-left rectangle of colour tokens, as in HRM.

    Row by row from the top, the run of colour tokens from column 0 bounds the width (the
    minimum over the rows so far); a row that starts with a non-colour token ends the grid.
    Ties go to the fewer rows. No colour token in the corner gives an empty (0, 0) grid.
    """
    tokens = np.asarray(tokens)
    if tokens.size != size * size:
        raise ValueError(f"expected {size * size} tokens for size={size}, got shape {tokens.shape}")
    canvas = tokens.reshape(size, size)
    colour = (canvas >= COLOUR_OFFSET) & (canvas < VOCAB_SIZE)
    run = np.where(colour.all(axis=1), size, np.argmin(colour, axis=1))  # colour tokens from column 0
    width = np.minimum.accumulate(run)
    area = width * np.arange(1, size + 1)
    if area.max() == 0:
        return np.zeros((0, 0), dtype=np.uint8)
    rows = int(np.argmax(area)) + 1
    return (canvas[:rows, : width[rows - 1]] - COLOUR_OFFSET).astype(np.uint8)
