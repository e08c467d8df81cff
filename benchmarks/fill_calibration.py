"""When does `infer=fill` help? How often a checkpoint's surest open cells are right, and what filling does.

    python benchmarks/fill_calibration.py --ckpt runs/<run>/final.ckpt [--data FILE] [--limit N] \
        [--rounds 8] [--fraction 0.3]

`fill` commits the surest open cells of a Sudoku as givens and solves again, so it can only help when
those cells are right far more often than the rest. Two tables, on the held-out split (or `--data`,
read as `latentreason eval data=` reads it):

* one pass: the accuracy of the open cell ranked k-th by the model's own probability (stablemax or
  softmax, as trained), and of all open cells;
* fill, round by round: exact accuracy of the answer after that pass, the share of rows that have
  committed a wrong cell (they can no longer be solved), and the mean number of open cells left.
"""

from __future__ import annotations

import argparse

import torch
from rich.console import Console
from rich.table import Table

from latentreason.infer.fill import surest_open_cells, token_probabilities
from latentreason.inference import load_checkpoint, run_to_halt

RANKS = (1, 2, 3, 5, 10, 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="a checkpoint of `latentreason run` on Sudoku")
    parser.add_argument("--data", default=None, help="puzzles in a file (default: the run's held-out split)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N puzzles")
    parser.add_argument("--rounds", type=int, default=8, help="model passes (infer.rounds)")
    parser.add_argument("--fraction", type=float, default=0.3, help="share of open cells committed a round")
    args = parser.parse_args()

    trained = load_checkpoint(args.ckpt)
    model, task = trained.model, trained.task
    split = task.read_file(args.data) if args.data else task.splits()["test"]
    count = len(split["inputs"]) if args.limit is None else min(args.limit, len(split["inputs"]))
    inputs, labels, ids = (split[k][:count].long() for k in ("inputs", "labels", "puzzle_ids"))
    console = Console()

    current, wrong = inputs.clone(), torch.zeros(count, dtype=torch.bool)
    rounds = Table(title=f"fill, {args.fraction:.0%} of the open cells a round ({count} puzzles)")
    for name in ("pass", "exact", "rows with a wrong commitment", "open cells left / row"):
        rounds.add_column(name, justify="right")
    for round_ in range(args.rounds):
        logits, _, _ = run_to_halt(model, current, ids)
        predicted = logits.argmax(-1)
        answer = torch.where(current != inputs, current, predicted)
        open_cells = current == task.blank_token
        exact = (answer == labels).all(1).float().mean()
        rounds.add_row(
            str(round_ + 1), f"{exact:.1%}", f"{wrong.float().mean():.1%}", f"{open_cells.sum(1).float().mean():.1f}"
        )
        sure = token_probabilities(logits, task.loss).amax(-1)
        if round_ == 0:
            console.print(ranked_accuracy(sure, predicted == labels, open_cells, count))
        commit = surest_open_cells(sure, open_cells, args.fraction)
        wrong |= (commit & (predicted != labels)).any(1)
        current = torch.where(commit, predicted, current)
    console.print(rounds)


def ranked_accuracy(sure: torch.Tensor, right: torch.Tensor, open_cells: torch.Tensor, count: int) -> Table:
    """Accuracy of the open cell each row is k-th surest of, over the rows with at least k open cells."""
    score = torch.where(open_cells, sure, torch.full_like(sure, -1.0))
    order = score.argsort(dim=1, descending=True)
    right, ranked_open = right.gather(1, order), open_cells.gather(1, order)
    table = Table(title=f"one pass, {count} puzzles")
    for name in ("k-th surest open cell", "right", "rows"):
        table.add_column(name, justify="right")
    for k in RANKS:
        rows = ranked_open[:, k - 1]
        if rows.any():
            table.add_row(str(k), f"{right[rows, k - 1].float().mean():.1%}", str(int(rows.sum())))
    table.add_row("all open", f"{right[ranked_open].float().mean():.1%}", str(count))
    return table


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
