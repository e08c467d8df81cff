import numpy as np
import pytest
import torch

from conftest import shared_file
from latentreason import registry
from latentreason.tasks import sudoku_data as sd


def _task(tmp_path, **kw):
    card = {"name": "sudoku", "train_puzzles": 12, "augmentations": 3, "test_puzzles": 8, "min_givens": 40, "max_givens": 50, "cache_dir": str(tmp_path), **kw}
    return registry.build("task", card)


def test_generated_splits_are_valid_cached_and_disjoint(tmp_path, monkeypatch):
    task = _task(tmp_path)
    splits = task.splits()
    train, test = splits["train"], splits["test"]
    assert train["inputs"].shape == (12 * 4, 81) and test["inputs"].shape == (8, 81)
    assert task.vocab_size == 11 and int(train["inputs"].max()) <= 10 and int(train["inputs"].min()) >= 1
    for split in (train, test):
        for inputs, labels in zip(split["inputs"].numpy(), split["labels"].numpy()):
            puzzle, solution = sd.decode(inputs.astype(np.uint8)), sd.decode(labels.astype(np.uint8))
            assert sd.is_valid_solution(solution) and sd.is_consistent(puzzle, solution)
    seen = {tuple(row) for row in train["inputs"].tolist()}
    assert not any(tuple(row) in seen for row in test["inputs"].tolist())
    assert len(list(tmp_path.glob("sudoku-*.npz"))) == 2
    monkeypatch.setattr(sd, "build_dataset", lambda *a, **k: pytest.fail("the cached dataset was built again"))
    again = _task(tmp_path).splits()  # read back from the cache
    assert torch.equal(again["train"]["inputs"], train["inputs"])


def test_real_puzzle_file_loads_with_solutions(tmp_path):
    source = shared_file("sudoku", "magictour_top1465_dev.txt")
    lines = [l for l in source.read_text().splitlines() if l.strip() and not l.startswith("#")][:5]
    small = tmp_path / "hard.txt"
    small.write_text("\n".join(lines) + "\n")
    task = _task(tmp_path)
    split = task.read_file(small)
    assert split["inputs"].shape == (5, 81)
    for inputs, labels in zip(split["inputs"].numpy(), split["labels"].numpy()):
        assert sd.is_valid_solution(sd.decode(labels.astype(np.uint8)))


def test_render_and_parse_round_trip(tmp_path):
    task = _task(tmp_path)
    rng = np.random.default_rng(0)
    puzzle, _, _ = sd.generate_puzzle(rng, 3, 40, 50)
    tokens = task.parse_input(sd.grid_to_string(puzzle))
    assert torch.equal(tokens, torch.from_numpy(sd.encode(puzzle).astype(np.int64)))
    drawing = task.render(tokens)
    assert drawing.count("\n") == 10 and drawing.replace(" ", "").replace("|", "").splitlines()[0] == sd.grid_to_string(puzzle)[:9]


def test_bad_givens_range_is_named(tmp_path):
    with pytest.raises(ValueError, match="min_givens"):
        _task(tmp_path, min_givens=60, max_givens=50)
