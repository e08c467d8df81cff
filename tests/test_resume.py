"""Exact resume after SIGKILL and after SIGTERM, and run-to-run determinism, through the command line on CPU.

A run killed with SIGKILL mid-way (by the test-only callback of tests/signal_at_step.py) and
resumed from its last.ckpt must end bitwise where an uninterrupted run of the same seed ends:
weights, optimizer and scheduler state, EMA, carry, training metrics, and every row of metrics.csv
(training losses and the final held-out metrics). A run sent SIGTERM (pre-emption) saves a
checkpoint at the step it was in and exits; resumed, it too ends bitwise where the straight run ends.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from signal_at_step import override

# 9x9 Sudoku, a 2-segment HRM with Q-ACT (its exploration draws random numbers), the per-puzzle
# embedding (a buffer trained by SignSGD) and an EMA of the weights: everything a resume must restore.
from conftest import TINY_RUN

TINY = [*TINY_RUN, "halt.exploration_prob=0.5", "trainer.max_steps=8", "trainer.checkpoint_every=3", "trainer.ema=true"]
KILL_AT = 5  # after the checkpoint of step 3: the resumed run redoes steps 3 and 4
TERM_AT = 6  # SIGTERM during step 6: the checkpoint of step 7 is written on the signal, between periodic ones


TESTS = str(Path(__file__).resolve().parent)  # on the subprocess's path, for signal_at_step


def latentreason(*args, env_extra=None):
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), TESTS) if p)
    env = os.environ | {"PYTHONPATH": path} | (env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "latentreason.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("resume")


def train(root, name, *extra):
    return latentreason(
        *TINY, f"output_dir={root}", f"run_name={name}", *extra, env_extra={"LATENTREASON_CACHE": str(root / "cache")}
    )


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
    killed = train(root, "killed", override(KILL_AT, "SIGKILL"))
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


def test_sigterm_saves_the_current_step_and_a_resume_ends_bitwise_where_an_uninterrupted_run_ends(root, straight):
    stopped = train(root, "preempted", override(TERM_AT, "SIGTERM"))
    assert stopped.returncode == 143, stopped.stdout + stopped.stderr  # 128 + SIGTERM: stopped, not finished
    assert "Traceback" not in stopped.stderr, stopped.stderr
    run_dir = root / "preempted"
    last = run_dir / "checkpoints" / "last.ckpt"
    assert f"resume={last}" in " ".join(stopped.stdout.split())
    assert not (run_dir / "final.ckpt").exists()
    # The signal arrived at the start of step 6: step 6 finished and was saved (global step 7),
    # although the periodic checkpoints are every 3 steps (the newest periodic one is of step 6).
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["global_step"] == TERM_AT + 1
    assert all(float(s["step"]) == TERM_AT + 1 for s in saved["optimizer_states"][0]["state"].values())
    assert max(p.name for p in (run_dir / "checkpoints").glob("step-*.ckpt")) == "step-000006.ckpt"

    resumed = train(root, "preempted", f"resume={last}")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    a = torch.load(straight / "final.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(run_dir / "final.ckpt", map_location="cpu", weights_only=True)
    for key in set(a) - {"callbacks", "hyper_parameters"}:
        assert_same(a[key], b[key], key)
    assert rows(run_dir) == rows(straight)


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
