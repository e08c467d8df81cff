"""Mazes for latent-reasoning models: generate, solve, check, augment, load, tokenise.

Plain numpy and Python, like the Sudoku pipeline, so that data can be built anywhere. The
conventions follow HRM's Maze-Hard benchmark (sapientinc/maze-30x30-hard-1k):

* A maze is a size x size grid written row after row as characters of `# SGo`: wall, open,
  start, goal, path. Token ids are 1..5 in that order; 0 is PAD, so the vocabulary has 6.
* The question holds walls, open cells, S and G; the answer is the question with the cells of
  the shortest S-G path (S and G themselves excluded) turned into `o`.
* "Hard" means the shortest path takes at least `min_path_length` moves between 4-neighbours:
  110 at 30x30, the paper's "difficulty > 110" (see `default_min_path` for other sizes).

Generated mazes keep only pairs S, G whose shortest path is unique, so that exact-match
accuracy against the label is meaningful; `is_shortest_path` accepts any shortest path anyway.
"""

from __future__ import annotations

import csv
import math
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from latentreason.errors import DatasetFormatError
from latentreason.tasks.grids import dihedral

CHARS = "# SGo"
PAD, WALL, OPEN, START, GOAL, PATH = 0, 1, 2, 3, 4, 5
VOCAB_SIZE = 6
DEFAULT_MIN_PATH = {30: 110}  # Maze-Hard: difficulty > 110 at the paper's size
# Share of the walls left between corridor cells that become openings. At 30x30 that is ~8 loops;
# loops shorten paths fast (0.1 makes a hard maze ~7x slower to find, 0.2 almost never reaches 110).
DEFAULT_LOOP_FRACTION = 0.05
CSV_HEADER = ("source", "q", "a", "rating")

# Character -> token id; 0 marks a character that is not allowed.
_CHAR_TO_ID = np.zeros(256, dtype=np.uint8)
_CHAR_TO_ID[[ord(char) for char in CHARS]] = np.arange(1, len(CHARS) + 1)
_ID_TO_CHAR = "?" + CHARS  # PAD and anything out of range decode to '?'


def default_min_path(size: int) -> int:
    """Hard threshold in moves: DEFAULT_MIN_PATH where the paper fixes one, else 110 scaled by area.

    Scaling by area (110 * size^2 / 900, at least 1) keeps about the same share of the grid on
    the path, which the generator reaches within a few tries for sizes 5..30 (e.g. 10 at 9x9).
    """
    if size in DEFAULT_MIN_PATH:
        return DEFAULT_MIN_PATH[size]
    return max(1, round(110 * size * size / 900))


# --------------------------------------------------------------------------------------------
# Text <-> ids
# --------------------------------------------------------------------------------------------


def encode_rows(strings: Iterable[str]) -> np.ndarray:
    """Maze strings of equal length to a (N, length) uint8 array of token ids."""
    strings = list(strings)
    if len({len(text) for text in strings}) > 1:
        raise ValueError("maze strings must all have the same length")
    raw = "".join(strings).encode("latin-1", errors="replace")
    ids = _CHAR_TO_ID[np.frombuffer(raw, dtype=np.uint8)]
    if (ids == 0).any():
        position = int(np.argmin(ids))
        raise ValueError(f"unknown maze character {chr(raw[position])!r}; use only {CHARS!r}")
    return ids.reshape(len(strings), -1 if strings else 0)


def decode_row(ids: np.ndarray, size: int | None = None) -> str:
    """Token ids (flat or square) to the maze's one-line text; PAD or bad ids show as '?'."""
    ids = np.asarray(ids).reshape(-1)
    if size is not None and ids.size != size * size:
        raise ValueError(f"expected {size * size} ids for a {size}x{size} maze, got {ids.size}")
    return "".join(_ID_TO_CHAR[value] if 0 < value < len(_ID_TO_CHAR) else "?" for value in ids.tolist())


# --------------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------------


def _bfs(open_mask: np.ndarray, source: tuple[int, int], cap: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Distances from `source` (-1 unreachable) and shortest-path counts capped at `cap`.

    Plain Python on flat indices: for 30x30 it is faster than numpy frontier sweeps. A cell's
    count is final when it leaves the queue, because every predecessor lies one layer earlier.
    """
    open_mask = np.asarray(open_mask, dtype=bool)
    height, width = open_mask.shape
    row, col = source
    if not (0 <= row < height and 0 <= col < width and open_mask[row, col]):
        raise ValueError(f"BFS source {source} is not an open cell of the {height}x{width} grid")
    free = open_mask.ravel().tolist()
    dist = [-1] * (height * width)
    count = [0] * (height * width)
    start = row * width + col
    dist[start], count[start] = 0, 1
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        r, c = divmod(cell, width)
        step = dist[cell] + 1
        for nxt, inside in (
            (cell - width, r > 0),
            (cell + width, r < height - 1),
            (cell - 1, c > 0),
            (cell + 1, c < width - 1),
        ):
            if not (inside and free[nxt]):
                continue
            if dist[nxt] < 0:
                dist[nxt], count[nxt] = step, count[cell]
                queue.append(nxt)
            elif dist[nxt] == step:
                count[nxt] = min(cap, count[nxt] + count[cell])
    shape = (height, width)
    return np.array(dist, dtype=np.int32).reshape(shape), np.array(count, dtype=np.int32).reshape(shape)


def bfs_distances(open_mask: np.ndarray, source: tuple[int, int]) -> np.ndarray:
    """Moves from `source` to every cell through open cells (4-neighbours); -1 where unreachable."""
    return _bfs(open_mask, source)[0]


def count_shortest_paths(open_mask: np.ndarray, source: tuple[int, int], cap: int = 2) -> np.ndarray:
    """Number of distinct shortest paths from `source` to every cell, capped at `cap` (0 unreachable)."""
    return _bfs(open_mask, source, cap)[1]


def _trace_back(dist: np.ndarray, goal: tuple[int, int]) -> list[tuple[int, int]]:
    """Cells strictly between source and goal on one shortest path, walking down the distances."""
    height, width = dist.shape
    cells = []
    row, col = goal
    while dist[row, col] > 1:
        for r, c in ((row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1)):
            if 0 <= r < height and 0 <= c < width and dist[r, c] == dist[row, col] - 1:
                row, col = r, c
                break
        cells.append((row, col))
    return cells


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def generate_maze(size: int, rng: np.random.Generator, loop_fraction: float = DEFAULT_LOOP_FRACTION) -> np.ndarray:
    """A (size, size) uint8 grid of WALL/OPEN: a randomized-DFS maze with some loops.

    Corridor cells sit on odd coordinates inside an outer wall; DFS carves a perfect maze
    (exactly one route between any two cells, with the long winding corridors that make hard
    instances common). Then `loop_fraction` of the walls still standing between two corridor
    cells are knocked down (the count rounded at random, so small mazes get loops too), so that a
    solver cannot just follow the only route. An even size
    leaves one spare wall line, flipped to a random side so that no side is special.
    """
    if size < 5:
        raise ValueError(f"maze size must be at least 5, got {size}")
    if not 0.0 <= loop_fraction <= 1.0:
        raise ValueError(f"loop_fraction must lie in [0, 1], got {loop_fraction}")
    n = (size - 1) // 2  # corridor cells per side, at coordinates 1, 3, ..., 2n-1
    grid = np.full((size, size), WALL, dtype=np.uint8)
    visited = np.zeros((n, n), dtype=bool)
    start = (int(rng.integers(n)), int(rng.integers(n)))
    visited[start] = True
    grid[2 * start[0] + 1, 2 * start[1] + 1] = OPEN
    stack = [start]
    while stack:
        i, j = stack[-1]
        options = [
            (a, b)
            for a, b in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1))
            if 0 <= a < n and 0 <= b < n and not visited[a, b]
        ]
        if not options:
            stack.pop()
            continue
        a, b = options[int(rng.integers(len(options)))]
        visited[a, b] = True
        grid[2 * a + 1, 2 * b + 1] = OPEN
        grid[i + a + 1, j + b + 1] = OPEN  # the wall between the two cells
        stack.append((a, b))

    # Walls between two horizontally or vertically adjacent corridor cells that DFS left standing.
    inner = np.zeros_like(grid, dtype=bool)
    inner[1 : 2 * n : 2, 2 : 2 * n - 1 : 2] = True
    inner[2 : 2 * n - 1 : 2, 1 : 2 * n : 2] = True
    standing = np.flatnonzero(inner & (grid == WALL))
    knock = rng.choice(standing, size=int(loop_fraction * standing.size + rng.random()), replace=False)
    grid.ravel()[knock] = OPEN

    if rng.random() < 0.5:
        grid = grid[::-1]
    if rng.random() < 0.5:
        grid = grid[:, ::-1]
    return np.ascontiguousarray(grid)


def make_example(
    size: int,
    rng: np.random.Generator,
    min_path_length: int | None = None,
    loop_fraction: float = DEFAULT_LOOP_FRACTION,
    max_tries: int = 100,
) -> tuple[np.ndarray, np.ndarray, int]:
    """(question, answer, length): a maze whose unique shortest S-G path has >= min_path_length moves.

    Each try draws a maze, takes S among the cells farthest from a random open cell (a double
    sweep: it about halves the tries at 30x30), runs one BFS that also counts shortest paths,
    and picks G uniformly among the cells that are far enough and reached by exactly one
    shortest path. `min_path_length` defaults to `default_min_path(size)`.
    """
    if min_path_length is None:
        min_path_length = default_min_path(size)
    if min_path_length < 1:
        raise ValueError(f"min_path_length must be at least 1 (S and G differ), got {min_path_length}")
    for _ in range(max_tries):
        grid = generate_maze(size, rng, loop_fraction)
        open_cells = np.argwhere(grid == OPEN)
        probe = tuple(int(x) for x in open_cells[rng.integers(len(open_cells))])
        dist = bfs_distances(grid == OPEN, probe)
        ends = np.argwhere(dist == dist.max())
        start = tuple(int(x) for x in ends[rng.integers(len(ends))])
        dist, count = _bfs(grid == OPEN, start)
        goals = np.argwhere((dist >= min_path_length) & (count == 1))
        if len(goals) == 0:
            continue
        goal = tuple(int(x) for x in goals[rng.integers(len(goals))])
        question = grid.copy()
        question[start], question[goal] = START, GOAL
        answer = question.copy()
        for cell in _trace_back(dist, goal):
            answer[cell] = PATH
        return question, answer, int(dist[goal])
    raise ValueError(
        f"no {size}x{size} maze with a unique shortest path of >= {min_path_length} moves in {max_tries} tries; "
        f"lower min_path_length (or loop_fraction, now {loop_fraction}), or raise max_tries"
    )


def build_dataset(
    count: int,
    size: int = 30,
    min_path_length: int | None = None,
    seed: int = 0,
    augment: bool = False,
    loop_fraction: float = DEFAULT_LOOP_FRACTION,
    progress: Callable[[int], object] | None = None,
) -> dict[str, np.ndarray]:
    """`count` hard mazes as token arrays, deterministic from `seed`.

    Returns `inputs` and `labels` (uint8, (N, size*size)), `ratings` (int32 path lengths) and
    `groups` (int32 index of the original maze). With `augment` each maze is followed by its
    other 7 dihedral transforms (N = 8*count), as in HRM; symmetries keep shortest paths
    shortest and unique. `progress(1)` is called after each generated maze.
    """
    rng = np.random.default_rng(seed)
    copies = 8 if augment else 1
    inputs = np.zeros((count * copies, size * size), dtype=np.uint8)
    labels = np.zeros_like(inputs)
    ratings = np.zeros(count, dtype=np.int32)
    for index in range(count):
        question, answer, ratings[index] = make_example(size, rng, min_path_length, loop_fraction)
        for k in range(copies):
            inputs[index * copies + k] = dihedral(question, k).ravel()
            labels[index * copies + k] = dihedral(answer, k).ravel()
        if progress is not None:
            progress(1)
    return {
        "inputs": inputs,
        "labels": labels,
        "ratings": np.repeat(ratings, copies),
        "groups": np.repeat(np.arange(count, dtype=np.int32), copies),
    }


# --------------------------------------------------------------------------------------------
# Checking predictions
# --------------------------------------------------------------------------------------------


def is_shortest_path(question: np.ndarray, predicted: np.ndarray) -> bool:
    """True iff `predicted` is the question with some open cells marked PATH forming a shortest S-G path.

    Any shortest path counts, not only the labelled one. Grids may be square or flat. The check:
    every token lies in 1..5, non-PATH cells equal the question, PATH cells are open there, the
    number of PATH cells is the BFS distance minus one, and G is reachable from S through PATH
    cells alone (then no cell is stray, since a walk through d+1 cells takes at least d moves).
    """
    question, predicted = np.asarray(question), np.asarray(predicted)
    if question.shape != predicted.shape:
        raise ValueError(f"question and prediction differ in shape: {question.shape} vs {predicted.shape}")
    size = math.isqrt(question.size)
    if size == 0 or size * size != question.size:
        raise ValueError(f"a maze must be square; got {question.size} cells")
    question, predicted = question.reshape(size, size), predicted.reshape(size, size)
    if predicted.min() < WALL or predicted.max() > PATH:
        return False
    marked = predicted == PATH
    if (predicted[~marked] != question[~marked]).any() or (question[marked] != OPEN).any():
        return False
    starts, goals = np.argwhere(question == START), np.argwhere(question == GOAL)
    if len(starts) != 1 or len(goals) != 1:
        return False
    start, goal = tuple(starts[0]), tuple(goals[0])
    shortest = bfs_distances((question == OPEN) | (question == START) | (question == GOAL), start)[goal]
    if shortest < 0 or marked.sum() != shortest - 1:
        return False
    return bool(bfs_distances(marked | (question == START) | (question == GOAL), start)[goal] >= 0)


# --------------------------------------------------------------------------------------------
# Loading files
# --------------------------------------------------------------------------------------------


def load_maze_csv(path: str | Path, size: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Questions, answers (uint8 ids, (N, size*size)) and ratings from a Maze-Hard style CSV.

    The header is `source,q,a,rating`; q and a are size*size characters of `# SGo`. The size is
    taken from the first row (its length must be a square) unless given. A rating may be a
    float (truncated) or empty (-1). Rows are checked for shape, characters, one S and one G, and
    an answer that only adds `o` on open cells; that the path is shortest is not re-checked here
    (use `is_shortest_path`), to keep large files fast.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"maze dataset file not found: {path}; check the path, or generate mazes with build_dataset"
        )
    questions, answers, ratings = [], [], []
    with open(path, newline="", encoding="utf-8", errors="replace") as file:
        reader = csv.reader(file)
        header_seen = False
        for fields in reader:
            where = f"{path}:{reader.line_num}"
            if not any(field.strip() for field in fields):
                continue
            if not header_seen:
                if tuple(field.strip().lower() for field in fields) != CSV_HEADER:
                    raise DatasetFormatError(
                        f"{where}: expected the header 'source,q,a,rating', found {','.join(fields)[:60]!r}; "
                        "add that header as the first line"
                    )
                header_seen = True
                continue
            if len(fields) != 4:
                raise DatasetFormatError(
                    f"{where}: found {len(fields)} comma-separated fields, expected 4; "
                    "make each row 'source,question,answer,rating'"
                )
            _source, q_text, a_text, rating_text = fields
            if size is None:
                size = math.isqrt(len(q_text))
                if size * size != len(q_text) or size == 0:
                    raise DatasetFormatError(
                        f"{where}: the question has {len(q_text)} characters, not a square number; "
                        "write the whole square grid row after row on one line"
                    )
            question = _parse_grid(q_text, size, "question", where)
            answer = _parse_grid(a_text, size, "answer", where)
            _check_pair(question, answer, size, where)
            questions.append(question)
            answers.append(answer)
            ratings.append(_parse_rating(rating_text, where))
    if not header_seen:
        raise DatasetFormatError(
            f"{path}:1: the file is empty; add the header 'source,q,a,rating' and one row per maze"
        )
    cells = 0 if size is None else size * size
    return (
        np.array(questions, dtype=np.uint8).reshape(-1, cells),
        np.array(answers, dtype=np.uint8).reshape(-1, cells),
        np.array(ratings, dtype=np.int64),
    )


def _parse_grid(text: str, size: int, what: str, where: str) -> np.ndarray:
    """One grid's ids from its text, or a DatasetFormatError naming the problem."""
    if len(text) != size * size:
        raise DatasetFormatError(
            f"{where}: the {what} has {len(text)} characters, expected {size * size} for a {size}x{size} maze; "
            "make every grid the same size, written row after row"
        )
    bad = next((i for i, char in enumerate(text) if char not in CHARS), None)
    if bad is not None:
        raise DatasetFormatError(
            f"{where}: the {what} has the unknown character {text[bad]!r} at position {bad + 1}; use only {CHARS!r}"
        )
    return encode_rows([text])[0]


def _check_pair(question: np.ndarray, answer: np.ndarray, size: int, where: str) -> None:
    """One S and one G in the question, no path marks, and an answer that only adds `o` on open cells."""
    for token, name in ((START, "S"), (GOAL, "G")):
        found = int((question == token).sum())
        if found != 1:
            raise DatasetFormatError(
                f"{where}: the question has {found} '{name}' cells, expected exactly one; mark one start and one goal"
            )
    if (question == PATH).any():
        raise DatasetFormatError(f"{where}: the question holds path marks 'o'; the path belongs only in the answer")
    marked = answer == PATH
    wrong = (marked & (question != OPEN)) | (~marked & (answer != question))
    if wrong.any():
        cell = int(np.argmax(wrong))
        raise DatasetFormatError(
            f"{where}: the answer does not match the question at row {cell // size + 1}, column {cell % size + 1} "
            f"(question {CHARS[question[cell] - 1]!r}, answer {CHARS[answer[cell] - 1]!r}); "
            "the answer must equal the question except 'o' on open cells"
        )


def _parse_rating(text: str, where: str) -> int:
    text = text.strip()
    if not text:
        return -1
    try:
        return int(float(text))
    except (ValueError, OverflowError):
        raise DatasetFormatError(
            f"{where}: the rating {text!r} is not a number; write the path length, or leave it empty"
        ) from None
