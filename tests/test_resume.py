"""Exact resume after SIGKILL, and run-to-run determinism, through the command line on CPU.

A run killed with SIGKILL mid-way (the LATENTREASON_KILL_AT_STEP test hook of
latentreason/train/module.py) and resumed from its last.ckpt must end bitwise where an
uninterrupted run of the same seed ends: weights, optimizer and scheduler state, EMA, carry,
training metrics, and every row of metrics.csv (training losses and the final held-out metrics).
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys

import pytest
import torch

# 9x9 Sudoku, a 2-segment HRM with Q-ACT (its exploration draws random numbers), the per-puzzle
# embedding (a buffer trained by SignSGD) and an EMA of the weights: everything a resume must restore.
from conftest import TINY_RUN

TINY = [*TINY_RUN, "halt.exploration_prob=0.5", "trainer.max_steps=8", "trainer.checkpoint_every=3", "trainer.ema=true"]
KILL_AT = 5  # after the checkpoint of step 3: the resumed run redoes steps 3 and 4


def latentreason(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != "LATENTREASON_KILL_AT_STEP"} | (env_extra or {})
    return subprocess.run([sys.executable, "-m", "latentreason.cli", *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("resume")


def train(root, name, *extra, env_extra=None):
    cache = {"LATENTREASON_CACHE": str(root / "cache")}
    return latentreason(*TINY, f"output_dir={root}", f"run_name={name}", *extra, env_extra={**cache, **(env_extra or {})})


@pytest.fixture(scope="module")
def straight(root):
    result = train(root, "straight")
    assert result.returncode == 0, result.stdout + result.stderr
    return root / "straight"


def rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def assert_same(a, b, where="checkpoint"):
    """Equal structure, bitwise-equal tensors, equal everything else."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (where, set(a) ^ set(b))
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def test_sigkill_then_resume_ends_bitwise_where_an_uninterrupted_run_ends(root, straight):
    killed = train(root, "killed", env_extra={"LATENTREASON_KILL_AT_STEP": str(KILL_AT)})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    run_dir = root / "killed"
    last = run_dir / "checkpoints" / "last.ckpt"
    assert not (run_dir / "final.ckpt").exists()
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 3
    # The checkpoint of step 3 is written after step 3 (ModelCheckpoint.on_train_batch_end): its carry
    # is the one step 3 produced, and its optimizer has taken 3 steps.
    assert saved["carry"]["steps"].shape == (8,) and {"rng", "ema", "train_metrics"} <= set(saved)
    assert all(float(s["step"]) == 3 for s in saved["optimizer_states"][0]["state"].values())

    resumed = train(root, "killed", f"resume={last}")  # the same command, plus resume=
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming from" in resumed.stdout

    a = torch.load(straight / "final.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(run_dir / "final.ckpt", map_location="cpu", weights_only=True)
    assert a["global_step"] == b["global_step"] == 8
    # Paths (callbacks: checkpoint folder) and the command line (hyper_parameters: run_name, resume) differ.
    for key in set(a) - {"callbacks", "hyper_parameters"}:
        assert_same(a[key], b[key], key)
    # metrics.csv: the killed run's rows before step 3 are kept, the resumed run appends the rest,
    # and every value (losses, learning rates, held-out accuracies) is the same to the last digit.
    assert rows(run_dir) == rows(straight)
    assert any(r.get("test/token_accuracy") for r in rows(run_dir))


def test_the_same_seed_gives_the_same_metrics(root, straight):
    result = train(root, "again")
    assert result.returncode == 0, result.stdout + result.stderr
    first, second = rows(straight), rows(root / "again")
    assert len(first) == len(second) == 9  # 8 training steps and the final evaluation
    numeric = [k for k in first[0] if k != "step"]
    for x, y in zip(first, second):
        assert {k: x[k] for k in numeric} == {k: y[k] for k in numeric}
    losses = [float(r["train/loss"]) for r in first if r.get("train/loss")]
    assert len(set(losses)) > 1  # the comparison is not trivially between constants
