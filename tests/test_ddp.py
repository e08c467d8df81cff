"""Two CPU processes (Lightning DDP, gloo) against one, at the same global batch, through the console script.

What must hold: each process trains on its slice of the global batch with its own slice of the
carry; the loss is summed over the local rows and divided by the local batch, and DDP averages the
gradients over the processes, so the gradient is the one-process gradient
(1/W) * sum_r (1/(B/W)) * sum_{rows of r} = (1/B) * sum_{all rows}. The per-puzzle embedding table
(a buffer, outside DDP's all-reduce) is updated from the gathered rows of every process.

Tolerance: the two runs differ only in the order of float32 additions (each process sums its 4
rows, then gloo adds the two halves; one process sums 8 rows), a few units in the last place of
each gradient. AdamATan2's update, lr * atan2(m, sqrt(v)), is a smooth function of the gradient
away from gradients of exactly zero, so after 6 steps the weights differ by a few ulps (measured
on this machine: 3e-8 at most) and the losses by about 1e-7 relative. We allow 1e-5 on the
weights and 1e-5 relative on the losses: two orders above what reordering gives, and far below
what a real mistake gives (a wrong loss scale changes the first update by a factor, a lost carry
or puzzle-embedding update changes the loss in the 3rd digit). Q-ACT exploration is switched off
(halt.exploration_prob=0): its random draws are made per process (seeded by seed, step and rank),
so with it on, two processes are a different random sample than one, not the same numbers.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY_RUN

TINY = [
    *TINY_RUN,
    "halt.exploration_prob=0",
    "trainer.max_steps=6",
    "trainer.checkpoint_every=3",
    "trainer.accelerator=cpu",
]
WEIGHT_ATOL, LOSS_RTOL = 1e-5, 1e-5


def console_script() -> str:
    beside = Path(sys.executable).with_name("latentreason")
    return str(beside) if beside.exists() else shutil.which("latentreason")


def latentreason(root, *args):
    env = dict(os.environ)
    env.update(LATENTREASON_CACHE=str(root / "cache"), PYTHONUNBUFFERED="1")
    result = subprocess.run([console_script(), *args], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    one = latentreason(root, "run", *TINY, "trainer.devices=1", f"output_dir={root}", "run_name=one")
    # A bare `latentreason key=value ...` means run: Lightning's launcher starts rank 1 with the same command line.
    two = latentreason(root, *TINY, "trainer.devices=2", "trainer.strategy=ddp", f"output_dir={root}", "run_name=two")
    return root, one, two


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def assert_close_runs(a_dir, b_dir):
    a, b = load(a_dir / "final.ckpt"), load(b_dir / "final.ckpt")
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, atol=WEIGHT_ATOL, rtol=0, msg=lambda m: f"{key}: {m}")
    first, second = rows(a_dir), rows(b_dir)
    by_step = {r["step"]: r for r in first}
    assert {r["step"] for r in second} <= set(by_step) and second[-1]["step"] == first[-1]["step"]
    for y in second:  # a run resumed in a new folder logs from its resumed step on
        x = by_step[y["step"]]
        for key in x:
            if key.startswith("train/") and x[key]:
                assert float(y[key]) == pytest.approx(float(x[key]), rel=LOSS_RTOL, abs=1e-7), (x["step"], key)
    test_a, test_b = first[-1], second[-1]
    assert test_a["test/count"] == test_b["test/count"]  # every held-out example counted once, not padded
    for key in ("test/token_accuracy", "test/exact_accuracy", "test/q_halt_accuracy", "test/steps"):
        assert float(test_b[key]) == pytest.approx(float(test_a[key]), abs=1e-6), key
    return a, b


def test_two_processes_match_one_at_the_same_global_batch(runs):
    root, one, two = runs
    assert "Initializing distributed" in two.stdout + two.stderr and "MEMBER: 2/2" in two.stdout + two.stderr
    assert two.stdout.count("Held-out") == 1  # rank 1 stays quiet
    assert sorted(p.name for p in root.iterdir() if p.name != "cache") == ["one", "two"]  # one folder per run
    a, b = assert_close_runs(root / "one", root / "two")
    assert torch.equal(a["state_dict"]["model.puzzle.table"], b["state_dict"]["model.puzzle.table"])


def test_a_two_process_checkpoint_holds_the_whole_carry_in_global_order(runs):
    root, _, _ = runs
    one, two = load(root / "one" / "checkpoints" / "last.ckpt"), load(root / "two" / "checkpoints" / "last.ckpt")
    assert two["carry"]["world_size"] == 2 and two["carry"]["global_batch"] == 8
    for key in ("steps", "halted"):
        assert torch.equal(one["carry"][key], two["carry"][key])
    for key, value in one["carry"]["data"].items():
        assert torch.equal(two["carry"]["data"][key], value)
    for key, value in one["carry"]["state"].items():
        torch.testing.assert_close(two["carry"]["state"][key], value, atol=1e-4, rtol=1e-4)
    assert two["train_metrics"]["count"].shape == (2,)  # each process's running training metrics


def test_resuming_a_two_process_checkpoint_with_one_process(runs):
    root, _, _ = runs
    latentreason(
        root,
        "run",
        *TINY,
        "trainer.devices=1",
        f"output_dir={root}",
        "run_name=two_then_one",
        f"resume={root / 'two' / 'checkpoints' / 'step-000003.ckpt'}",
    )
    assert_close_runs(root / "one", root / "two_then_one")
