import numpy as np
import pytest
import torch

from conftest import shared_file
from latentreason import registry
from latentreason.errors import ConfigError
from latentreason.tasks import sudoku_data as sd


def _task(tmp_path, **kw):
    card = {
        "name": "sudoku",
        "train_puzzles": 12,
        "augmentations": 3,
        "test_puzzles": 8,
        "min_givens": 40,
        "max_givens": 50,
        "cache_dir": str(tmp_path),
        **kw,
    }
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
        puzzle, solution = sd.decode(inputs.astype(np.uint8)), sd.decode(labels.astype(np.uint8))
        assert sd.is_valid_solution(solution) and sd.is_consistent(puzzle, solution)


def test_render_and_parse_round_trip(tmp_path):
    task = _task(tmp_path)
    rng = np.random.default_rng(0)
    puzzle, _, _ = sd.generate_puzzle(rng, 3, 40, 50)
    tokens = task.parse_input(sd.grid_to_string(puzzle))
    assert torch.equal(tokens, torch.from_numpy(sd.encode(puzzle).astype(np.int64)))
    drawing = task.render(tokens)
    assert (
        drawing.count("\n") == 10
        and drawing.replace(" ", "").replace("|", "").splitlines()[0] == sd.grid_to_string(puzzle)[:9]
    )


def test_bad_givens_range_is_named(tmp_path):
    with pytest.raises(ValueError, match="min_givens"):
        _task(tmp_path, min_givens=60, max_givens=50)


def test_min_search_nodes_is_checked_and_keys_the_cache(tmp_path):
    with pytest.raises(ConfigError, match="task.min_search_nodes=-1 should be 0 or more"):
        _task(tmp_path, min_search_nodes=-1)
    with pytest.raises(ConfigError, match="none are generated here; for files or a dataset use task.min_difficulty"):
        _task(tmp_path, min_search_nodes=100, train_file="a.csv", test_file="b.csv")
    hard = _task(
        tmp_path, min_givens=17, max_givens=30, train_puzzles=2, augmentations=0, test_puzzles=2, min_search_nodes=120
    )
    assert "120+ search nodes" in hard.describe()
    plain = _task(tmp_path, min_givens=17, max_givens=30, train_puzzles=2, augmentations=0, test_puzzles=2)
    assert (hard.splits()["train"]["inputs"] != plain.splits()["train"]["inputs"]).any()
    for tokens_in in hard.splits()["test"]["inputs"].numpy():
        assert sd.rating(sd.decode(tokens_in.astype(np.uint8))) >= 120


@pytest.mark.parametrize("damage", ["truncate", "flip", "foreign"])
def test_a_damaged_or_foreign_cache_is_said_and_rebuilt(tmp_path, capsys, damage):
    first = _task(tmp_path).splits()
    capsys.readouterr()
    path = max(tmp_path.glob("sudoku-*.npz"), key=lambda p: p.stat().st_size)  # the training split's file
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":  # one byte inside the first stored array: only the CRC check can notice
        middle = bytearray(data)
        middle[200] ^= 0xFF
        path.write_bytes(bytes(middle))
    else:  # a well-formed .npz written for other settings (or by an older version without the key)
        np.savez(path, inputs=np.zeros((1, 81), np.uint8), labels=np.zeros((1, 81), np.int32))
    stale = path.with_name(f"{path.name}.999999999.tmp")  # left by a build whose process died
    stale.write_bytes(b"half")
    again = _task(tmp_path).splits()
    said = capsys.readouterr().out
    told = [line for line in said.splitlines() if "Dataset cache" in line]
    assert len(told) == 1 and told[0].endswith("rebuilding it.") and path.name in told[0].replace("\n", "")
    assert torch.equal(again["train"]["inputs"], first["train"]["inputs"])
    assert not stale.exists()
    capsys.readouterr()
    _task(tmp_path).splits()  # the rebuilt file reads back silently
    assert "Dataset cache" not in capsys.readouterr().out
