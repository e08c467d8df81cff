"""Tests for the maze data pipeline: generator, BFS, hard filter, augmentation, checker, CSV loader.

Answers are checked against a BFS written here with collections.deque, and path counts against
brute-force enumeration of simple paths, so the tests share no search code with the module.
"""

from __future__ import annotations

import csv
import time
from collections import deque

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentreason.errors import DatasetFormatError
from latentreason.tasks import maze_data as md
from latentreason.tasks.grids import inverse_dihedral

seeds = st.integers(min_value=0, max_value=2**32 - 1)


def examples(count: int) -> settings:
    return settings(max_examples=count, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- helpers independent of the module


def bfs(passable: np.ndarray, source: tuple[int, int]) -> dict[tuple[int, int], int]:
    """Moves from source to every reachable cell, as a dict."""
    rows, cols = passable.shape
    dist = {source: 0}
    queue = deque([source])
    while queue:
        r, c = queue.popleft()
        for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if 0 <= nr < rows and 0 <= nc < cols and passable[nr, nc] and (nr, nc) not in dist:
                dist[nr, nc] = dist[r, c] + 1
                queue.append((nr, nc))
    return dist


def the_cell(grid: np.ndarray, token: int) -> tuple[int, int]:
    cells = np.argwhere(grid == token)
    assert len(cells) == 1, f"expected one cell with token {token}, found {len(cells)}"
    return tuple(int(x) for x in cells[0])


def assert_unique_shortest_answer(question: np.ndarray, answer: np.ndarray) -> int:
    """The answer's `o` cells are the one and only shortest S-G path; returns its length.

    A cell lies on some shortest path iff dist_S + dist_G equals the S-G distance; the path is
    unique iff those cells number exactly distance + 1 (one per layer), and then they are it.
    """
    assert set(np.unique(question)) <= {md.WALL, md.OPEN, md.START, md.GOAL}
    start, goal = the_cell(question, md.START), the_cell(question, md.GOAL)
    passable = question != md.WALL
    from_start, from_goal = bfs(passable, start), bfs(passable, goal)
    length = from_start[goal]
    on_shortest = {cell for cell, d in from_start.items() if d + from_goal.get(cell, 10**9) == length}
    assert len(on_shortest) == length + 1, "the shortest S-G path is not unique"
    path = {tuple(int(x) for x in cell) for cell in np.argwhere(answer == md.PATH)}
    assert path | {start, goal} == on_shortest
    assert np.array_equal(np.where(answer == md.PATH, md.OPEN, answer), question)
    return length


def simple_path_stats(passable: np.ndarray, source: tuple[int, int]) -> dict[tuple[int, int], tuple[int, int]]:
    """For each reachable cell: (shortest length, number of paths of that length), by enumerating all simple paths."""
    rows, cols = passable.shape
    best: dict[tuple[int, int], list[int]] = {}
    seen = {source}

    def walk(cell: tuple[int, int], length: int) -> None:
        entry = best.setdefault(cell, [length, 0])
        if length < entry[0]:
            entry[:] = [length, 0]
        if length == entry[0]:
            entry[1] += 1
        r, c = cell
        for nxt in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if 0 <= nxt[0] < rows and 0 <= nxt[1] < cols and passable[nxt] and nxt not in seen:
                seen.add(nxt)
                walk(nxt, length + 1)
                seen.remove(nxt)

    walk(source, 0)
    return {cell: (length, count) for cell, (length, count) in best.items()}


def grid_of(text: str) -> np.ndarray:
    return md.encode_rows(["".join(text.split("\n"))])[0].reshape(len(text.split("\n")), -1)


# Two shortest S-G paths of 6 moves (top and middle) and a longer one (bottom) of 10.
TWO_ROUTES = grid_of("#######\n#S    #\n# ### #\n#    G#\n# ### #\n#     #\n#######")
TOP = [(1, 2), (1, 3), (1, 4), (1, 5), (2, 5)]
MIDDLE = [(2, 1), (3, 1), (3, 2), (3, 3), (3, 4)]
BOTTOM = [(2, 1), (3, 1), (4, 1), (5, 1), (5, 2), (5, 3), (5, 4), (5, 5), (4, 5)]


def marked(cells, changes=()) -> np.ndarray:
    grid = TWO_ROUTES.copy()
    for cell in cells:
        grid[cell] = md.PATH
    for cell, token in changes:
        grid[cell] = token
    return grid


# ---------------------------------------------------------------- text, constants


def test_constants_and_codec():
    assert md.CHARS == "# SGo" and md.VOCAB_SIZE == 6
    assert [md.CHARS.index(ch) + 1 for ch in "# SGo"] == [md.WALL, md.OPEN, md.START, md.GOAL, md.PATH]
    assert md.default_min_path(30) == 110 == md.DEFAULT_MIN_PATH[30]
    assert [md.default_min_path(n) for n in (9, 15)] == [10, 28]
    assert (np.diff([md.default_min_path(n) for n in range(5, 40)]) >= 0).all()
    text = "# SGo" * 5
    ids = md.encode_rows([text, text[::-1]])
    assert ids.shape == (2, 25) and ids.dtype == np.uint8 and list(ids[0, :5]) == [1, 2, 3, 4, 5]
    assert md.decode_row(ids[1], 5) == text[::-1]
    assert md.decode_row(np.array([0, 1, 6])) == "?#?"
    with pytest.raises(ValueError, match="unknown maze character 'x'"):
        md.encode_rows(["# x"])
    with pytest.raises(ValueError):
        md.decode_row(ids[0], 4)


# ---------------------------------------------------------------- search


@given(seed=seeds)
@examples(40)
def test_bfs_and_path_counts_match_enumeration(seed):
    rng = np.random.default_rng(seed)
    passable = rng.random((4, 4)) < 0.75
    source = tuple(int(x) for x in rng.integers(4, size=2))
    passable[source] = True
    stats = simple_path_stats(passable, source)
    dist = md.bfs_distances(passable, source)
    counts = md.count_shortest_paths(passable, source, cap=1000)
    capped = md.count_shortest_paths(passable, source)
    for r in range(4):
        for c in range(4):
            length, count = stats.get((r, c), (-1, 0))
            assert dist[r, c] == length
            assert counts[r, c] == count
            assert capped[r, c] == min(count, 2)


def test_bfs_rejects_closed_source():
    with pytest.raises(ValueError, match="not an open cell"):
        md.bfs_distances(np.zeros((3, 3), bool), (1, 1))
    assert md.count_shortest_paths(np.ones((3, 3), bool), (0, 0), cap=100)[2, 2] == 6  # C(4, 2)


# ---------------------------------------------------------------- generation


@given(seed=seeds, size=st.integers(5, 33), loop_fraction=st.sampled_from([0.0, 0.05, 0.3, 1.0]))
@examples(40)
def test_generate_maze_structure(seed, size, loop_fraction):
    grid = md.generate_maze(size, np.random.default_rng(seed), loop_fraction)
    assert grid.shape == (size, size) and grid.dtype == np.uint8
    assert set(np.unique(grid)) <= {md.WALL, md.OPEN}
    border = np.concatenate([grid[0], grid[-1], grid[:, 0], grid[:, -1]])
    assert (border == md.WALL).all()
    open_cells = {tuple(int(x) for x in cell) for cell in np.argwhere(grid == md.OPEN)}
    assert set(bfs(grid == md.OPEN, next(iter(open_cells)))) == open_cells  # connected
    is_open = grid == md.OPEN
    assert not (is_open[1:, 1:] & is_open[:-1, 1:] & is_open[1:, :-1] & is_open[:-1, :-1]).any()  # no 2x2 rooms
    edges = int((is_open[1:] & is_open[:-1]).sum() + (is_open[:, 1:] & is_open[:, :-1]).sum())
    loops = edges - len(open_cells) + 1  # independent cycles of the corridor graph
    n = (size - 1) // 2
    standing = 2 * n * (n - 1) - (n * n - 1)  # walls between corridor cells that a spanning tree leaves
    assert int(loop_fraction * standing) <= loops <= int(loop_fraction * standing) + 1


@given(seed=seeds, size=st.integers(5, 16))
@examples(30)
def test_make_example_unique_shortest_and_single_edits_rejected(seed, size):
    rng = np.random.default_rng(seed)
    question, answer, length = md.make_example(size, rng)
    assert question.shape == answer.shape == (size, size)
    assert length == assert_unique_shortest_answer(question, answer) >= md.default_min_path(size)
    assert md.is_shortest_path(question, answer)
    assert md.is_shortest_path(question.ravel(), answer.ravel())
    # With a unique shortest path, any single changed cell breaks the answer.
    for cell in rng.choice(size * size, size=min(30, size * size), replace=False):
        for token in range(7):
            if token != answer.flat[cell]:
                edited = answer.copy()
                edited.flat[cell] = token
                assert not md.is_shortest_path(question, edited), (cell, token)


def test_make_example_too_hard_names_the_setting():
    with pytest.raises(ValueError, match="lower min_path_length"):
        md.make_example(9, np.random.default_rng(0), min_path_length=60, max_tries=5)
    with pytest.raises(ValueError):
        md.generate_maze(4, np.random.default_rng(0))


def test_paper_size_hard_mazes_and_timing():
    rng = np.random.default_rng(0)
    count = 20
    begin = time.perf_counter()
    made = [md.make_example(30, rng, 110) for _ in range(count)]
    per_maze = (time.perf_counter() - begin) / count
    print(f"30x30 hard maze (>= 110 moves, unique): {per_maze * 1e3:.1f} ms each")
    for question, answer, length in made:
        assert length == assert_unique_shortest_answer(question, answer) >= 110
    assert per_maze < 0.5


def test_build_dataset_hard_filter_and_determinism():
    calls = []
    data = md.build_dataset(12, 30, 110, seed=7, augment=False, progress=calls.append)
    assert calls == [1] * 12
    assert data["inputs"].shape == data["labels"].shape == (12, 900) and data["inputs"].dtype == np.uint8
    for question, answer, rating in zip(data["inputs"], data["labels"], data["ratings"]):
        assert rating >= 110
        assert rating == assert_unique_shortest_answer(question.reshape(30, 30), answer.reshape(30, 30))
    again = md.build_dataset(12, 30, 110, seed=7, augment=False)
    other = md.build_dataset(12, 30, 110, seed=8, augment=False)
    assert all(np.array_equal(data[key], again[key]) for key in data)
    assert not np.array_equal(data["inputs"], other["inputs"])


def test_augmentation_keeps_shortest_paths():
    size = 13
    plain = md.build_dataset(3, size, None, seed=1, augment=False)
    data = md.build_dataset(3, size, None, seed=1, augment=True)
    assert data["inputs"].shape == (24, size * size)
    assert np.array_equal(data["groups"], np.repeat(np.arange(3), 8))
    assert np.array_equal(data["inputs"][::8], plain["inputs"]) and np.array_equal(
        data["ratings"][::8], plain["ratings"]
    )
    for group in range(3):
        original_q = data["inputs"][8 * group].reshape(size, size)
        original_a = data["labels"][8 * group].reshape(size, size)
        variants = set()
        for k in range(8):
            question = data["inputs"][8 * group + k].reshape(size, size)
            answer = data["labels"][8 * group + k].reshape(size, size)
            assert assert_unique_shortest_answer(question, answer) == data["ratings"][8 * group + k]
            assert md.is_shortest_path(question, answer)
            assert np.array_equal(inverse_dihedral(question, k), original_q)
            assert np.array_equal(inverse_dihedral(answer, k), original_a)
            variants.add(question.tobytes())
        assert len(variants) > 1


# ---------------------------------------------------------------- checking predictions


def test_is_shortest_path_accepts_any_shortest_path():
    assert bfs(TWO_ROUTES != md.WALL, (1, 1))[3, 5] == 6
    assert md.is_shortest_path(TWO_ROUTES, marked(TOP))
    assert md.is_shortest_path(TWO_ROUTES, marked(MIDDLE))
    assert md.is_shortest_path(TWO_ROUTES.ravel(), marked(MIDDLE).ravel())
    adjacent = grid_of("####\n#SG#\n#  #\n####")
    assert md.is_shortest_path(adjacent, adjacent)


@pytest.mark.parametrize(
    "prediction",
    [
        pytest.param(marked([(1, 2), (2, 2), (3, 2), (3, 3), (3, 4)]), id="through-wall"),
        pytest.param(marked(TOP + [(5, 3)]), id="stray-cell"),
        pytest.param(marked([(1, 2), (1, 4), (1, 5), (2, 5), (5, 3)]), id="disconnected"),
        pytest.param(marked(TOP[:-1]), id="gap-before-goal"),
        pytest.param(marked(BOTTOM), id="longer-path"),
        pytest.param(TWO_ROUTES.copy(), id="no-path"),
        pytest.param(marked(TOP, [((2, 3), md.OPEN)]), id="wall-opened"),
        pytest.param(marked(TOP, [((5, 3), md.WALL)]), id="wall-added"),
        pytest.param(marked(TOP, [((1, 1), md.PATH)]), id="start-overwritten"),
        pytest.param(marked(TOP, [((1, 1), md.OPEN), ((5, 1), md.START)]), id="start-moved"),
        pytest.param(marked(TOP, [((3, 5), md.OPEN)]), id="goal-removed"),
        pytest.param(marked(TOP, [((5, 2), md.PAD)]), id="pad-token"),
        pytest.param(marked(TOP, [((5, 2), 6)]), id="token-6"),
    ],
)
def test_is_shortest_path_rejects(prediction):
    assert not md.is_shortest_path(TWO_ROUTES, prediction)


def test_is_shortest_path_shape_errors():
    with pytest.raises(ValueError, match="differ in shape"):
        md.is_shortest_path(TWO_ROUTES, TWO_ROUTES.ravel())
    with pytest.raises(ValueError, match="square"):
        md.is_shortest_path(np.ones(10, np.uint8), np.ones(10, np.uint8))


# ---------------------------------------------------------------- CSV


def write_csv(path, rows, header=("source", "q", "a", "rating")):
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)


def csv_rows(count=4, size=10, seed=0):
    data = md.build_dataset(count, size, None, seed=seed, augment=False)
    return data, [
        ["gen", md.decode_row(q, size), md.decode_row(a, size), str(r)]
        for q, a, r in zip(data["inputs"], data["labels"], data["ratings"])
    ]


def test_csv_round_trip(tmp_path):
    data, rows = csv_rows()
    rows[1][3] = f"{rows[1][3]}.0"  # float ratings are accepted
    rows[2][3] = ""  # an empty rating reads as -1
    path = tmp_path / "maze.csv"
    write_csv(path, rows)
    questions, answers, ratings = md.load_maze_csv(path)
    assert questions.dtype == np.uint8 and questions.shape == (4, 100)
    assert np.array_equal(questions, data["inputs"]) and np.array_equal(answers, data["labels"])
    expected = data["ratings"].astype(np.int64)
    expected[2] = -1
    assert np.array_equal(ratings, expected)
    assert np.array_equal(md.load_maze_csv(path, size=10)[0], questions)


def replace_at(text: str, index: int, char: str) -> str:
    return text[:index] + char + text[index + 1 :]


def first(text: str, char: str) -> int:
    return text.index(char)


# Each case edits row 3 (line 4 of the file) and names the words the message must contain.
BAD_ROWS = {
    "short-answer": (lambda q, a, r: [q, a[:-1], r], "99 characters"),
    "unknown-char": (lambda q, a, r: [replace_at(q, 5, "x"), a, r], "unknown character 'x' at position 6"),
    "wall-changed": (lambda q, a, r: [q, replace_at(a, first(a, "#"), " "), r], "does not match the question"),
    "path-on-wall": (lambda q, a, r: [q, replace_at(a, first(a, "#"), "o"), r], "does not match the question"),
    "path-on-start": (lambda q, a, r: [q, replace_at(a, first(a, "S"), "o"), r], "does not match the question"),
    "no-start": (lambda q, a, r: [replace_at(q, first(q, "S"), " "), a, r], "0 'S' cells"),
    "two-starts": (lambda q, a, r: [replace_at(q, first(q, " "), "S"), a, r], "2 'S' cells"),
    "two-goals": (lambda q, a, r: [replace_at(q, first(q, " "), "G"), a, r], "2 'G' cells"),
    "path-in-question": (lambda q, a, r: [a, a, r], "path marks"),
    "bad-rating": (lambda q, a, r: [q, a, "hard"], "rating 'hard'"),
    "three-fields": (lambda q, a, r: [q, a], "found 3 comma-separated fields"),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_csv_errors_name_file_and_line(tmp_path, case):
    edit, words = BAD_ROWS[case]
    _, rows = csv_rows()
    rows[2] = ["gen", *edit(*rows[2][1:])]
    path = tmp_path / f"{case}.csv"
    write_csv(path, rows)
    with pytest.raises(DatasetFormatError) as error:
        md.load_maze_csv(path)
    message = str(error.value)
    assert f"{path.name}:4:" in message and words in message, message
    assert "\n" not in message


def test_csv_file_level_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        md.load_maze_csv(tmp_path / "nowhere.csv")
    _, rows = csv_rows()
    cases = {
        "header.csv": (("source", "question", "solution", "difficulty"), rows, ":1:", "expected the header"),
        "square.csv": (("source", "q", "a", "rating"), [["x", "#" * 10, "#" * 10, "1"]], ":2:", "not a square"),
        "size.csv": (("source", "q", "a", "rating"), rows, ":2:", "expected 144 for a 12x12"),
    }
    for name, (header, body, line, words) in cases.items():
        path = tmp_path / name
        write_csv(path, body, header)
        with pytest.raises(DatasetFormatError) as error:
            md.load_maze_csv(path, size=12 if name == "size.csv" else None)
        assert f"{name}{line}" in str(error.value) and words in str(error.value), str(error.value)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DatasetFormatError, match="empty.csv:1:"):
        md.load_maze_csv(empty)
