"""Tests for the ARC data pipeline: loading and validation, augmentations, tokens, decoding.

Expectations are computed here without the module: plain json.load counts, the 8 symmetries
spelt with slicing instead of grids.py, token canvases written out by hand, crops at known offsets.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentreason.errors import DatasetFormatError
from latentreason.tasks import arc_data as ad

ARC1_TRAINING = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "arc" / "arc1-training"

# The 8 symmetries in grids.DIHEDRAL_NAMES order, spelt independently with slicing.
SLICED = (
    lambda g: g,
    lambda g: g.T[::-1],  # rot90, counter-clockwise
    lambda g: g[::-1, ::-1],  # rot180
    lambda g: g[::-1].T,  # rot270
    lambda g: g[:, ::-1],  # flip_lr
    lambda g: g[::-1],  # flip_ud
    lambda g: g.T,  # transpose
    lambda g: g[::-1, ::-1].T,  # anti-transpose
)


def arc_dir() -> Path:
    if not ARC1_TRAINING.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{ARC1_TRAINING} is missing in CI")
        pytest.skip(f"{ARC1_TRAINING} is not present on this machine (it lives beside the repo, in ../shared/data)")
    return ARC1_TRAINING


@pytest.fixture(scope="module")
def raw_tasks() -> dict[str, dict]:
    return {file.stem: json.loads(file.read_text()) for file in sorted(arc_dir().glob("*.json"))}


@pytest.fixture(scope="module")
def tasks() -> list[ad.ArcTask]:
    return ad.load_tasks(arc_dir())


def random_colours(rng: np.random.Generator) -> tuple[int, ...]:
    return (0, *rng.permutation(np.arange(1, 10)).tolist())


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool((a == b).all())


def key(grids) -> tuple:
    return tuple((g.shape, np.asarray(g, dtype=np.uint8).tobytes()) for g in grids)


def task_of(train, test) -> ad.ArcTask:
    def grid(g):
        return None if g is None else np.array(g, dtype=np.uint8)

    return ad.ArcTask("t", [(grid(i), grid(o)) for i, o in train], [(grid(i), grid(o)) for i, o in test])


# ---------------------------------------------------------------------------- the real training set


def test_all_training_tasks_load(raw_tasks, tasks):
    assert len(raw_tasks) == len(tasks) == 400
    assert [task.id for task in tasks] == sorted(raw_tasks)
    for task in tasks:
        raw = raw_tasks[task.id]
        assert len(task.train) == len(raw["train"]) and len(task.test) == len(raw["test"])
        pairs = [*task.train, *task.test]
        for (inp, out), raw_pair in zip(pairs, [*raw["train"], *raw["test"]]):
            assert inp.dtype == out.dtype == np.uint8
            assert inp.tolist() == raw_pair["input"] and out.tolist() == raw_pair["output"]
    # Totals from the published ARC-AGI-1 training set.
    assert sum(len(raw["train"]) for raw in raw_tasks.values()) == sum(len(t.train) for t in tasks) == 1302
    assert sum(len(raw["test"]) for raw in raw_tasks.values()) == sum(len(t.test) for t in tasks) == 416
    assert all(ad.fits(task, ad.MAX_SIZE) for task in tasks)
    assert 0 < sum(ad.fits(task, 10) for task in tasks) < 400


def test_every_grid_round_trips_through_every_augmentation(tasks):
    rng = np.random.default_rng(0)
    size = ad.MAX_SIZE
    checked = 0
    for task in tasks:
        for grid in task.grids():
            for transform in range(8):
                colours = random_colours(rng)
                aug = ad.Augmentation(transform, colours)
                augmented = ad.apply(grid, aug)
                where = (task.id, grid.shape, aug.name)
                assert same(augmented, np.array(colours)[SLICED[transform](grid)]), where
                assert same(ad.invert(augmented, aug), grid), where
                assert same(ad.decode(ad.encode(augmented)), augmented), where

                rows, cols = augmented.shape
                top, left = int(rng.integers(size - rows + 1)), int(rng.integers(size - cols + 1))
                canvas = ad.encode(augmented, size, (top, left)).reshape(size, size)
                assert same(canvas[top : top + rows, left : left + cols] - 2, augmented), where
                eos = (cols if top + rows < size else 0) + (rows if left + cols < size else 0)
                assert (canvas == ad.EOS).sum() == eos, where
                assert (canvas == ad.PAD).sum() == size * size - rows * cols - eos, where
            checked += 1
    assert checked == 2 * (1302 + 416)


def test_translation_is_shared_by_input_and_output(tasks):
    rng = np.random.default_rng(1)
    offsets = set()
    for task in tasks[:100]:
        for inp, out in task.train:
            in_tokens, out_tokens = ad.encode_pair(inp, out, ad.MAX_SIZE, rng)
            in_canvas, out_canvas = in_tokens.reshape(30, 30), out_tokens.reshape(30, 30)
            top, left = np.argwhere(in_canvas >= 2).min(axis=0)
            assert tuple(np.argwhere(out_canvas >= 2).min(axis=0)) == (top, left)
            for grid, canvas in ((inp, in_canvas), (out, out_canvas)):
                rows, cols = grid.shape
                np.testing.assert_array_equal(canvas[top : top + rows, left : left + cols] - 2, grid)
            offsets.add((int(top), int(left)))
            plain_in, plain_out = ad.encode_pair(inp, out)
            np.testing.assert_array_equal(plain_in, ad.encode(inp))
            np.testing.assert_array_equal(plain_out, ad.encode(out))
    assert len(offsets) > 50


# ---------------------------------------------------------------------------- transforms and colours

GRID_2X3 = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
EXPECTED_2X3 = (
    [[1, 2, 3], [4, 5, 6]],
    [[3, 6], [2, 5], [1, 4]],  # rot90
    [[6, 5, 4], [3, 2, 1]],  # rot180
    [[4, 1], [5, 2], [6, 3]],  # rot270
    [[3, 2, 1], [6, 5, 4]],  # flip_lr
    [[4, 5, 6], [1, 2, 3]],  # flip_ud
    [[1, 4], [2, 5], [3, 6]],  # transpose
    [[6, 3], [5, 2], [4, 1]],  # anti-transpose
)


@pytest.mark.parametrize("transform", range(8))
def test_transform_semantics_by_hand(transform):
    aug = ad.Augmentation(transform)
    assert ad.apply(GRID_2X3, aug).tolist() == EXPECTED_2X3[transform]
    assert ad.invert(np.array(EXPECTED_2X3[transform], dtype=np.uint8), aug).tolist() == GRID_2X3.tolist()


def test_transforms_are_distinct_on_a_non_symmetric_grid():
    assert len({key([ad.apply(GRID_2X3, ad.Augmentation(k))]) for k in range(8)}) == 8


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), transform=st.integers(0, 7))
def test_colour_map_keeps_black_and_is_a_bijection(seed, transform):
    colours = random_colours(np.random.default_rng(seed))
    aug = ad.Augmentation(transform, colours)
    all_colours = np.arange(10, dtype=np.uint8).reshape(2, 5)
    mapped = ad.apply(all_colours, aug)
    assert mapped[SLICED[transform](all_colours) == 0].tolist() == [0]
    assert sorted(mapped.ravel().tolist()) == list(range(10))
    # colour c becomes colours[c], wherever the transform puts it
    np.testing.assert_array_equal(mapped, np.array(colours)[SLICED[transform](all_colours)])
    assert ad.Augmentation.from_name(aug.name) == aug


def test_augmentation_names_and_validation():
    aug = ad.Augmentation(3, (0, 2, 7, 1, 8, 4, 5, 9, 3, 6))
    assert aug.name == "t3-0271845936"
    assert ad.Augmentation.from_name("t3-0271845936") == aug
    assert ad.IDENTITY.name == "t0-0123456789" and ad.IDENTITY == ad.Augmentation(0, tuple(range(10)))
    for bad in ("t8-0123456789", "t3-1023456789", "t3-0113456789", "t3-012345678", "3-0123456789"):
        with pytest.raises(ValueError):
            ad.Augmentation.from_name(bad)


# ---------------------------------------------------------------------------- tokens

# [[1,2,3],[4,5,6]] as tokens is [[3,4,5],[6,7,8]]; 1 is EOS, 0 is PAD.
CANVASES = {
    (0, 0): [
        [3, 4, 5, 1, 0],
        [6, 7, 8, 1, 0],
        [1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ],
    (1, 1): [
        [0, 0, 0, 0, 0],
        [0, 3, 4, 5, 1],
        [0, 6, 7, 8, 1],
        [0, 1, 1, 1, 0],
        [0, 0, 0, 0, 0],
    ],
    (3, 2): [  # touches the bottom and the right border: no EOS at all
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 3, 4, 5],
        [0, 0, 6, 7, 8],
    ],
    (3, 0): [  # touches the bottom: EOS column only
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [3, 4, 5, 1, 0],
        [6, 7, 8, 1, 0],
    ],
    (0, 2): [  # touches the right border: EOS row only
        [0, 0, 3, 4, 5],
        [0, 0, 6, 7, 8],
        [0, 0, 1, 1, 1],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ],
}


@pytest.mark.parametrize("offset", CANVASES)
def test_encode_places_eos_by_hand(offset):
    tokens = ad.encode(GRID_2X3, size=5, offset=offset)
    assert tokens.dtype == np.uint8 and tokens.shape == (25,)
    assert tokens.reshape(5, 5).tolist() == CANVASES[offset]


def test_encode_full_canvas_and_bad_sizes():
    full = np.arange(9, dtype=np.uint8).reshape(3, 3)
    assert ad.encode(full, size=3).tolist() == list(range(2, 11))
    with pytest.raises(ValueError, match=r"2x3 grid .*size=2"):
        ad.encode(GRID_2X3, size=2)
    with pytest.raises(ValueError, match=r"4x1 grid .*size=3"):
        ad.encode_pair(np.zeros((2, 2), np.uint8), np.zeros((4, 1), np.uint8), size=3, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="outside"):
        ad.encode(GRID_2X3, size=5, offset=(4, 0))
    with pytest.raises(ValueError, match="0..9"):
        ad.encode(np.array([[10]]), size=5)


def test_translation_range_uses_the_larger_grid():
    inp, out = np.ones((2, 3), np.uint8), np.full((4, 1), 2, np.uint8)  # together 4 rows, 3 columns
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):
        in_tokens, out_tokens = ad.encode_pair(inp, out, size=5, rng=rng)
        top, left = np.argwhere(in_tokens.reshape(5, 5) == 3).min(axis=0)
        assert tuple(np.argwhere(out_tokens.reshape(5, 5) == 4).min(axis=0)) == (top, left)
        seen.add((int(top), int(left)))
    assert seen == {(r, c) for r in range(2) for c in range(3)}


def canvas(rows: list[list[int]], size: int = 5) -> np.ndarray:
    tokens = np.zeros((size, size), dtype=np.uint8)
    for r, row in enumerate(rows):
        tokens[r, : len(row)] = row
    return tokens.reshape(-1)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([[3, 4, 1, 7, 9], [5, 6, 1, 3, 3], [1, 1, 0, 5, 5], [4, 4, 4]], [[1, 2], [3, 4]]),  # garbage after EOS
        ([[2, 3, 4, 5], [6, 7, 8, 9, 1], [2], [2], [2, 1]], [[0, 1, 2, 3], [4, 5, 6, 7]]),  # widths 4,4,1,1,1
        ([[2, 2, 2, 1], [3, 3, 3, 3, 3], [4, 4, 4], [5, 5, 5, 5], [1, 9, 9, 9]], [[0] * 3, [1] * 3, [2] * 3, [3] * 3]),
        ([[11, 11], [11], [0]], [[9, 9]]),  # areas 2 and 2: the first wins
        ([[2, 12, 2], [2, 2, 2]], [[0], [0]]),  # 12 is no colour token
        ([], np.zeros((0, 0))),  # all PAD
        ([[1, 2, 2], [2, 2, 2]], np.zeros((0, 0))),  # starts with EOS
        ([[0], [2, 2, 2]], np.zeros((0, 0))),  # a colour row after a PAD row does not count
    ],
)
def test_decode_hand_made_predictions(rows, expected):
    decoded = ad.decode(canvas(rows), size=5)
    expected = np.array(expected)
    assert decoded.dtype == np.uint8 and decoded.shape == expected.shape
    np.testing.assert_array_equal(decoded, expected)
    np.testing.assert_array_equal(ad.decode(canvas(rows).reshape(5, 5).astype(np.int64), size=5), expected)


def test_decode_rejects_the_wrong_length():
    with pytest.raises(ValueError, match="900 tokens"):
        ad.decode(np.zeros(81, np.uint8))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), size=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_random_grids_round_trip(data, size, seed):
    rng = np.random.default_rng(seed)
    rows, cols = data.draw(st.integers(1, size)), data.draw(st.integers(1, size))
    grid = rng.integers(0, 10, (rows, cols)).astype(np.uint8)
    np.testing.assert_array_equal(ad.decode(ad.encode(grid, size), size), grid)


# ---------------------------------------------------------------------------- augmentations()


def augmented_key(task: ad.ArcTask, aug: ad.Augmentation) -> tuple:
    return key(ad.apply(grid, aug) for grid in task.grids())


def test_augmentations_are_distinct_and_deterministic(tasks):
    task = tasks[0]
    augs = ad.augmentations(task, 20, np.random.default_rng(5))
    assert augs[0] == ad.IDENTITY and len(augs) == 21
    assert len({augmented_key(task, aug) for aug in augs}) == 21
    assert ad.augmentations(task, 20, np.random.default_rng(5)) == augs
    assert ad.augmentations(task, 20, np.random.default_rng(6)) != augs
    assert ad.augmentations(task, 0, np.random.default_rng(5)) == [ad.IDENTITY]


def test_augmentations_of_a_symmetric_single_colour_task():
    # Every grid is symmetric and single-coloured: only the new colour of 5 matters, 9 variants.
    square = [[5, 5], [5, 5]]
    task = task_of([(square, [[5]])], [(square, None)])
    augs = ad.augmentations(task, 50, np.random.default_rng(0))
    assert augs[0] == ad.IDENTITY and len(augs) == 9
    assert sorted(aug.colours[5] for aug in augs) == list(range(1, 10))
    assert len({augmented_key(task, aug) for aug in augs}) == 9


def test_augmentations_stop_after_count_times_five_draws():
    class CountingRng:
        def __init__(self):
            self.rng, self.draws = np.random.default_rng(0), 0

        def integers(self, *args):
            self.draws += 1
            return self.rng.integers(*args)

        def permutation(self, values):
            return self.rng.permutation(values)

    task = task_of([([[0]], [[0]])], [([[0]], [[0]])])  # all black: the identity is the only variant
    rng = CountingRng()
    assert ad.augmentations(task, 7, rng) == [ad.IDENTITY]
    assert rng.draws == 35


# ---------------------------------------------------------------------------- files and validation

SMALL_TASKS = {
    "aa01": {"train": [{"input": [[1, 2], [3, 4]], "output": [[4]]}], "test": [{"input": [[0]], "output": [[9, 9]]}]},
    "bb02": {
        "train": [{"input": [[5]], "output": [[5, 5, 5]]}, {"input": [[6, 0]], "output": [[6], [0]]}],
        "test": [{"input": [[1, 1]], "output": [[2]]}, {"input": [[3]], "output": [[7], [8], [9]]}],
    },
}


def write(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def assert_same_tasks(a: list[ad.ArcTask], b: list[ad.ArcTask]) -> None:
    assert [t.id for t in a] == [t.id for t in b]
    for x, y in zip(a, b):
        assert key(x.grids()) == key(y.grids())
        assert [out is None for _, out in x.test] == [out is None for _, out in y.test]


def test_combined_challenges_and_solutions_match_the_folder_format(tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    for task_id, task in SMALL_TASKS.items():
        write(folder / f"{task_id}.json", task)
    challenges = {
        task_id: {"train": task["train"], "test": [{"input": pair["input"]} for pair in task["test"]]}
        for task_id, task in SMALL_TASKS.items()
    }
    solutions = {task_id: [pair["output"] for pair in task["test"]] for task_id, task in SMALL_TASKS.items()}
    challenges_file = write(tmp_path / "challenges.json", challenges)
    solutions_file = write(tmp_path / "solutions.json", solutions)

    from_folder = ad.load_tasks(folder)
    assert [t.id for t in from_folder] == ["aa01", "bb02"]
    assert from_folder[1].test[1][1].tolist() == [[7], [8], [9]]
    assert_same_tasks(ad.load_tasks(challenges_file, solutions_file), from_folder)
    assert_same_tasks(ad.load_tasks(str(folder / "bb02.json")), from_folder[1:])  # a single task file

    unsolved = ad.load_tasks(challenges_file)
    assert all(out is None for task in unsolved for _, out in task.test)
    partial = write(tmp_path / "partial.json", {"bb02": solutions["bb02"]})
    loaded = ad.load_tasks(challenges_file, partial)
    assert loaded[0].test[0][1] is None and loaded[1].test[0][1].tolist() == [[2]]


def test_fits_counts_known_grids_only():
    assert ad.fits(task_of([([[1]], [[1]])], [([[1]], None)]), 1)
    assert not ad.fits(task_of([([[1]], [[1]])], [([[1]], [[1, 1]])]), 1)
    assert not ad.fits(task_of([([[1]], [[1], [1]])], [([[1]], None)]), 1)


def broken(task_id: str, where: str, value) -> dict:
    """SMALL_TASKS with one value replaced; `where` is like 'train.1.input'."""
    data = json.loads(json.dumps(SMALL_TASKS))
    split, index, key = where.split(".")
    data[task_id][split][int(index)][key] = value
    return data


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            broken("bb02", "train.1.input", [[1, 2], [3, 4], [5]]),
            ["'bb02'", "train[1].input[2] has 1 cells", "same length"],
        ),
        (broken("aa01", "test.0.input", [[0, 10]]), ["'aa01'", "test[0].input[0][1] is colour 10", "0..9"]),
        (broken("aa01", "train.0.output", [[0, -1]]), ["'aa01'", "train[0].output[0][1] is colour -1"]),
        (broken("aa01", "train.0.output", [[0, True]]), ["'aa01'", "train[0].output[0][1] is the boolean true"]),
        (broken("aa01", "train.0.output", [[0, 1.0]]), ["'aa01'", "train[0].output[0][1] is the number 1.0"]),
        (broken("aa01", "train.0.output", [["3"]]), ["'aa01'", "train[0].output[0][0] is the string '3'"]),
        (broken("bb02", "test.1.output", [[1]] * 31), ["'bb02'", "test[1].output is 31x1", "30x30"]),
        (broken("bb02", "test.1.output", [[1] * 31]), ["'bb02'", "test[1].output is 1x31"]),
        (broken("bb02", "train.0.input", []), ["'bb02'", "train[0].input is an empty list"]),
        (broken("bb02", "train.0.input", [[]]), ["'bb02'", "train[0].input[0] is an empty row"]),
        (broken("bb02", "train.0.input", [1, 2]), ["'bb02'", "train[0].input[0] is the number 1"]),
        (broken("bb02", "train.0.input", 7), ["'bb02'", "train[0].input is the number 7"]),
        ({"aa01": {"train": [{"input": [[1]]}], "test": [{"input": [[1]]}]}}, ["'aa01'", 'train[0] has no "output"']),
        ({"aa01": {"train": [{"output": [[1]]}], "test": [{"input": [[1]]}]}}, ["'aa01'", 'train[0] has no "input"']),
        ({"aa01": {"train": [{"input": [[1]], "output": [[1]]}]}}, ["'aa01'", 'no "test" key']),
        ({"aa01": {"train": [], "test": [{"input": [[1]]}]}}, ["'aa01'", '"train" is an empty list']),
        ({"aa01": {"train": [[1]], "test": [{"input": [[1]]}]}}, ["'aa01'", "train[0] is a list"]),
        ({"aa01": [1]}, ["'aa01' is a list"]),
    ],
)
def test_validation_errors_name_file_task_and_place(tmp_path, data, expected):
    path = write(tmp_path / "challenges.json", data)
    with pytest.raises(DatasetFormatError) as error:
        ad.load_tasks(path)
    message = str(error.value)
    assert message.startswith(f"{path}: task ") and "\n" not in message
    for part in expected:
        assert part in message


def test_validation_errors_in_a_task_folder(tmp_path):
    write(tmp_path / "aa01.json", SMALL_TASKS["aa01"])
    bad = write(tmp_path / "bb02.json", broken("bb02", "train.1.output", [[1, 2], [3]])["bb02"])
    with pytest.raises(
        DatasetFormatError, match=rf"^{re.escape(str(bad))}: task 'bb02', train\[1\]\.output\[1\] has 1 cells"
    ):
        ad.load_tasks(tmp_path)


def test_bad_json_names_line_and_column(tmp_path):
    path = write(tmp_path / "cc03.json", '{"train": [\n  {"input": [[1]], "output": [[1]]},\n  ]\n}')
    with pytest.raises(DatasetFormatError, match=rf"^{re.escape(str(path))}:3:3: not valid JSON"):
        ad.load_tasks(tmp_path)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"\xff": 1}')
    with pytest.raises(DatasetFormatError, match=rf"^{re.escape(str(latin))}: not UTF-8"):
        ad.load_tasks(latin)


def test_bad_solutions(tmp_path):
    challenges = write(tmp_path / "challenges.json", SMALL_TASKS)
    cases = [
        ({"zz99": [[[1]]]}, "task 'zz99' is not among the 2 loaded tasks"),
        ({"bb02": [[[1]]]}, "task 'bb02' has 1 solutions but the task has 2 test inputs"),
        ({"aa01": [[[1]], [[2]]]}, "task 'aa01' has 2 solutions but the task has 1 test inputs"),
        ({"aa01": [[[1, 2], [3]]]}, "task 'aa01', solution[0][1] has 1 cells"),
        ({"aa01": [[[1]]]}, "task 'aa01', solution[0] differs from the test[0].output"),
    ]
    for solutions, expected in cases:
        path = write(tmp_path / "solutions.json", solutions)
        with pytest.raises(DatasetFormatError) as error:
            ad.load_tasks(challenges, path)
        assert str(error.value).startswith(f"{path}: {expected}")


def test_missing_and_empty_inputs(tmp_path):
    with pytest.raises(DatasetFormatError, match="holds no .json files"):
        ad.load_tasks(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ad.load_tasks(tmp_path / "nowhere")
    with pytest.raises(DatasetFormatError, match="an empty object"):
        ad.load_tasks(write(tmp_path / "empty.json", {}))
