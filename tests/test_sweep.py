"""`latentreason run -m`: a 2x2 grid through Hydra's multirun, one folder per job, one summary."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

from conftest import TINY_RUN
from latentreason.sweep import expand_grid


def test_the_grid_is_the_product_of_the_swept_values_in_order():
    jobs = expand_grid(["recipe=hrm_sudoku", "seed=0,1", "core.H_cycles=1,2"])
    assert jobs == [
        ["recipe=hrm_sudoku", "seed=0", "core.H_cycles=1"],
        ["recipe=hrm_sudoku", "seed=0", "core.H_cycles=2"],
        ["recipe=hrm_sudoku", "seed=1", "core.H_cycles=1"],
        ["recipe=hrm_sudoku", "seed=1", "core.H_cycles=2"],
    ]


def final_metrics(run_dir) -> dict[str, float]:
    with open(run_dir / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    (final,) = [r for r in rows if r.get("test/token_accuracy")]
    return {k.removeprefix("test/"): float(v) for k, v in final.items() if k.startswith("test/") and v}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    env = {**os.environ, "LATENTREASON_CACHE": str(root / "cache")}
    args = [*TINY_RUN, "trainer.max_steps=2", "seed=0,1", "core.H_cycles=1,2", f"hydra.sweep.dir={root / 'grid'}"]
    result = subprocess.run(
        [sys.executable, "-m", "latentreason.cli", "run", "-m", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=500,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return root / "grid", result.stdout


def test_a_2x2_sweep_writes_one_run_per_job_and_a_summary_of_their_metrics(swept):
    grid, stdout = swept
    with open(grid / "summary.csv", newline="") as file:
        summary = list(csv.DictReader(file))
    assert [(r["job"], r["seed"], r["core.H_cycles"]) for r in summary] == [
        ("0", "0", "1"),
        ("1", "0", "2"),
        ("2", "1", "1"),
        ("3", "1", "2"),
    ]
    for row in summary:
        run_dir = grid / row["job"]
        assert (run_dir / "final.ckpt").is_file() and row["status"] == "done"
        expected = final_metrics(run_dir)
        assert expected and {k: float(row[k]) for k in expected} == expected
        assert f"seed={row['seed']}" in row["overrides"] and f"core.H_cycles={row['core.H_cycles']}" in row["overrides"]
    # The jobs differ (a table of four copies of one run would pass the checks above).
    assert len({(row["token_accuracy"], row["q_halt_accuracy"]) for row in summary}) > 1
    # The table: one row per job, its swept settings and its token accuracy as a percentage.
    for row in summary:
        line = next(line for line in stdout.splitlines() if line.startswith(f"│ {row['job']} "))
        cells = [c.strip() for c in line.strip("│").split("│")]
        assert cells[1:3] == [row["seed"], row["core.H_cycles"]]
        assert cells[3] == f"{float(row['token_accuracy']):.1%}"


def test_a_bad_value_in_the_grid_is_one_line_before_anything_runs(tmp_path):
    env = {**os.environ, "LATENTREASON_CACHE": str(tmp_path / "cache")}
    args = ["recipe=hrm_sudoku,hrm_sudok", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'grid'}"]
    result = subprocess.run(
        [sys.executable, "-m", "latentreason.cli", "run", "-m", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr
    assert "Unknown recipe 'hrm_sudok'" in " ".join(result.stdout.split())
    assert not (tmp_path / "grid").exists()
