"""The Python API for trained models: latentreason.load(path).solve(puzzle) / .predict(batch).

It is the path of `latentreason eval` and `solve` (latentreason.inference), so the held-out
accuracy it computes must be the one the run itself logged at the end of training, and solving one
puzzle must give the row that predicting the whole split gives for it.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import torch

import latentreason
from conftest import TINY_RUN


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:  # the task's data, for splits(); restored after this module
        root = tmp_path_factory.mktemp("api")
        patch.setenv("LATENTREASON_CACHE", str(root / "cache"))
        yield _train(root)


def _train(root):
    env = {**os.environ, "LATENTREASON_CACHE": str(root / "cache")}
    args = [*TINY_RUN, "trainer.max_steps=3", f"output_dir={root}", "run_name=tiny"]
    result = subprocess.run(
        [sys.executable, "-m", "latentreason.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return root / "tiny"


def test_predict_on_the_held_out_split_gives_the_runs_own_final_metrics(checkpoint):
    model = latentreason.load(checkpoint / "final.ckpt", device="cpu")
    out = model.predict(model.task.splits()["test"])
    with open(checkpoint / "metrics.csv", newline="") as file:
        (final,) = [r for r in csv.DictReader(file) if r.get("test/token_accuracy")]
    assert out["metrics"]["token_accuracy"] == pytest.approx(float(final["test/token_accuracy"]), abs=1e-6)
    assert out["metrics"]["exact_accuracy"] == pytest.approx(float(final["test/exact_accuracy"]), abs=1e-6)
    assert out["predictions"].shape == model.task.splits()["test"]["inputs"].shape


def test_solve_one_puzzle_is_the_same_row_as_predicting_the_batch(checkpoint):
    model = latentreason.load(checkpoint / "final.ckpt", device="cpu")
    test = model.task.splits()["test"]
    puzzle = "".join(str(max(int(t) - 1, 0)) for t in test["inputs"][0])  # tokens: 1 blank, 2..10 digits 1..9
    solution = model.solve(puzzle)
    batch = model.predict(test["inputs"][:4])  # inputs only: nothing to score
    assert torch.equal(solution.predictions[0], batch["predictions"][0])
    assert int(solution.segments[0]) == int(batch["steps"][0]) and 1 <= int(solution.segments[0]) <= 2
    assert float(solution.confidence[0]) == pytest.approx(float(batch["confidence"][0]))
    assert 0.0 <= float(solution.confidence[0]) <= 1.0
    assert solution.answer == model.task.render(batch["predictions"][0]) and len(solution.panels) == 2
