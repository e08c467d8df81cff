"""The command line, end to end, through the installed console script."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import TINY_RUN, cli_in_process
from latentreason.cli import COMMANDS
from latentreason.tasks import sudoku_data as sd

TINY = [*TINY_RUN, "trainer.max_steps=6", "trainer.eval_every=3", "trainer.eval_size=8", "trainer.checkpoint_every=3"]


def latentreason(*args, cwd=None, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "latentreason.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    result = latentreason(
        *TINY, f"output_dir={root}", "run_name=tiny", env_extra={"LATENTREASON_CACHE": str(root / "cache")}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return root, result


def test_run_trains_evaluates_and_saves(trained):
    root, result = trained
    out = " ".join(result.stdout.split())
    assert "No GPU" not in out  # preset given explicitly: no auto-selection message
    assert "token accuracy" in out and "exact accuracy" in out
    assert (root / "tiny" / "final.ckpt").is_file()
    assert (root / "tiny" / "checkpoints" / "last.ckpt").is_file()
    assert (root / "tiny" / "metrics.csv").is_file()


def _write_csv(path, puzzles, solutions, bad_line: int | None = None):
    lines = ["source,q,a,rating"]
    for p, s in zip(puzzles, solutions):
        lines.append(f"gen,{sd.grid_to_string(p)},{sd.grid_to_string(s)},0")
    if bad_line is not None:
        lines[bad_line - 1] = lines[bad_line - 1][:-5] + "x,0"  # corrupt the solution column
    path.write_text("\n".join(lines) + "\n")


def test_eval_on_a_sudoku_extreme_csv(trained, tmp_path):
    root, _ = trained
    rng = np.random.default_rng(5)
    puzzles, solutions = zip(*(sd.generate_puzzle(rng, 3, 45, 55)[:2] for _ in range(6)))
    csv = tmp_path / "test.csv"
    _write_csv(csv, puzzles, solutions)
    result = cli_in_process("eval", f"ckpt={root / 'tiny' / 'final.ckpt'}", f"data={csv}")
    assert result.returncode == 0, result.stderr
    assert "6 examples" in result.stdout and "token accuracy" in result.stdout and "exact accuracy" in result.stdout


def test_eval_malformed_line_names_file_and_line(trained, tmp_path):
    root, _ = trained
    rng = np.random.default_rng(6)
    puzzles, solutions = zip(*(sd.generate_puzzle(rng, 3, 45, 55)[:2] for _ in range(4)))
    csv = tmp_path / "broken.csv"
    _write_csv(csv, puzzles, solutions, bad_line=3)
    result = cli_in_process("eval", f"ckpt={root / 'tiny' / 'final.ckpt'}", f"data={csv}")
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2
    assert "broken.csv:3" in text and "Traceback" not in text


def test_solve_prints_the_grid(trained):
    root, _ = trained
    rng = np.random.default_rng(7)
    puzzle, _, _ = sd.generate_puzzle(rng, 3, 45, 55)
    result = cli_in_process(
        "solve", f"ckpt={root / 'tiny' / 'final.ckpt'}", sd.grid_to_string(puzzle), f"png={root / 'solved.png'}"
    )
    assert result.returncode == 0, result.stderr
    assert "after 2 segments" in result.stdout and result.stdout.count("|") >= 18
    from PIL import Image

    with Image.open(root / "solved.png") as image:  # two 9x9 panels of 20-pixel cells side by side
        assert image.format == "PNG" and image.width >= 2 * 9 * 20 and image.height >= 9 * 20


def test_eval_compares_inference_strategies_and_solve_takes_one(trained):
    root, _ = trained
    ckpt = f"ckpt={root / 'tiny' / 'final.ckpt'}"
    env = {"COLUMNS": "250", "LATENTREASON_CACHE": str(root / "cache")}
    result = cli_in_process("eval", ckpt, "infer=single,augment_vote", "infer.count=3", "limit=4", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "forward passes / ex" in result.stdout and "augment_vote (count=3)" in result.stdout
    table = [line for line in result.stdout.splitlines() if line.startswith("│ augment_vote")]
    cells = [cell.strip() for cell in table[0].split("│")]  # strategy, exact, token, segments, passes, compute x single
    assert len(table) == 1 and cells[6] == "3.0"  # 3x the forward passes of a single pass
    puzzle, _, _ = sd.generate_puzzle(np.random.default_rng(7), 3, 45, 55)
    result = cli_in_process("solve", ckpt, sd.grid_to_string(puzzle), "infer=noise_select", "infer.samples=2", env=env)
    assert result.returncode == 0, result.stderr
    assert "noise_select (samples=2), 4 forward passes per puzzle" in result.stdout
    result = cli_in_process("eval", ckpt, "infer=single", "infer.count=3", env=env)
    assert result.returncode == 2 and "no strategy of single has the key 'count'" in result.stdout


def test_resume_from_last_checkpoint_continues(trained, tmp_path):
    root, _ = trained
    last = root / "tiny" / "checkpoints" / "last.ckpt"
    result = latentreason(
        *TINY,
        "trainer.max_steps=9",
        f"resume={last}",
        f"output_dir={tmp_path}",
        "run_name=resumed",
        env_extra={"LATENTREASON_CACHE": str(root / "cache")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    import csv

    steps = [int(r["step"]) for r in csv.DictReader(open(tmp_path / "resumed" / "metrics.csv")) if r.get("train/loss")]
    assert min(steps) >= 6 and max(steps) == 8  # continued after step 6, not from zero


def test_dry_run_prints_the_paper_parameter_count():
    result = latentreason("run", "recipe=hrm_sudoku", "preset=paper", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "27,275,266 trainable parameters" in result.stdout


def test_list_shows_components_and_recipes():
    result = latentreason("list", env_extra={"COLUMNS": "250"})
    assert result.returncode == 0
    rows = {
        tuple(cell.strip() for cell in line.split("│")[1:3])
        for line in result.stdout.splitlines()
        if line.count("│") >= 4
    }
    for kind, name in (
        ("core", "hrm"),
        ("grad", "one_step"),
        ("halt", "q_act"),
        ("task", "sudoku"),
        ("task", "arc"),
        ("recipe", "hrm_sudoku"),
        ("recipe", "trm_arc1"),
    ):
        assert (kind, name) in rows, (kind, name)


def test_help_lists_every_command():
    result = latentreason("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert f"  {command} " in result.stdout, command


def test_data_help_is_help_not_a_hydra_traceback():
    result = latentreason("data", "--help")
    assert result.returncode == 0 and "Traceback" not in result.stdout + result.stderr
    assert "usage: latentreason data" in result.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help_with_usage_options_and_an_example(command, capsys):
    """`latentreason <command> --help` exits 0, and keeps its [optional] parts (rich would read them
    as markup and drop them). In-process: a subprocess per command would cost seconds each."""
    from latentreason.cli import main

    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert f"usage: latentreason {command}" in text and "options:" in text and f"\n  latentreason {command} " in text
    documented = inspect.getdoc(COMMANDS[command]).split("options:")[0]  # the usage lines as written
    brackets = [part for part in documented.split() if part.startswith("[")]
    assert brackets and all(part in text for part in brackets), [part for part in brackets if part not in text]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "-m", "recipe=hrm_sudoku", "--dry-run"], "--dry-run checks one run"),
        (["data", "--verbose"], "`latentreason data` has no option '--verbose'"),
        (["run", "--dry"], "`latentreason run` has no option '--dry'; it takes --dry-run"),
        (["data", "recipe=["], "cannot read the overrides"),
        (["eval", "ckpt=x", "batch=3"], "`latentreason eval` has no option 'batch'"),
        (["bench", "ckpt=x", "threshold=0.5,high"], "threshold='0.5,high' should be probabilities in [0, 1]"),
        (["bench", "ckpt=x", "threshold=1.5"], "threshold='1.5' should be probabilities in [0, 1]"),
    ],
)
def test_a_wrong_option_is_one_clear_line(args, expected, capsys):
    """In-process (an escaped exception would fail the test); the console script's exit is tested in test_bad_input."""
    from latentreason.cli import main

    assert main(args) == 2
    out = capsys.readouterr()
    assert expected in " ".join(out.out.split()) and "Traceback" not in out.out + out.err


def _swiglu(d_in, width):
    return d_in * 2 * width + width * d_in


def test_recipe_parameter_counts_from_dry_run(capsys):
    """TRM (MLP mixing) and the 8-layer L-only model, against counts worked out from the layer shapes.

    In-process (the console script's dry run is tested above): each subprocess would cost an import of torch."""
    from latentreason.cli import main

    hidden, vocab, positions = 512, 11, 81 + 16
    heads_and_embeddings = 2 * vocab * hidden + (hidden + 1)  # embedding + lm head + halt-only head
    token_mlp = _swiglu(positions, 512)  # round(4 * 97 * 2/3) = 259 -> 512
    channel_mlp = _swiglu(hidden, 1536)
    trm = heads_and_embeddings + 2 * (token_mlp + channel_mlp)
    attention = 4 * hidden * hidden
    lonly = 2 * vocab * hidden + (2 * hidden + 2) + 8 * (attention + channel_mlp)
    for recipe, expected in (("trm_sudoku", trm), ("lonly_sudoku", lonly)):
        assert main(["run", f"recipe={recipe}", "preset=paper", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert f"{expected:,} trainable parameters" in out, (recipe, expected, out[-200:])


def test_the_progress_bar_counts_steps_not_epochs(tmp_path, capsys, monkeypatch):
    """A run is one epoch of max_steps: the bar reads `Steps k/N` (Lightning's own label read `Epoch 0/-2`)."""
    from latentreason.cli import main

    monkeypatch.setenv("LATENTREASON_CACHE", str(tmp_path / "cache"))
    args = [a for a in TINY_RUN if a != "trainer.progress=false"]
    assert main([*args, "trainer.progress=true", "trainer.max_steps=3", f"output_dir={tmp_path}", "run_name=p"]) == 0
    out = capsys.readouterr().out
    assert "Steps" in out and "3/3" in out and "Epoch" not in out


def test_bench_checkpoint_times_early_exit_at_each_threshold(trained):
    """threshold=0 stops every row after one segment; threshold=1 stops none (a sigmoid never exceeds 1),
    so that row must match running every row to max steps."""
    from latentreason.bench import bench_checkpoint

    root, _ = trained
    result = bench_checkpoint(str(root / "tiny" / "final.ckpt"), 8, 1, [], thresholds=(0.0, 1.0))
    rows = {row["name"]: row for row in result["rows"]}
    full, none_leave, all_leave = (
        rows["inference (max_steps)"],
        rows["inference (q_halt > 1)"],
        rows["inference (q_halt > 0)"],
    )
    assert full["extra"]["mean_steps"] == none_leave["extra"]["mean_steps"] == 2
    assert none_leave["extra"]["exact_accuracy"] == full["extra"]["exact_accuracy"]
    assert all_leave["extra"]["mean_steps"] == 1
