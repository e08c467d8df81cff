"""Tests for the Sudoku data pipeline: solver, generator, augmentation, loaders, datasets.

The solver is checked against things it does not share code with: a brute-force enumerator
for 4x4 grids written here, and plain validity checks of its answers on real hard puzzles.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import shared_file
from latentreason.errors import ConfigError, DatasetFormatError
from latentreason.tasks import sudoku_data as sd

seeds = st.integers(min_value=0, max_value=2**32 - 1)


def examples(count: int) -> settings:
    """Hypothesis settings for slow-ish examples: a fixed budget, no per-example deadline."""
    return settings(max_examples=count, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- helpers independent of the module


def brute_force_count_4x4(puzzle: np.ndarray) -> int:
    """Every completion of a 4x4 puzzle, found by trying all permutations for every row."""
    rows = np.asarray(puzzle).reshape(4, 4).tolist()
    row_options = [
        [perm for perm in itertools.permutations(range(1, 5)) if all(g in (0, v) for g, v in zip(row, perm))]
        for row in rows
    ]
    count = 0
    for square in itertools.product(*row_options):
        columns_ok = all(len({square[r][c] for r in range(4)}) == 4 for c in range(4))
        boxes_ok = all(
            len({square[r][c] for r in (top, top + 1) for c in (left, left + 1)}) == 4
            for top in (0, 2)
            for left in (0, 2)
        )
        count += columns_ok and boxes_ok
    return count


def is_valid_by_hand(grid: np.ndarray, box: int) -> bool:
    """Validity written out with sets, row by row, so it does not reuse the module's numpy check."""
    n = box * box
    square = np.asarray(grid).reshape(n, n).tolist()
    digits = set(range(1, n + 1))
    rows = [set(row) for row in square]
    cols = [{square[r][c] for r in range(n)} for c in range(n)]
    boxes = [
        {square[r][c] for r in range(top, top + box) for c in range(left, left + box)}
        for top in range(0, n, box)
        for left in range(0, n, box)
    ]
    return all(unit == digits for unit in rows + cols + boxes)


def parse(text: str) -> np.ndarray:
    return np.array([0 if ch in ".0" else int(ch) for ch in text], dtype=np.int8)


def write_csv(path: Path, puzzles, solutions, ratings, header: str = "source,q,a,rating") -> None:
    rows = [header]
    for puzzle, solution, rating in zip(puzzles, solutions, ratings):
        rows.append(f"gen,{sd.grid_to_string(puzzle)},{sd.grid_to_string(solution)},{rating}")
    path.write_text("\n".join(rows) + "\n")


def expect_format_error(loader, path: Path, lineno: int, *phrases: str) -> str:
    """Run the loader, check the error names the file and the line, and contains the phrases."""
    with pytest.raises(DatasetFormatError) as caught:
        loader(path)
    message = str(caught.value)
    assert f"{path.name}:{lineno}:" in message, message
    for phrase in phrases:
        assert phrase in message, message
    return message


# A 9x9 solution and puzzle to build bad files from.
SOLUTION_9 = "534678912672195348198342567859761423426853791713924856961537284287419635345286179"
PUZZLE_9 = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"


# ---------------------------------------------------------------- basics


def test_encoding_round_trip_and_vocab():
    grid = parse(PUZZLE_9)
    tokens = sd.encode(grid)
    assert tokens.dtype == np.uint8
    assert tokens.min() >= 1 and tokens.max() <= 10
    assert (tokens[grid == 0] == 1).all()
    np.testing.assert_array_equal(sd.decode(tokens), grid)
    assert sd.vocab_size(3) == 11 and sd.vocab_size(2) == 6


def test_validity_checks():
    solution = parse(SOLUTION_9)
    assert sd.is_valid_solution(solution) and is_valid_by_hand(solution, 3)
    assert sd.is_consistent(parse(PUZZLE_9), solution)
    swapped = solution.copy()
    swapped[[0, 1]] = swapped[[1, 0]]  # rows still fine, columns broken
    assert not sd.is_valid_solution(swapped)
    assert not sd.is_valid_solution(parse(PUZZLE_9))  # blanks
    wrong_given = parse(PUZZLE_9)
    wrong_given[0] = 4
    assert not sd.is_consistent(wrong_given, solution)


def test_validity_of_many_grids_in_chunks():
    good, bad = parse(SOLUTION_9), parse(SOLUTION_9)
    bad[[0, 9]] = bad[[9, 0]]  # columns fine, rows and boxes broken
    stack = np.array([good, bad, good, good, bad])
    valid = sd._valid_solution_mask(stack, 3, chunk=2)
    np.testing.assert_array_equal(valid, [True, False, True, True, False])


def test_solver_on_known_puzzle():
    solutions, nodes = sd.solve_with_stats(parse(PUZZLE_9))
    assert len(solutions) == 1 and nodes > 0
    np.testing.assert_array_equal(solutions[0], parse(SOLUTION_9))
    assert sd.rating(parse(PUZZLE_9)) == nodes


def test_solver_handles_contradictions_and_empty_grids():
    clash = np.zeros(81, dtype=np.int8)
    clash[0] = clash[1] = 5
    assert sd.count_solutions(clash) == 0
    assert sd.count_solutions(np.zeros(81, dtype=np.int8), limit=3) == 3
    assert sd.count_solutions(np.zeros(16, dtype=np.int8), box=2, limit=1000) == 288  # all 4x4 grids


@examples(40)
@given(seed=seeds, blanks=st.integers(min_value=0, max_value=11))
def test_solver_counts_agree_with_brute_force_4x4(seed, blanks):
    rng = np.random.default_rng(seed)
    grid = sd.random_solution(rng, box=2)
    grid[rng.choice(16, size=blanks, replace=False)] = 0
    solutions = sd.solve(grid, box=2, limit=1000)
    assert len(solutions) == brute_force_count_4x4(grid)
    assert len({s.tobytes() for s in solutions}) == len(solutions)
    for solution in solutions:
        assert is_valid_by_hand(solution, 2) and sd.is_consistent(grid, solution)


@pytest.mark.parametrize("box", [2, 3])
def test_random_solution_is_valid_and_varies(box):
    rng = np.random.default_rng(0)
    grids = [sd.random_solution(rng, box) for _ in range(5)]
    assert all(is_valid_by_hand(grid, box) for grid in grids)
    assert len({grid.tobytes() for grid in grids}) > 1


# ---------------------------------------------------------------- generation


def is_minimal(puzzle: np.ndarray, box: int) -> bool:
    """No given can be removed without losing uniqueness."""
    for cell in np.flatnonzero(puzzle):
        fewer = puzzle.copy()
        fewer[cell] = 0
        if sd.count_solutions(fewer, box) == 1:
            return False
    return True


def check_givens_in_range(puzzle, box, min_givens, max_givens):
    givens = sd.count_givens(puzzle)
    assert givens >= min_givens
    # More than max_givens only when the generator got stuck at a minimal puzzle.
    assert givens <= max_givens or is_minimal(puzzle, box)


@examples(60)
@given(seed=seeds, low=st.integers(min_value=0, max_value=16), span=st.integers(min_value=0, max_value=16))
def test_generated_4x4_puzzles_are_unique_by_brute_force(seed, low, span):
    min_givens, max_givens = low, min(16, low + span)
    puzzle, solution, rating = sd.generate_puzzle(np.random.default_rng(seed), 2, min_givens, max_givens)
    assert brute_force_count_4x4(puzzle) == 1
    assert is_valid_by_hand(solution, 2) and sd.is_consistent(puzzle, solution)
    assert rating == sd.rating(puzzle, 2)
    check_givens_in_range(puzzle, 2, min_givens, max_givens)


@examples(15)
@given(seed=seeds, limits=st.sampled_from([(17, 81), (45, 55), (30, 40)]))
def test_generated_9x9_puzzles_are_unique(seed, limits):
    puzzle, solution, _rating = sd.generate_puzzle(np.random.default_rng(seed), 3, *limits)
    assert sd.count_solutions(puzzle, 3, limit=2) == 1
    np.testing.assert_array_equal(sd.solve(puzzle)[0], solution)
    assert is_valid_by_hand(solution, 3) and sd.is_consistent(puzzle, solution)
    check_givens_in_range(puzzle, 3, *limits)


def test_generation_is_deterministic():
    first = sd.generate_puzzle(np.random.default_rng(7), 3, 30, 40)
    second = sd.generate_puzzle(np.random.default_rng(7), 3, 30, 40)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_generation_rejects_bad_ranges():
    with pytest.raises(ValueError):
        sd.generate_puzzle(np.random.default_rng(0), 3, 50, 40)
    with pytest.raises(ValueError):
        sd.generate_puzzle(np.random.default_rng(0), 2, 5, 17)


# ---------------------------------------------------------------- augmentation


def check_augmentation(seed_puzzle: int, seed_augment: int, box: int) -> None:
    n = box * box
    puzzle, solution, _ = sd.generate_puzzle(np.random.default_rng(seed_puzzle), box, n * n // 3, n * n // 2)
    new_puzzle, new_solution = sd.augment(puzzle, solution, np.random.default_rng(seed_augment), box)
    assert new_puzzle.shape == puzzle.shape and new_puzzle.dtype == puzzle.dtype
    assert is_valid_by_hand(new_solution, box)
    assert sd.is_consistent(new_puzzle, new_solution)
    assert sd.count_givens(new_puzzle) == sd.count_givens(puzzle)
    found = sd.solve(new_puzzle, box, limit=2)
    assert len(found) == 1
    np.testing.assert_array_equal(found[0], new_solution)


@examples(50)
@given(seed_puzzle=seeds, seed_augment=seeds)
def test_augmentation_preserves_sudoku_4x4(seed_puzzle, seed_augment):
    check_augmentation(seed_puzzle, seed_augment, box=2)


@examples(20)
@given(seed_puzzle=seeds, seed_augment=seeds)
def test_augmentation_preserves_sudoku_9x9(seed_puzzle, seed_augment):
    check_augmentation(seed_puzzle, seed_augment, box=3)


def test_augmentation_changes_the_grid_and_sometimes_transposes():
    puzzle, solution = parse(PUZZLE_9), parse(SOLUTION_9)
    rng = np.random.default_rng(0)
    outputs = [sd.augment(puzzle, solution, rng) for _ in range(20)]
    assert all(not np.array_equal(new_solution, solution) for _, new_solution in outputs)
    # Givens all in one row stay in one row under band/row/stack/column shuffles and land in one
    # column only under a transpose: both must occur (p = 0.5 each).
    one_row = solution.copy()
    one_row[9:] = 0  # only the first row given
    shapes = set()
    for _ in range(20):
        new_puzzle, _ = sd.augment(one_row, solution, rng)
        rows, cols = np.nonzero(new_puzzle.reshape(9, 9))
        shapes.add("row" if len(set(rows)) == 1 else "column" if len(set(cols)) == 1 else "other")
    assert shapes == {"row", "column"}


# ---------------------------------------------------------------- the real hard puzzles


def test_solver_on_magictour_file():
    lines = [line.strip() for line in shared_file("sudoku", "magictour_top1465_dev.txt").read_text().splitlines()]
    puzzles = [parse(line) for line in lines if line and not line.startswith("#")][:30]
    assert len(puzzles) == 30
    for puzzle in puzzles:
        solutions = sd.solve(puzzle, 3, limit=2)
        assert len(solutions) == 1
        assert is_valid_by_hand(solutions[0], 3) and sd.is_consistent(puzzle, solutions[0])


def test_load_lines_on_magictour_head(tmp_path):
    head = (
        shared_file("sudoku", "magictour_top1465_dev.txt").read_text().splitlines()[:12]
    )  # two comment lines and ten puzzles
    path = tmp_path / "head.txt"
    path.write_text("\n".join(head) + "\n")
    puzzles, solutions, ratings = sd.load_sudoku_file(path)
    assert puzzles.shape == (10, 81) and solutions.shape == (10, 81) and (ratings > 0).all()
    assert all(sd.is_valid_solution(s) for s in solutions)


# ---------------------------------------------------------------- loaders: good files


def test_csv_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    generated = [sd.generate_puzzle(rng, 3, 30, 50) for _ in range(5)]
    puzzles = np.array([g[0] for g in generated])
    solutions = np.array([g[1] for g in generated])
    ratings = np.array([g[2] for g in generated])
    path = tmp_path / "good.csv"
    write_csv(path, puzzles, solutions, ratings)
    loaded = sd.load_sudoku_csv(path)
    np.testing.assert_array_equal(loaded[0], puzzles)
    np.testing.assert_array_equal(loaded[1], solutions)
    np.testing.assert_array_equal(loaded[2], ratings)
    assert loaded[0].dtype == np.int8 and loaded[0].shape == (5, 81)
    # The dispatcher picks the CSV reader, and '0' works as a blank too.
    path.write_text(path.read_text().replace(".", "0"))
    np.testing.assert_array_equal(sd.load_sudoku_file(path)[0], puzzles)


def test_lines_file_with_comments_and_blank_lines(tmp_path):
    path = tmp_path / "puzzles.txt"
    path.write_text(f"# a comment\n\n{PUZZLE_9}\n{PUZZLE_9.replace('.', '0')}\n")
    puzzles, solutions, ratings = sd.load_sudoku_file(path)
    assert puzzles.shape == (2, 81)
    np.testing.assert_array_equal(solutions[0], parse(SOLUTION_9))
    assert ratings[0] == ratings[1] == sd.rating(parse(PUZZLE_9))


def test_4x4_lines_file(tmp_path):
    puzzle, solution, _ = sd.generate_puzzle(np.random.default_rng(1), 2, 4, 8)
    path = tmp_path / "small.txt"
    path.write_text(sd.grid_to_string(puzzle) + "\n")
    _puzzles, solutions, _ratings = sd.load_sudoku_lines(path, box=2)
    np.testing.assert_array_equal(solutions[0], solution)


# ---------------------------------------------------------------- loaders: bad files


def csv_with_row(tmp_path: Path, row: str, name: str = "bad.csv") -> Path:
    """A CSV with one good row on line 2 and the given row on line 3."""
    path = tmp_path / name
    path.write_text(f"source,q,a,rating\ngood,{PUZZLE_9},{SOLUTION_9},5\n{row}\n")
    return path


def test_csv_wrong_field_count(tmp_path):
    path = csv_with_row(tmp_path, f"src,{PUZZLE_9},{SOLUTION_9}")
    expect_format_error(sd.load_sudoku_csv, path, 3, "3 comma-separated fields")


def test_csv_wrong_length(tmp_path):
    path = csv_with_row(tmp_path, f"src,{PUZZLE_9[:-1]},{SOLUTION_9},5")
    expect_format_error(sd.load_sudoku_csv, path, 3, "80 characters", "expected 81")


def test_csv_bad_character(tmp_path):
    path = csv_with_row(tmp_path, f"src,{PUZZLE_9[:10]}x{PUZZLE_9[11:]},{SOLUTION_9},5")
    expect_format_error(sd.load_sudoku_csv, path, 3, "'x'", "position 11")


def test_csv_non_ascii_character(tmp_path):
    path = csv_with_row(tmp_path, f"src,{PUZZLE_9},{SOLUTION_9[:80]}\u00e9,5")
    expect_format_error(sd.load_sudoku_csv, path, 3, "solution", "'\u00e9'", "position 81")


def test_csv_inconsistent_solution(tmp_path):
    # A valid grid, but a different one: relabel digits 1 <-> 2.
    other = SOLUTION_9.translate(str.maketrans("12", "21"))
    path = csv_with_row(tmp_path, f"src,{PUZZLE_9},{other},5")
    expect_format_error(sd.load_sudoku_csv, path, 3, "does not match the puzzle")


def test_csv_invalid_solution(tmp_path):
    broken = SOLUTION_9[1] + SOLUTION_9[0] + SOLUTION_9[2:]
    path = csv_with_row(tmp_path, f"src,..{PUZZLE_9[2:]},{broken},5")
    expect_format_error(sd.load_sudoku_csv, path, 3, "not a valid complete grid")


def test_csv_non_integer_rating(tmp_path):
    path = csv_with_row(tmp_path, f"src,{PUZZLE_9},{SOLUTION_9},hard")
    expect_format_error(sd.load_sudoku_csv, path, 3, "not an integer")


def test_csv_bad_header(tmp_path):
    path = tmp_path / "noheader.csv"
    path.write_text(f"src,{PUZZLE_9},{SOLUTION_9},5\n")
    expect_format_error(sd.load_sudoku_csv, path, 1, "header")


@pytest.mark.parametrize("loader", [sd.load_sudoku_csv, sd.load_sudoku_lines, sd.load_sudoku_file])
def test_empty_file(tmp_path, loader):
    path = tmp_path / "empty.txt"
    path.write_text("")
    expect_format_error(loader, path, 1, "no puzzles")


def test_csv_header_only(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("source,q,a,rating\n")
    expect_format_error(sd.load_sudoku_csv, path, 2, "no puzzles")


def test_lines_with_two_solutions(tmp_path):
    # Only the last 11 digits of a grid: far too few givens for a unique solution.
    ambiguous = "." * 70 + SOLUTION_9[70:]
    path = tmp_path / "puzzles.txt"
    path.write_text(f"# header comment\n{PUZZLE_9}\n\n{ambiguous}\n")
    expect_format_error(sd.load_sudoku_lines, path, 4, "more than one solution")


def test_lines_with_no_solution(tmp_path):
    path = tmp_path / "puzzles.txt"
    path.write_text("11" + "." * 79 + "\n")
    expect_format_error(sd.load_sudoku_lines, path, 1, "no solution")


def test_lines_wrong_length(tmp_path):
    path = tmp_path / "puzzles.txt"
    path.write_text(f"{PUZZLE_9}\n{PUZZLE_9}.\n")
    expect_format_error(sd.load_sudoku_file, path, 2, "82 characters")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.csv"):
        sd.load_sudoku_file(tmp_path / "nothere.csv")


# ---------------------------------------------------------------- datasets


def test_build_dataset_shapes_and_determinism():
    calls = []
    data = sd.build_dataset(6, augmentations=3, rng_seed=11, box=3, min_givens=30, max_givens=50, progress=calls.append)
    assert calls == [1] * 6
    assert data["inputs"].shape == data["labels"].shape == (24, 81)
    assert data["inputs"].dtype == data["labels"].dtype == np.uint8
    assert data["ratings"].shape == (24,) and data["ratings"].dtype == np.int32
    assert data["inputs"].min() >= 1 and data["labels"].min() >= 2 and data["labels"].max() <= 10
    for tokens_in, tokens_out in zip(data["inputs"], data["labels"]):
        puzzle, solution = sd.decode(tokens_in), sd.decode(tokens_out)
        assert sd.is_valid_solution(solution) and sd.is_consistent(puzzle, solution)
        assert sd.count_solutions(puzzle) == 1
    # Original first, then its copies, all with the original's rating and group.
    assert (data["ratings"].reshape(6, 4) == data["ratings"][::4, None]).all()
    np.testing.assert_array_equal(data["groups"], np.repeat(np.arange(6), 4))

    again = sd.build_dataset(6, augmentations=3, rng_seed=11, box=3, min_givens=30, max_givens=50)
    for key in data:
        np.testing.assert_array_equal(data[key], again[key])
    other = sd.build_dataset(6, augmentations=3, rng_seed=12, box=3, min_givens=30, max_givens=50)
    assert not np.array_equal(data["inputs"], other["inputs"])


def test_min_search_nodes_keeps_only_puzzles_that_need_search():
    """Every kept puzzle needs the asked-for placements (counted again here); without the floor most do not."""
    plain = sd.build_dataset(20, augmentations=0, rng_seed=4, box=3, min_givens=17, max_givens=30)
    hard = sd.build_dataset(5, augmentations=1, rng_seed=4, box=3, min_givens=17, max_givens=30, min_search_nodes=120)
    assert (plain["ratings"] < 120).mean() > 0.5
    for tokens_in, rated in zip(hard["inputs"][::2], hard["ratings"][::2]):  # the originals, not their copies
        puzzle = sd.decode(tokens_in)
        assert sd.rating(puzzle) == rated >= 120 and sd.count_solutions(puzzle) == 1
    again = sd.build_dataset(5, augmentations=1, rng_seed=4, box=3, min_givens=17, max_givens=30, min_search_nodes=120)
    np.testing.assert_array_equal(again["inputs"], hard["inputs"])


def test_an_unreachable_min_search_nodes_is_named(monkeypatch):
    monkeypatch.setattr(sd, "MAX_DRAWS", 3)
    with pytest.raises(ConfigError, match="No generated puzzle in 3 draws needed task.min_search_nodes=100000"):
        sd.build_dataset(1, augmentations=0, rng_seed=0, box=2, min_givens=4, max_givens=8, min_search_nodes=100_000)


def test_build_dataset_is_the_same_in_worker_processes():
    """Each puzzle has a seed of its own: two processes generate exactly what one does, in order."""
    one = sd.build_dataset(200, augmentations=1, rng_seed=5, box=2, min_givens=4, max_givens=10, workers=1)
    calls = []
    two = sd.build_dataset(200, 1, 5, box=2, min_givens=4, max_givens=10, progress=calls.append, workers=2)
    assert calls == [1] * 200
    for key in one:
        np.testing.assert_array_equal(two[key], one[key])


def test_a_long_puzzle_list_is_solved_in_processes_in_order(tmp_path):
    """250 lines: enough for worker processes; every answer lands on its own line, with a bar tick each."""
    data = sd.build_dataset(250, augmentations=0, rng_seed=3, box=2, min_givens=4, max_givens=8)
    path = tmp_path / "puzzles.txt"
    path.write_text("# 4x4\n" + "\n".join(sd.grid_to_string(sd.decode(row)) for row in data["inputs"]) + "\n")
    calls = []
    puzzles, solutions, _ = sd.load_sudoku_lines(path, box=2, progress=calls.append)
    assert calls == [1] * 250 and sd.count_puzzle_lines(path) == 250
    np.testing.assert_array_equal(sd.encode(puzzles), data["inputs"])
    np.testing.assert_array_equal(sd.encode(solutions), data["labels"])


def test_build_dataset_4x4_without_augmentation():
    data = sd.build_dataset(10, augmentations=0, rng_seed=0, box=2, min_givens=4, max_givens=10)
    assert data["inputs"].shape == (10, 16) and data["labels"].max() <= sd.vocab_size(2) - 1
    for tokens_in in data["inputs"]:
        assert brute_force_count_4x4(sd.decode(tokens_in)) == 1


def test_from_puzzles_on_loaded_file(tmp_path):
    path = tmp_path / "puzzles.txt"
    path.write_text(PUZZLE_9 + "\n")
    puzzles, solutions, ratings = sd.load_sudoku_file(path)
    data = sd.from_puzzles(puzzles, solutions, augmentations=2, rng_seed=0, box=3, ratings=ratings)
    assert data["inputs"].shape == (3, 81)
    np.testing.assert_array_equal(sd.decode(data["inputs"][0]), parse(PUZZLE_9))
    assert (data["ratings"] == ratings[0]).all()
    unrated = sd.from_puzzles(puzzles, solutions, augmentations=1, rng_seed=0)
    assert (unrated["ratings"] == -1).all()
