"""Compare cores at the same wall-clock budget on this machine: one CPU-preset run per recipe.

    python benchmarks/compare_cores.py --minutes 3

Each recipe trains with its `cpu` preset for exactly `--minutes` of training time (no step limit,
and a constant learning rate after warmup, so that no run is favoured by where its decay ends),
then is evaluated on the whole held-out split. Writes a markdown table to docs/comparison.md and
prints it.
"""

from __future__ import annotations

import argparse
import csv
import platform
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

RECIPES = ["hrm_sudoku", "lonly_sudoku", "trm_sudoku", "diffusion_sudoku"]
COLUMNS = ("recipe", "parameters", "steps", "train min", "token acc", "exact acc", "mean segments")


def run_one(recipe: str, minutes: float, seed: int, root: Path) -> dict[str, str]:
    command = [
        sys.executable,
        "-m",
        "latentreason.cli",
        "run",
        f"recipe={recipe}",
        "preset=cpu",
        f"seed={seed}",
        f"trainer.max_minutes={minutes}",
        "trainer.max_steps=1000000",
        "optim.min_lr_ratio=1.0",
        "trainer.eval_every=0",
        "trainer.progress=false",
        f"output_dir={root}",
        f"run_name={recipe}",
    ]
    started = time.time()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{recipe} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    rows = list(csv.DictReader(open(root / recipe / "metrics.csv")))
    test = next(r for r in rows if r.get("test/exact_accuracy"))
    steps = max(int(r["step"]) for r in rows if r.get("train/loss")) + 1
    params = (
        next(line for line in result.stdout.splitlines() if "parameters;" in line)
        .split(" parameters;")[0]
        .rsplit(", ", 1)[-1]
    )
    train_minutes = (
        next(line for line in result.stdout.splitlines() if "trained" in line)
        .split("trained ")[1]
        .split(" in ")[1]
        .split(" min")[0]
    )
    return {
        "recipe": recipe,
        "parameters": params,
        "steps": str(steps),
        "train min": train_minutes,
        "token acc": f"{float(test['test/token_accuracy']):.1%}",
        "exact acc": f"{float(test['test/exact_accuracy']):.1%}",
        "mean segments": f"{float(test['test/steps']):.2f}",
        "wall": f"{time.time() - started:.0f}s",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipes", nargs="+", default=RECIPES)
    parser.add_argument("--output", default=str(Path(__file__).resolve().parents[1] / "docs" / "comparison.md"))
    parser.add_argument("--runs", default="runs/compare")
    args = parser.parse_args()
    results = [run_one(r, args.minutes, args.seed, Path(args.runs)) for r in args.recipes]

    table = Table(title=f"CPU presets, {args.minutes:g} min of training each")
    for column in COLUMNS:
        table.add_column(column)
    for r in results:
        table.add_row(*(r[c] for c in COLUMNS))
    Console().print(table)

    machine = f"{platform.machine()}, {platform.processor() or 'CPU'}, Python {platform.python_version()}"
    lines = [
        "# Cores compared at the same wall-clock budget",
        "",
        f"Each recipe's `cpu` preset (9x9 Sudoku, 45-55 givens, see [Configs](configs.md)) trained for {args.minutes:g} minutes "
        f"(no step limit, constant learning rate after warmup), seed {args.seed}, then evaluated on the whole held-out "
        f"split with its policy's maximum number of segments. One run each: differences of a point or two are noise. "
        f"Machine: {machine}, 2 cores. Regenerate with `python benchmarks/compare_cores.py --minutes {args.minutes:g}`.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
        *("| " + " | ".join(r[c] for c in COLUMNS) + " |" for r in results),
        "",
    ]
    Path(args.output).write_text("\n".join(lines))


if __name__ == "__main__":
    main()
