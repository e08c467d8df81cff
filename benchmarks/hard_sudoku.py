"""Exact accuracy on hard puzzles against the number of givens, for a checkpoint and a few inference strategies.

    python benchmarks/hard_sudoku.py --ckpt runs/<run>/final.ckpt \
        --data ../shared/data/sudoku/magictour_top1465_dev.txt [--every K] [--limit N] [--strategies single augment_vote]

Reads the file as `latentreason eval data=` does (a plain list is solved first, in one process per
core), runs each strategy through `latentreason.infer.evaluate`, and prints one table: per number of
givens, how many puzzles and the exact accuracy of each strategy, with the totals. `augment_vote`
votes over 16 symmetric copies and keeps a valid grid when one of them is (its `check`);
`augment_vote_unchecked` votes without that check, as the papers do.
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch
from rich.console import Console
from rich.table import Table

from latentreason.infer import evaluate
from latentreason.inference import load_checkpoint
from latentreason.tasks import sudoku_data as sd

STRATEGIES = {
    "single": {"name": "single"},
    "augment_vote": {"name": "augment_vote", "count": 16, "check": True},
}
STRATEGIES["augment_vote_unchecked"] = {**STRATEGIES["augment_vote"], "check": False}  # the papers' protocol


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="a checkpoint of `latentreason run` (9x9 Sudoku)")
    parser.add_argument("--data", required=True, help="puzzles: one 81-character line each, or a Sudoku-Extreme CSV")
    parser.add_argument("--limit", type=int, default=None, help="only the first N puzzles")
    parser.add_argument("--every", type=int, default=1, help="only every K-th puzzle (before --limit)")
    parser.add_argument("--strategies", nargs="+", default=["single", "augment_vote"], choices=list(STRATEGIES))
    args = parser.parse_args()

    trained = load_checkpoint(args.ckpt)
    split = trained.task.read_file(args.data)
    # A sample spread over the file: magictour's is not shuffled (its first 150 average 18 givens, the rest 22-23).
    if args.every > 1:
        split = {key: value[:: args.every] for key, value in split.items()}
    count = len(split["inputs"]) if args.limit is None else min(args.limit, len(split["inputs"]))
    givens = torch.tensor([sd.count_givens(sd.decode(row)) for row in split["inputs"][:count].numpy()])
    labels = split["labels"][:count]
    exact = {}
    for name in args.strategies:
        out = evaluate(trained, split, STRATEGIES[name], limit=count)
        exact[name] = (out["predictions"] == labels).all(dim=1)
        print(f"{name}: exact {exact[name].float().mean():.1%} of {count} in {out['wall_s']:.0f} s")

    table = Table(title=f"{args.data}: exact accuracy by number of givens ({args.ckpt})")
    table.add_column("givens", justify="right")
    table.add_column("puzzles", justify="right")
    for name in args.strategies:
        table.add_column(name, justify="right")
    for g, n in sorted(Counter(givens.tolist()).items()):
        rows = givens == g
        table.add_row(str(g), str(n), *(f"{exact[s][rows].float().mean():.1%}" for s in args.strategies))
    table.add_row("all", str(count), *(f"{exact[s].float().mean():.1%}" for s in args.strategies))
    Console().print(table)


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
