"""The Maze task: splits, the valid-shortest-path score, parsing a maze, and the recipes end to end."""

from __future__ import annotations

import pytest
import torch
from test_cli import latentreason

from latentreason.errors import DatasetFormatError
from latentreason.tasks import maze_data as md
from latentreason.tasks.maze import Maze


def small(tmp_path, **options) -> Maze:
    return Maze(
        **{
            "size": 9,
            "train_mazes": 12,
            "test_mazes": 6,
            "augment": True,
            "cache_dir": str(tmp_path / "cache"),
            **options,
        }
    )


def test_splits_hold_hard_mazes_with_their_paths(tmp_path):
    task = small(tmp_path)
    splits = task.splits()
    assert splits["train"]["inputs"].shape == (12 * 8, 81) and task.vocab_size == 6
    for q, a in zip(splits["train"]["inputs"].numpy(), splits["train"]["labels"].numpy()):
        assert md.is_shortest_path(q, a)
        assert (a == md.PATH).sum() + 1 >= task.min_path_length  # moves = path cells + 1


def test_score_counts_valid_shortest_paths(tmp_path):
    task = small(tmp_path)
    test = task.splits()["test"]
    labels = test["labels"].clone()
    assert task.score(test, labels, torch.ones(len(labels)))["valid_path"] == 1.0
    broken = labels.clone()
    first_path_cell = int((broken[0] == md.PATH).nonzero()[0])
    broken[0, first_path_cell] = md.OPEN  # a gap in the first maze's path
    assert task.score(test, broken, torch.ones(len(labels)))["valid_path"] == pytest.approx(
        (len(labels) - 1) / len(labels)
    )


def test_parse_input_from_a_line_or_a_file(tmp_path):
    task = small(tmp_path)
    q = task.splits()["test"]["inputs"][0]
    text = md.decode_row(q.numpy(), 9)
    assert torch.equal(task.parse_input(text), q)
    rows = tmp_path / "maze.txt"
    rows.write_text("\n".join(text[r * 9 : (r + 1) * 9] for r in range(9)) + "\n")
    assert torch.equal(task.parse_input(str(rows)), q)
    with pytest.raises(DatasetFormatError, match="needs 81"):
        task.parse_input(text[:-1])
    with pytest.raises(DatasetFormatError, match="exactly one start"):
        task.parse_input(text.replace("S", " "))


@pytest.mark.parametrize("recipe", ["hrm_maze", "trm_maze"])
def test_maze_recipes_train_and_solve(recipe, tmp_path):
    env = {"LATENTREASON_CACHE": str(tmp_path / "cache")}
    result = latentreason(
        f"recipe={recipe}",
        "preset=cpu",
        "task.size=9",
        "task.train_mazes=16",
        "task.test_mazes=8",
        "trainer.max_steps=4",
        "trainer.global_batch_size=8",
        "trainer.eval_every=0",
        "trainer.progress=false",
        f"output_dir={tmp_path}",
        "run_name=m",
        env_extra=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid_path" in result.stdout
    maze = Maze(
        size=9, train_mazes=16, test_mazes=8, augment=True, min_path_length=None, cache_dir=str(tmp_path / "cache")
    ).splits()["test"]["inputs"][0]
    solved = latentreason(
        "solve",
        f"ckpt={tmp_path / 'm' / 'final.ckpt'}",
        md.decode_row(maze.numpy(), 9),
        f"png={tmp_path / 'maze.png'}",
        env_extra=env,
    )
    assert solved.returncode == 0, solved.stdout + solved.stderr
    assert "██" in solved.stdout and (tmp_path / "maze.png").stat().st_size > 0
