"""Bad input ends in one line naming the problem and the fix, exit code 2, no traceback.

Each case of CASES runs `latentreason.cli.main` in this process (fast: no interpreter start per
case); an exception that escaped would fail the test, which is the in-process form of "no
traceback". Two cases also run through a subprocess, end to end. `docs/errors.md` lists every case
with the message it gets; regenerate it with

    LATENTREASON_WRITE_ERRORS_DOC=1 python -m pytest -q tests/test_bad_input.py
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_RUN
from latentreason import cli
from latentreason.tasks import sudoku_data as sd
from latentreason.train.module import LatentReasoningModule

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "errors.md"

TINY = [*TINY_RUN, "trainer.max_steps=3", "trainer.checkpoint_every=1", "run_name=case"]
RUN = ["run", *TINY]

# (id, what the user did wrong, arguments, a part of the message it must get). `{name}` in an
# argument is filled from the `files` fixture; `{tmp}` is where the runs go.
CASES = [
    ("unknown-recipe", "unknown recipe", ["run", "recipe=hrm_sudok"], "Did you mean 'hrm_sudoku'"),
    ("unknown-component", "unknown component", [*RUN, "core=hrn"], "Unknown core 'hrn'"),
    ("unknown-key", "unknown config key", [*RUN, "core.hiden_size=8"], "Did you mean 'hidden_size'"),
    (
        "preset-misfit",
        "a core swapped under a preset sized for another",
        ["run", "recipe=hrm_sudoku", "preset=cpu", "core=trm", "--dry-run"],
        "The cpu preset of this recipe sets core.H_layers=2",
    ),
    ("unknown-preset", "unknown preset", ["run", "recipe=hrm_sudoku", "preset=gpu"], "Unknown preset 'gpu'"),
    ("unknown-command", "unknown command", ["evl", "ckpt=final.ckpt"], "Unknown command 'evl'. Did you mean 'eval'"),
    ("type-int", "wrong type (component)", [*RUN, "core.hidden_size=abc"], "hidden_size='abc' should be int"),
    (
        "type-float",
        "wrong type (component)",
        [*RUN, "halt.exploration_prob=true"],
        "exploration_prob=True should be float",
    ),
    (
        "type-trainer",
        "wrong type (trainer)",
        [*RUN, "trainer.max_steps=ten"],
        "trainer.max_steps='ten' should be an integer",
    ),
    ("type-seed", "wrong type (seed)", [*RUN, "seed=abc"], "seed='abc' should be an integer"),
    (
        "heads",
        "hidden size not divisible by heads",
        [*RUN, "core.hidden_size=30", "core.num_heads=4"],
        "core.hidden_size=30 is not divisible by core.num_heads=4",
    ),
    (
        "rope-odd",
        "odd head size with rotary positions",
        [*RUN, "core.hidden_size=18", "core.num_heads=2"],
        "Rotary positions need an even head size",
    ),
    (
        "positions",
        "unknown position encoding",
        [*RUN, "core.positions=alibi"],
        "core.positions must be 'rope' or 'learned'",
    ),
    (
        "trm-mixer",
        "unknown TRM mixer",
        ["run", "recipe=trm_sudoku", "preset=cpu", "core.mixer=conv", "--dry-run"],
        "core.mixer must be 'attn' or 'mlp'",
    ),
    (
        "tbptt-k",
        "truncated BPTT with k=0",
        [*RUN, "grad=tbptt", "grad.k=0"],
        "grad.k must be a positive integer or null",
    ),
    (
        "halt-only-rule",
        "halt_only with a rule it cannot compute",
        [*RUN, "halt=halt_only", "halt.eval_halt=q_halt_minus_continue"],
        "needs a continue value, which halt_only does not have",
    ),
    (
        "halt-threshold",
        "threshold outside [0, 1]",
        [*RUN, "halt.eval_halt=q_halt", "halt.eval_threshold=2.0"],
        "must be a probability in [0, 1]",
    ),
    ("max-steps", "no segments", [*RUN, "halt.max_steps=0"], "halt.max_steps must be >= 1"),
    ("box", "unsupported grid", [*RUN, "task.box=5"], "task.box=5 is not supported"),
    (
        "givens",
        "min givens above max givens",
        [*RUN, "task.min_givens=60", "task.max_givens=50"],
        "task.min_givens/max_givens must satisfy",
    ),
    ("loss", "unknown loss", [*RUN, "task.loss=hinge"], "task.loss='hinge' is not a loss"),
    (
        "empty-dataset",
        "empty dataset",
        [*RUN, "task.train_puzzles=0"],
        "task.train_puzzles=0 leaves the training split empty",
    ),
    ("missing-data-file", "missing data file", [*RUN, "task.train_file={tmp}/nowhere.csv"], "does not exist"),
    (
        "empty-data-file",
        "empty data file",
        [*RUN, "task.train_file={empty_csv}"],
        "empty.csv:1: the file holds no puzzles",
    ),
    ("malformed-data-file", "malformed data file", [*RUN, "task.train_file={bad_csv}"], "bad.csv:3:"),
    (
        "dataset-missing",
        "a dataset that was not fetched",
        [*RUN, "task.dataset={tmp}/sudoku-extreme"],
        "Get it with `latentreason data fetch sudoku-extreme`",
    ),
    ("dataset-unknown", "unknown dataset", ["data", "fetch", "sudoku-extrem"], "Did you mean 'sudoku-extreme'"),
    (
        "dataset-and-file",
        "a dataset and a file",
        [*RUN, "task.dataset=sudoku-extreme", "task.train_file={bad_csv}"],
        "Give task.dataset or task.train_file/test_file, not both",
    ),
    (
        "min-difficulty",
        "min_difficulty on generated puzzles",
        [*RUN, "task.min_difficulty=20"],
        "task.min_difficulty keeps puzzles by the rating column",
    ),
    (
        "min-search-nodes",
        "negative min_search_nodes",
        [*RUN, "task.min_search_nodes=-5"],
        "task.min_search_nodes=-5 should be 0 or more",
    ),
    (
        "batch-zero",
        "zero batch size",
        [*RUN, "trainer.global_batch_size=0"],
        "trainer.global_batch_size=0 should be at least 1",
    ),
    (
        "batch-negative",
        "negative batch size",
        [*RUN, "trainer.global_batch_size=-8"],
        "trainer.global_batch_size=-8 should be at least 1",
    ),
    (
        "batch-devices",
        "batch not divisible by the processes",
        [*RUN, "trainer.accelerator=cpu", "trainer.strategy=ddp", "trainer.devices=3"],
        "trainer.global_batch_size=8 is not divisible by the 3 processes",
    ),
    (
        "devices-zero",
        "zero devices",
        [*RUN, "trainer.accelerator=cpu", "trainer.devices=0"],
        "Lightning rejects the trainer settings",
    ),
    ("precision", "unknown precision", [*RUN, "trainer.precision=fp7"], "Precision 'fp7' is invalid"),
    ("optimizer", "unknown optimizer", [*RUN, "optim.name=adamx"], "unknown optimizer 'adamx'. Did you mean: adamax"),
    ("lr-negative", "negative learning rate", [*RUN, "optim.lr=-1"], "optim.lr=-1 should be a number >= 0"),
    (
        "nan-loss",
        "the loss becomes NaN/inf",
        [*RUN, "optim.lr=1e30", "trainer.max_steps=5"],
        "The loss became nan at step 1 (term(s): lm, q_halt, q_continue); training stopped. Lower optim.lr or check the data. The last checkpoint, {tmp}/runs/case/checkpoints/last.ckpt (step 1), was written before it and is kept.",
    ),
    (
        "resume-missing",
        "missing checkpoint (resume)",
        [*RUN, "resume={tmp}/runs/x/checkpoints/last.ckpt"],
        "Checkpoint {tmp}/runs/x/checkpoints/last.ckpt does not exist",
    ),
    (
        "resume-other-model",
        "resume with another model's checkpoint",
        [*RUN, "core.hidden_size=16", "resume={ckpt}"],
        "was saved by a different model (settings that differ: core.hidden_size (32 there, 16 here))",
    ),
    (
        "eval-missing",
        "missing checkpoint (eval)",
        ["eval", "ckpt={tmp}/none.ckpt"],
        "Checkpoint {tmp}/none.ckpt does not exist",
    ),
    (
        "eval-damaged",
        "truncated checkpoint",
        ["eval", "ckpt={truncated}"],
        "is damaged or incomplete and cannot be used",
    ),
    (
        "eval-option",
        "unknown option",
        ["eval", "ckpt={ckpt}", "dataset=test"],
        "`latentreason eval` has no option 'dataset'",
    ),
    (
        "eval-limit",
        "limit not a number",
        ["eval", "ckpt={ckpt}", "limit=all"],
        "limit='all' should be a positive integer",
    ),
    (
        "eval-data",
        "missing evaluation file",
        ["eval", "ckpt={ckpt}", "data={tmp}/none.csv"],
        "Sudoku dataset file not found",
    ),
    ("solve-puzzle", "malformed puzzle", ["solve", "ckpt={ckpt}", "12x"], "the command line"),
    ("list-kind", "unknown kind", ["list", "cores"], "Did you mean 'core'"),
    (
        "arc-no-data",
        "ARC without its data",
        ["run", "recipe=hrm_arc1", "preset=cpu", "--dry-run"],
        "The arc task needs its data: task.train_path=",
    ),
    (
        "arc-colour",
        "ARC grid with a colour outside 0..9",
        ["run", "recipe=hrm_arc1", "preset=cpu", "task.train_path={arc_colour}", "trainer.progress=false"],
        "task 'bad', train[0].output[1][2] is colour 10; colours are whole numbers 0..9",
    ),
    (
        "arc-ragged",
        "ARC grid with rows of different lengths",
        ["run", "recipe=hrm_arc1", "preset=cpu", "task.train_path={arc_ragged}", "trainer.progress=false"],
        "train[0].input[1] has 2 cells but row 0 has 3",
    ),
    (
        "arc-too-large",
        "ARC grid larger than the canvas",
        [
            "run",
            "recipe=hrm_arc1",
            "preset=cpu",
            "task.train_path={arc_ragged}/../arc_large",
            "task.skip_larger=false",
            "trainer.progress=false",
        ],
        "has a grid larger than task.size=10",
    ),
    (
        "maze-size",
        "maze too small",
        ["run", "recipe=hrm_maze", "preset=cpu", "task.size=3", "--dry-run"],
        "task.size=3 should be an integer of at least 5",
    ),
    (
        "maze-file",
        "malformed maze file",
        ["run", "recipe=hrm_maze", "preset=cpu", "task.train_file={bad_maze}", "trainer.progress=false"],
        "maze.csv:2:",
    ),
    ("oom-cuda", "out of memory (GPU)", [*RUN], "Out of memory at step 0"),
    (
        "oom-cpu",
        "out of memory (CPU)",
        [*RUN],
        "Lower trainer.global_batch_size (now 8), core.hidden_size (now 32) or halt.max_steps (now 2)",
    ),
]
OOM = {
    "oom-cuda": torch.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.19 GiB"
    ),
    "oom-cpu": RuntimeError(
        "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate 21474836480 bytes."
    ),
}
MESSAGES: dict[str, str] = {}


def _write_csv(path: Path, count: int, bad_line: int | None = None) -> Path:
    rng = np.random.default_rng(3)
    lines = ["source,q,a,rating"]
    for _ in range(count):
        puzzle, solution, _ = sd.generate_puzzle(rng, 3, 45, 55)
        lines.append(f"gen,{sd.grid_to_string(puzzle)},{sd.grid_to_string(solution)},0")
    if bad_line is not None:
        lines[bad_line - 1] = lines[bad_line - 1][:-5] + "x,0"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Data files, a good checkpoint (one training step) and a truncated one."""
    tmp = tmp_path_factory.mktemp("bad")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LATENTREASON_CACHE", str(tmp / "cache"))
        (tmp / "empty.csv").write_text("")
        _write_csv(tmp / "bad.csv", 4, bad_line=3)
        assert cli.main([*TINY, f"output_dir={tmp / 'good'}", "trainer.max_steps=1"]) == 0
        ckpt = tmp / "good" / "case" / "final.ckpt"
        truncated = tmp / "good" / "case" / "checkpoints" / "truncated.ckpt"
        truncated.write_bytes(ckpt.read_bytes()[:5000])
        grid = [[1, 2, 3], [4, 5, 6]]
        for folder, task in (
            ("arc_colour", {"train": [{"input": grid, "output": [[1, 2, 3], [4, 5, 10]]}], "test": [{"input": grid}]}),
            ("arc_ragged", {"train": [{"input": [[1, 2, 3], [4, 5]], "output": grid}], "test": [{"input": grid}]}),
            ("arc_large", {"train": [{"input": [[1] * 12] * 12, "output": grid}], "test": [{"input": grid}]}),
        ):
            (tmp / folder).mkdir()
            (tmp / folder / "bad.json").write_text(json.dumps(task))
        (tmp / "maze.csv").write_text("source,q,a,rating\ngen,#####,#####,0\n")
        yield {
            "tmp": str(tmp),
            "empty_csv": str(tmp / "empty.csv"),
            "bad_csv": str(tmp / "bad.csv"),
            "ckpt": str(ckpt),
            "truncated": str(truncated),
            "arc_colour": str(tmp / "arc_colour"),
            "arc_ragged": str(tmp / "arc_ragged"),
            "bad_maze": str(tmp / "maze.csv"),
        }


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_line(case, files, capsys, monkeypatch):
    name, _, args, expected = case
    args = [a.format(**files) for a in args]
    if args[0] == "run":
        args.append(f"output_dir={files['tmp']}/runs")
    if name in OOM:

        def no_memory(self, *a, **k):
            raise OOM[name]

        monkeypatch.setattr(LatentReasoningModule, "training_step", no_memory)
    code = cli.main(args)
    out = capsys.readouterr()
    text = " ".join((out.out + out.err).split())
    assert code == 2, text
    assert expected.format(**files) in text, text
    assert "Traceback" not in text
    errors = [line for line in (out.out + out.err).splitlines() if line.startswith(("error:", "Unknown command"))]
    assert len(errors) == 1, out.out + out.err  # one line
    MESSAGES[name] = builtins_only(errors[0].replace(files["tmp"], "<tmp>"))


def builtins_only(message: str) -> str:
    """A message that lists recipes, with the plugins' left out: the docs table is the same with or without them."""
    from latentreason.catalogue import config_options

    for name, (_, origin) in config_options("recipe").items():
        if origin != "built-in":
            message = message.replace(f", {name}", "").replace(f"{name}, ", "")
    return message


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["run", "recipe=hrm_sudoku", "core.hidden_size=30", "core.num_heads=4", "--dry-run"],
            "is not divisible by core.num_heads=4",
        ),
        (["eval", "ckpt=/nonexistent/final.ckpt"], "does not exist"),
    ],
)
def test_the_console_script_exits_2_without_a_traceback(args, expected):
    result = subprocess.run(
        [sys.executable, "-m", "latentreason.cli", *args], capture_output=True, text=True, timeout=120
    )
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2 and expected in text and "Traceback" not in text, text


def test_a_genuine_bug_keeps_its_traceback(files, monkeypatch):
    """Only the framework's own checks become one line: an unexpected error propagates."""
    monkeypatch.setattr(LatentReasoningModule, "training_step", lambda self, *a: {}["a bug"])
    with pytest.raises(KeyError):
        cli.main([*RUN, f"output_dir={files['tmp']}/runs"])


def render_table() -> str:
    def command(name, args):
        shown = "latentreason " + (
            " ".join(["run <tiny config>", *args[len(RUN) :]]) if args[: len(RUN)] == RUN else " ".join(args)
        )
        shown = shown.replace("{tmp}/", "").replace("{", "<").replace("}", ">")
        return shown + (" (memory error simulated)" if name in OOM else "")

    rows = [
        f"| `{name}` | {what} | `{command(name, args)}` | {MESSAGES[name].removeprefix('error: ').replace('|', '&#124;').replace('[', '&#91;')} |"
        for name, what, args, _ in CASES
    ]
    return "\n".join(["| case | what is wrong | command | message (exit code 2) |", "|---|---|---|---|", *rows])


def test_docs_list_every_case():
    """docs/errors.md holds the table of CASES (regenerated from the messages when asked to)."""
    if os.environ.get("LATENTREASON_WRITE_ERRORS_DOC") and len(MESSAGES) == len(CASES):
        text = DOC.read_text()
        start, end = text.index("<!-- cases -->") + len("<!-- cases -->"), text.index("<!-- /cases -->")
        DOC.write_text(text[:start] + "\n" + render_table() + "\n" + text[end:])
    doc = DOC.read_text()
    for name, *_ in CASES:
        assert re.search(rf"^\| `{re.escape(name)}` \|", doc, re.M), f"docs/errors.md lacks the case {name}"
    if len(MESSAGES) == len(CASES):  # every case ran in this session: the table must show today's messages
        table = doc[doc.index("<!-- cases -->") + len("<!-- cases -->") : doc.index("<!-- /cases -->")].strip()
        assert table == render_table(), (
            "docs/errors.md is out of date: regenerate it with LATENTREASON_WRITE_ERRORS_DOC=1 (see the module docstring)"
        )
