"""Sudoku puzzles for latent-reasoning models: solve, generate, augment, load, tokenise.

Everything here is plain numpy and Python so that datasets can be built and checked on any
machine, without torch. The conventions follow the HRM reference so that its checkpoints and
data line up with ours:

* A grid is a flat array of n*n cells (n = box*box: box=3 is the usual 9x9, box=2 is 4x4),
  dtype int8, with 0 for a blank and 1..n for digits.
* Tokens are value + 1: 0 is PAD (never produced here), 1 is a blank, 2..n+1 are the digits,
  so the vocabulary has n + 2 entries (11 for 9x9).
* Augmentations are the validity-preserving symmetries HRM uses: relabel digits, transpose,
  shuffle bands/stacks and the rows/columns inside them.

The solver is a bitmask backtracker that fills forced cells first and otherwise branches on
the cell with the fewest candidates. Its node count doubles as a difficulty rating; it is not
on the same scale as the `rating` column of Sudoku-Extreme, which comes from another solver.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from latentreason.errors import ConfigError, DatasetFormatError

SUPPORTED_BOXES = (2, 3, 4)

# Text form of a digit 1..16: the usual digits, then letters for 16x16 grids.
DIGIT_CHARS = "123456789ABCDEFG"
BLANK_CHARS = ".0"

# How many puzzles one generated puzzle may take while looking for one hard enough (min_search_nodes).
MAX_DRAWS = 1000

CSV_HEADERS = (("source", "q", "a", "rating"), ("source", "question", "answer", "rating"))


# --------------------------------------------------------------------------------------------
# Grid basics
# --------------------------------------------------------------------------------------------


def grid_size(box: int) -> int:
    """Side length n of the grid for a given box size (box=3 -> 9)."""
    if box not in SUPPORTED_BOXES:
        raise ValueError(f"box must be one of {SUPPORTED_BOXES}, got {box}")
    return box * box


def vocab_size(box: int = 3) -> int:
    """Number of token ids: PAD, blank and the n digits (11 for 9x9)."""
    return grid_size(box) + 2


def encode(grid: np.ndarray) -> np.ndarray:
    """Grid values to HRM tokens (value + 1), so that 0 stays free for padding."""
    return (np.asarray(grid).astype(np.int16) + 1).astype(np.uint8)


def decode(tokens: np.ndarray) -> np.ndarray:
    """HRM tokens back to grid values; PAD (0) is read as a blank."""
    values = np.asarray(tokens).astype(np.int16) - 1
    return np.clip(values, 0, None).astype(np.int8)


def count_givens(grid: np.ndarray) -> int:
    """Number of filled cells."""
    return int(np.count_nonzero(grid))


def grid_to_string(grid: np.ndarray) -> str:
    """One-line text form, '.' for blanks, as used by the puzzle files."""
    return "".join("." if value == 0 else DIGIT_CHARS[value - 1] for value in np.asarray(grid))


def _units(grid: np.ndarray, box: int) -> np.ndarray:
    """All rows, columns and boxes of one grid or a stack of grids, shape (..., 3n, n)."""
    n = grid_size(box)
    square = np.asarray(grid).reshape(*np.shape(grid)[:-1], n, n)
    rows = square
    cols = np.swapaxes(square, -1, -2)
    # (..., band, row-in-band, stack, col-in-stack) -> (..., band, stack, row-in-band, col-in-stack)
    blocks = square.reshape(*square.shape[:-2], box, box, box, box)
    blocks = np.swapaxes(blocks, -3, -2).reshape(*square.shape[:-2], n, n)
    return np.concatenate([rows, cols, blocks], axis=-2)


def _valid_solution_mask(grids: np.ndarray, box: int, chunk: int = 65536) -> np.ndarray:
    """For each grid in a stack (N, n*n): is it complete with every unit a permutation of 1..n?

    Works through the stack in chunks so that millions of grids need little extra memory.
    """
    n = grid_size(box)
    valid = np.empty(len(grids), dtype=bool)
    for start in range(0, len(grids), chunk):
        units = np.sort(_units(grids[start : start + chunk], box), axis=-1)
        valid[start : start + chunk] = np.all(units == np.arange(1, n + 1), axis=(-1, -2))
    return valid


def _consistent_mask(puzzles: np.ndarray, solutions: np.ndarray) -> np.ndarray:
    """For each pair in two stacks: does every given of the puzzle match the solution?"""
    givens = puzzles != 0
    return np.all(~givens | (puzzles == solutions), axis=-1)


def is_valid_solution(grid: np.ndarray, box: int = 3) -> bool:
    """True when the grid is complete and every row, column and box holds 1..n exactly once."""
    grid = np.asarray(grid)
    if grid.shape != (grid_size(box) ** 2,):
        return False
    return bool(_valid_solution_mask(grid[None], box)[0])


def is_consistent(puzzle: np.ndarray, solution: np.ndarray) -> bool:
    """True when every given of the puzzle equals the solution's digit in that cell."""
    puzzle, solution = np.asarray(puzzle), np.asarray(solution)
    if puzzle.shape != solution.shape:
        return False
    return bool(_consistent_mask(puzzle[None], solution[None])[0])


# --------------------------------------------------------------------------------------------
# Solver
# --------------------------------------------------------------------------------------------


@functools.cache
def _unit_layout(box: int) -> tuple[tuple[tuple[int, int, int], ...], tuple[tuple[int, ...], ...]]:
    """Which units each cell belongs to, and which cells each unit holds.

    Units are numbered rows 0..n-1, columns n..2n-1, boxes 2n..3n-1.
    """
    n = grid_size(box)
    units_of_cell = []
    for cell in range(n * n):
        row, col = divmod(cell, n)
        units_of_cell.append((row, n + col, 2 * n + row // box * box + col // box))
    cells_of_unit = tuple(tuple(cell for cell in range(n * n) if unit in units_of_cell[cell]) for unit in range(3 * n))
    return tuple(units_of_cell), cells_of_unit


def _search(
    grid: np.ndarray, box: int, limit: int, rng: np.random.Generator | None = None
) -> tuple[list[np.ndarray], int]:
    """Backtracking search for up to `limit` solutions; returns them and the number of nodes.

    Bit d of a unit's mask is set when digit d is already used in that row, column or box, so
    a cell's candidates are two ORs and a NOT away. Forced moves come first: a cell with a
    single candidate, else a digit that fits in only one cell of some unit ("hidden single").
    Only when there is neither does the search branch, on the cell with the fewest candidates
    (MRV). Without the hidden singles, hard puzzles take about ten times as many nodes.
    A node is one tentative placement of a digit. With `rng`, digits are tried in random
    order (used to draw random full grids).
    """
    n = grid_size(box)
    grid = np.asarray(grid)
    if grid.shape != (n * n,):
        raise ValueError(f"expected a flat grid of {n * n} cells for box={box}, got shape {grid.shape}")
    if grid.min(initial=0) < 0 or grid.max(initial=0) > n:
        raise ValueError(f"grid values must lie in 0..{n}")

    units_of_cell, cells_of_unit = _unit_layout(box)
    all_digits = ((1 << n) - 1) << 1  # bits 1..n
    values = [int(value) for value in grid]
    used = [0] * (3 * n)
    for cell, value in enumerate(values):
        if value:
            bit = 1 << value
            a, b, c = units_of_cell[cell]
            if (used[a] | used[b] | used[c]) & bit:
                return [], 0  # two equal givens see each other: no solution
            used[a] |= bit
            used[b] |= bit
            used[c] |= bit
    empty = [cell for cell, value in enumerate(values) if value == 0]
    solutions: list[np.ndarray] = []
    nodes = 0

    def candidates_of(cell: int) -> int:
        a, b, c = units_of_cell[cell]
        return all_digits & ~(used[a] | used[b] | used[c])

    def hidden_single() -> tuple[int, int] | None:
        """(cell, digit) for a digit with one place left in some unit, else None.

        Returns (-1, 0) when a digit that a unit still needs has no place left: a dead end.
        """
        for unit, unit_cells in enumerate(cells_of_unit):
            once = twice = 0
            for cell in unit_cells:
                if values[cell] == 0:
                    candidates = candidates_of(cell)
                    twice |= once & candidates
                    once |= candidates
            missing = all_digits & ~used[unit]
            if missing & ~once:
                return -1, 0  # some digit this unit still needs fits nowhere
            single = once & ~twice
            if single:
                digit = (single & -single).bit_length() - 1
                for cell in unit_cells:
                    if values[cell] == 0 and candidates_of(cell) >> digit & 1:
                        return cell, digit
        return None

    def branch() -> None:
        nonlocal nodes
        if not empty:
            solutions.append(np.array(values, dtype=np.int8))
            return
        best_pos, best_candidates, best_count = 0, 0, n + 1
        for pos, cell in enumerate(empty):
            candidates = candidates_of(cell)
            count = candidates.bit_count()
            if count < best_count:
                best_pos, best_candidates, best_count = pos, candidates, count
                if count <= 1:
                    break
        if best_count == 0:
            return
        if best_count > 1:
            forced = hidden_single()
            if forced is not None:
                cell, digit = forced
                if cell < 0:
                    return
                best_pos, best_candidates = empty.index(cell), 1 << digit
        # Take the chosen cell out of the empty list (swap with the last) and put it back after.
        empty[best_pos], empty[-1] = empty[-1], empty[best_pos]
        cell = empty.pop()
        a, b, c = units_of_cell[cell]
        digits = [digit for digit in range(1, n + 1) if best_candidates >> digit & 1]
        if rng is not None:
            rng.shuffle(digits)
        for digit in digits:
            nodes += 1
            bit = 1 << digit
            values[cell] = digit
            used[a] |= bit
            used[b] |= bit
            used[c] |= bit
            branch()
            used[a] ^= bit
            used[b] ^= bit
            used[c] ^= bit
            if len(solutions) >= limit:
                break
        values[cell] = 0
        empty.append(cell)
        empty[best_pos], empty[-1] = empty[-1], empty[best_pos]

    branch()
    return solutions, nodes


def solve_with_stats(grid: np.ndarray, box: int = 3, limit: int = 2) -> tuple[list[np.ndarray], int]:
    """Up to `limit` solutions of the grid, and the number of search nodes it took."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    return _search(grid, box, limit)


def solve(grid: np.ndarray, box: int = 3, limit: int = 2) -> list[np.ndarray]:
    """Up to `limit` solutions (int8 grids); two are enough to tell a unique puzzle from others."""
    return solve_with_stats(grid, box, limit)[0]


def count_solutions(grid: np.ndarray, box: int = 3, limit: int = 2) -> int:
    """Number of solutions, counted up to `limit` (so 2 means "two or more")."""
    return len(solve(grid, box, limit))


def rating(grid: np.ndarray, box: int = 3) -> int:
    """Difficulty as the search nodes needed to find the solution and prove there is no other."""
    return solve_with_stats(grid, box, limit=2)[1]


# --------------------------------------------------------------------------------------------
# Generation and augmentation
# --------------------------------------------------------------------------------------------


def random_solution(rng: np.random.Generator, box: int = 3) -> np.ndarray:
    """A random complete valid grid: the solver run on an empty grid with shuffled digit order.

    Not exactly uniform over all grids, but every grid can come out, and the augmentations
    spread the data further.
    """
    n = grid_size(box)
    solutions, _ = _search(np.zeros(n * n, dtype=np.int8), box, limit=1, rng=rng)
    return solutions[0]


def generate_puzzle(
    rng: np.random.Generator, box: int = 3, min_givens: int = 17, max_givens: int = 81
) -> tuple[np.ndarray, np.ndarray, int]:
    """A puzzle with exactly one solution: returns (puzzle, solution, rating).

    Starts from a random full grid and blanks cells in random order, undoing any removal that
    would allow a second solution, until the number of givens reaches a target drawn uniformly
    from [min_givens, max_givens]. When no further cell can be blanked before that (the puzzle
    is minimal; for 9x9 this usually happens in the low twenties, 17 is the known minimum),
    the puzzle keeps more givens than the target, possibly even more than max_givens.
    """
    n = grid_size(box)
    if not 0 <= min_givens <= max_givens <= n * n:
        raise ValueError(f"need 0 <= min_givens <= max_givens <= {n * n}, got {min_givens}, {max_givens}")
    solution = random_solution(rng, box)
    target = int(rng.integers(min_givens, max_givens + 1))
    puzzle = solution.copy()
    givens = n * n
    for cell in rng.permutation(n * n):
        if givens <= target:
            break
        puzzle[cell] = 0
        if count_solutions(puzzle, box, limit=2) == 1:
            givens -= 1
        else:
            puzzle[cell] = solution[cell]
    return puzzle, solution, rating(puzzle, box)


def draw_symmetry(rng: np.random.Generator, box: int = 3) -> tuple[np.ndarray, bool, np.ndarray, np.ndarray]:
    """A random Sudoku symmetry: digit map (blank stays 0), transpose?, row order, column order.

    The new grid's cell (r, c) is the (transposed, if so) old grid's cell (row_order[r], col_order[c]).
    """
    n = grid_size(box)
    digit_map = np.concatenate([[0], rng.permutation(np.arange(1, n + 1))]).astype(np.int8)
    transpose = bool(rng.random() < 0.5)
    row_order = np.concatenate([band * box + rng.permutation(box) for band in rng.permutation(box)])
    col_order = np.concatenate([stack * box + rng.permutation(box) for stack in rng.permutation(box)])
    return digit_map, transpose, row_order, col_order


def augment(
    puzzle: np.ndarray, solution: np.ndarray, rng: np.random.Generator, box: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """The same random Sudoku symmetry applied to puzzle and solution (HRM's augmentation).

    Relabels the digits (blank stays blank), transposes with probability 1/2, shuffles the
    bands and the rows inside each band, then the stacks and the columns inside each stack.
    Each of these maps valid grids to valid grids and unique puzzles to unique puzzles.
    """
    n = grid_size(box)
    digit_map, transpose, row_order, col_order = draw_symmetry(rng, box)

    def apply(grid: np.ndarray) -> np.ndarray:
        square = np.asarray(grid).reshape(n, n)
        if transpose:
            square = square.T
        square = square[row_order][:, col_order]
        return digit_map[square].reshape(n * n)

    return apply(puzzle), apply(solution)


# --------------------------------------------------------------------------------------------
# Loading files
# --------------------------------------------------------------------------------------------


def _char_table(box: int) -> np.ndarray:
    """Byte -> cell value lookup for the text form; -1 marks a character that is not allowed."""
    n = grid_size(box)
    table = np.full(256, -1, dtype=np.int8)
    for blank in BLANK_CHARS:
        table[ord(blank)] = 0
    for value, char in enumerate(DIGIT_CHARS[:n], start=1):
        table[ord(char)] = value
        table[ord(char.lower())] = value
    return table


def _parse_grid(text: str, box: int, table: np.ndarray, what: str, where: str) -> np.ndarray:
    """One grid from its text form, or a DatasetFormatError that says what is wrong with it."""
    n = grid_size(box)
    allowed = f"'.' or '0' for a blank and {DIGIT_CHARS[0]}..{DIGIT_CHARS[n - 1]} for digits"
    if len(text) != n * n:
        raise DatasetFormatError(
            f"{where}: the {what} has {len(text)} characters, expected {n * n} for a {n}x{n} grid "
            f"(box={box}); write one row after another on a single line"
        )
    values = table[np.frombuffer(text.encode("ascii", errors="replace"), dtype=np.uint8)]
    if (values < 0).any():
        position = int(np.argmax(values < 0))
        raise DatasetFormatError(
            f"{where}: the {what} has the bad character {text[position]!r} at position {position + 1}; "
            f"use only {allowed}"
        )
    return values


def _content_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped text) of every line that is neither empty nor a '#' comment.

    Read lazily, so that a multi-million-row CSV is never held as text all at once.
    """
    if not path.is_file():
        raise FileNotFoundError(f"Sudoku dataset file not found: {path}")
    return _read_content_lines(path)


def _read_content_lines(path: Path) -> Iterator[tuple[int, str]]:
    # Undecodable bytes become U+FFFD, which then fails as a bad character with its line number.
    with open(path, encoding="utf-8", errors="replace") as file:
        for lineno, line in enumerate(file, start=1):
            text = line.strip()
            if text and not text.startswith("#"):
                yield lineno, text


def _no_puzzles_error(path: Path, lineno: int, expected: str) -> DatasetFormatError:
    return DatasetFormatError(f"{path}:{lineno}: the file holds no puzzles; add {expected}")


def _csv_fields(text: str, where: str) -> tuple[str, str, str]:
    """Puzzle, solution and rating text of one CSV row, or an error if it has the wrong shape."""
    fields = text.split(",")
    if len(fields) != 4:
        raise DatasetFormatError(
            f"{where}: found {len(fields)} comma-separated fields, expected 4 (source,q,a,rating); "
            "make each row 'source,puzzle,solution,rating' with no commas inside a field"
        )
    _source, question, answer, rating_text = (field.strip() for field in fields)
    return question, answer, rating_text


def load_sudoku_csv(path: str | Path, box: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Puzzles, solutions and ratings from a Sudoku-Extreme style CSV.

    The first line is the header `source,q,a,rating`; each row then holds a source name, the
    puzzle and its solution as n*n characters ('.' or '0' for blanks) and an integer rating.
    Rows are checked (the solution must be valid and match the puzzle's givens) but not solved,
    so that millions of rows load quickly; uniqueness is taken on trust. Row shapes are checked
    while reading, the grids' contents all at once afterwards (the first bad row is reported).
    """
    path = Path(path)
    n = grid_size(box)
    table = _char_table(box)
    questions, answers = bytearray(), bytearray()
    ratings: list[int] = []
    linenos: list[int] = []
    header_lineno = 0
    for lineno, text in _content_lines(path):
        where = f"{path}:{lineno}"
        if not header_lineno:
            if tuple(field.strip().lower() for field in text.split(",")) not in CSV_HEADERS:
                raise DatasetFormatError(
                    f"{where}: expected the header 'source,q,a,rating', found {text[:60]!r}; "
                    "add that header as the first line"
                )
            header_lineno = lineno
            continue
        question, answer, rating_text = _csv_fields(text, where)
        if len(question) != n * n or len(answer) != n * n:
            _parse_grid(question, box, table, "puzzle", where)  # raises, naming the bad one
            _parse_grid(answer, box, table, "solution", where)
        try:
            ratings.append(int(rating_text))
        except ValueError:
            raise DatasetFormatError(
                f"{where}: the rating {rating_text!r} is not an integer; write a whole number such as 0"
            ) from None
        # Non-ASCII characters become '?' (one byte each), which the table rejects below.
        questions += question.encode("ascii", errors="replace")
        answers += answer.encode("ascii", errors="replace")
        linenos.append(lineno)
    if not header_lineno:
        raise _no_puzzles_error(path, 1, "the header 'source,q,a,rating' and one row per puzzle")
    if not linenos:
        raise _no_puzzles_error(path, header_lineno + 1, "one row 'source,puzzle,solution,rating' per puzzle")

    puzzles = table[np.frombuffer(questions, dtype=np.uint8)].reshape(-1, n * n)
    solutions = table[np.frombuffer(answers, dtype=np.uint8)].reshape(-1, n * n)
    del questions, answers
    bad_chars = (puzzles.min(axis=1) < 0) | (solutions.min(axis=1) < 0)
    if bad_chars.any():
        lineno = linenos[int(np.argmax(bad_chars))]
        _reparse_line(path, lineno, box, table)  # raises with the exact character and position

    valid = _valid_solution_mask(solutions, box)
    if not valid.all():
        lineno = linenos[int(np.argmin(valid))]
        raise DatasetFormatError(
            f"{path}:{lineno}: the solution is not a valid complete grid (a blank, or a digit repeated in "
            "a row, column or box); fix the solution column"
        )
    consistent = _consistent_mask(puzzles, solutions)
    if not consistent.all():
        index = int(np.argmin(consistent))
        cell = int(np.argmax((puzzles[index] != 0) & (puzzles[index] != solutions[index])))
        raise DatasetFormatError(
            f"{path}:{linenos[index]}: the solution does not match the puzzle at row {cell // n + 1}, "
            f"column {cell % n + 1} (given {puzzles[index, cell]}, solution {solutions[index, cell]}); "
            "fix the puzzle or the solution so that every given matches"
        )
    return puzzles, solutions, np.array(ratings, dtype=np.int64)


def _reparse_line(path: Path, lineno: int, box: int, table: np.ndarray) -> None:
    """Parse one CSV row again from the file, to raise the precise error for it."""
    for current, text in _content_lines(path):
        if current == lineno:
            where = f"{path}:{lineno}"
            question, answer, _rating = _csv_fields(text, where)
            _parse_grid(question, box, table, "puzzle", where)
            _parse_grid(answer, box, table, "solution", where)
            return


def load_sudoku_lines(
    path: str | Path, box: int = 3, progress: Callable[[int], object] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Puzzles from a text file of one n*n-character puzzle per line, solved here (in one process
    per CPU core; hard puzzles take a third of a second each). `progress(1)` after each puzzle.

    Empty lines and lines starting with '#' are skipped. Every puzzle must have exactly one
    solution; ratings are the solver's node counts (see `rating`).
    """
    path = Path(path)
    n = grid_size(box)
    table = _char_table(box)
    lines = list(_content_lines(path))
    if not lines:
        raise _no_puzzles_error(path, 1, f"one puzzle of {n * n} characters per line")
    puzzles = np.stack([_parse_grid(text, box, table, "puzzle", f"{path}:{lineno}") for lineno, text in lines])
    solutions = np.zeros_like(puzzles)
    ratings = np.zeros(len(lines), dtype=np.int64)
    solve_two = functools.partial(solve_with_stats, box=box, limit=2)
    for index, (found, nodes) in enumerate(_in_processes(solve_two, list(puzzles), None, progress)):
        where = f"{path}:{lines[index][0]}"
        if not found:
            raise DatasetFormatError(f"{where}: the puzzle has no solution; check its givens for typos")
        if len(found) > 1:
            raise DatasetFormatError(
                f"{where}: the puzzle has more than one solution; add givens until the solution is unique"
            )
        solutions[index] = found[0]
        ratings[index] = nodes
    return puzzles, solutions, ratings


def load_sudoku_file(
    path: str | Path, box: int = 3, progress: Callable[[int], object] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Load either format: CSV when the first content line has a comma, else one puzzle per line
    (solved here; `progress(1)` after each)."""
    first = next(_content_lines(Path(path)), None)
    if first is not None and "," in first[1]:
        return load_sudoku_csv(path, box)
    return load_sudoku_lines(path, box, progress)


def count_puzzle_lines(path: str | Path) -> int:
    """How many puzzles a one-puzzle-per-line file holds (0 for a CSV file, which needs no solving)."""
    lines = list(_content_lines(Path(path)))
    return 0 if lines and "," in lines[0][1] else len(lines)


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


def from_puzzles(
    puzzles: np.ndarray,
    solutions: np.ndarray,
    augmentations: int,
    rng_seed: int | np.random.SeedSequence,
    box: int = 3,
    ratings: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Token arrays for training: each puzzle followed by `augmentations` augmented copies.

    Returns `inputs` and `labels` (uint8 tokens, shape (N*(1+augmentations), n*n)), `ratings`
    (int32; each copy keeps its original's rating, -1 when none was given) and `groups` (int32,
    the index of the original puzzle, so that train/test splits can keep copies together).
    """
    puzzles = np.asarray(puzzles, dtype=np.int8)
    solutions = np.asarray(solutions, dtype=np.int8)
    if puzzles.shape != solutions.shape or puzzles.ndim != 2:
        raise ValueError(
            f"puzzles and solutions must be equal (N, cells) arrays, got {puzzles.shape} and {solutions.shape}"
        )
    if augmentations < 0:
        raise ValueError(f"augmentations must be >= 0, got {augmentations}")
    if ratings is None:
        ratings = np.full(len(puzzles), -1)
    rng = np.random.default_rng(rng_seed)
    copies = 1 + augmentations
    inputs, labels = [], []
    for puzzle, solution in zip(puzzles, solutions):
        inputs.append(puzzle)
        labels.append(solution)
        for _ in range(augmentations):
            new_puzzle, new_solution = augment(puzzle, solution, rng, box)
            inputs.append(new_puzzle)
            labels.append(new_solution)
    cells = grid_size(box) ** 2
    return {
        "inputs": encode(np.array(inputs, dtype=np.int8).reshape(-1, cells)),
        "labels": encode(np.array(labels, dtype=np.int8).reshape(-1, cells)),
        "ratings": np.repeat(np.asarray(ratings, dtype=np.int32), copies),
        "groups": np.repeat(np.arange(len(puzzles), dtype=np.int32), copies),
    }


def _in_processes(function: Callable, items: list, workers: int | None, progress: Callable[[int], object] | None):
    """`function` over `items` in order, in one process per CPU core (or `workers`) when there are
    enough items to repay starting them (about a second each); `progress(1)` after each item."""
    workers = min(workers or os.cpu_count() or 1, max(1, len(items) // 100))
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers > 1 else nullcontext() as pool:
        for result in pool.map(function, items, chunksize=8) if pool else map(function, items):
            if progress is not None:
                progress(1)
            yield result


def _generate_one(seed: np.random.SeedSequence, box: int, min_givens: int, max_givens: int, min_search_nodes: int):
    """One puzzle from its own seed, drawn again until its rating reaches `min_search_nodes`."""
    rng = np.random.default_rng(seed)
    for _ in range(MAX_DRAWS):
        puzzle, solution, nodes = generate_puzzle(rng, box, min_givens, max_givens)
        if nodes >= min_search_nodes:
            return puzzle, solution, nodes
    raise ConfigError(
        f"No generated puzzle in {MAX_DRAWS} draws needed task.min_search_nodes={min_search_nodes} solver placements; "
        "lower it (of 400 generated 9x9 puzzles with 17-30 givens, half needed 58 or fewer, 9% 140 or more, the most 571)"
    )


def build_dataset(
    num_puzzles: int,
    augmentations: int,
    rng_seed: int,
    box: int = 3,
    min_givens: int = 17,
    max_givens: int = 81,
    progress: Callable[[int], object] | None = None,
    workers: int | None = None,
    min_search_nodes: int = 0,
) -> dict[str, np.ndarray]:
    """Generate `num_puzzles` unique puzzles and augment them (see `from_puzzles` for the keys).

    With `min_search_nodes`, only puzzles whose `rating` reaches it are kept: the generator's
    puzzles mostly fall to single-candidate moves, and this is how to train on ones that need search.

    Deterministic for a given seed, whatever the number of worker processes: each puzzle has a
    seed of its own, and augmentation draws from a separate stream. Puzzles are generated in
    `workers` processes (default: one per CPU core) when there are enough of them to repay
    starting the processes. `progress(1)` is called after each generated puzzle.
    """
    n = grid_size(box)
    generation_seed, augmentation_seed = np.random.SeedSequence(rng_seed).spawn(2)
    seeds = generation_seed.spawn(num_puzzles)
    make = functools.partial(
        _generate_one, box=box, min_givens=min_givens, max_givens=max_givens, min_search_nodes=min_search_nodes
    )
    puzzles = np.zeros((num_puzzles, n * n), dtype=np.int8)
    solutions = np.zeros_like(puzzles)
    ratings = np.zeros(num_puzzles, dtype=np.int64)
    for index, made in enumerate(_in_processes(make, seeds, workers, progress)):
        puzzles[index], solutions[index], ratings[index] = made
    return from_puzzles(puzzles, solutions, augmentations, augmentation_seed, box, ratings)
