"""Compare cores at the same wall-clock budget on this machine: one CPU-preset run per recipe.

    python benchmarks/compare_cores.py --minutes 3

Each recipe trains with its `cpu` preset for exactly `--minutes` of training time (no step limit,
a constant learning rate after warmup so that no run is favoured by where its decay ends, and eager
steps for all: a compile would eat a different share of each budget), then is evaluated on its
whole held-out split and on harder generated puzzles (`--hard-givens`, default 30-36, from another
seed: the check that a core generalises beyond the givens it was trained on). A recipe may carry
overrides in quotes ("diffusion_sudoku core.train_start=noise"). Writes a markdown table to
docs/comparison.md and prints it; rows of recipes not run this time are kept (`--recipes trm_sudoku`
reruns one row after its preset changed).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

RECIPES = ["hrm_sudoku", "lonly_sudoku", "trm_sudoku", "diffusion_sudoku", "diffusion_sudoku core.train_start=noise"]
COLUMNS = ("recipe", "parameters", "steps", "train min", "token acc", "exact acc", "mean segments", "hard exact")


def hard_puzzles(path: Path, count: int, givens: tuple[int, int], seed: int = 1234) -> Path:
    """A Sudoku-Extreme-format CSV of `count` generated puzzles with `givens` (seeded apart from training)."""
    from latentreason.tasks import sudoku_data as sd

    data = sd.build_dataset(count, 0, seed, 3, *givens)
    lines = ["source,q,a,rating"]
    for q, a in zip(sd.decode(data["inputs"]), sd.decode(data["labels"])):
        lines.append(f"generated,{sd.grid_to_string(q)},{sd.grid_to_string(a)},0")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def hard_exact(checkpoint: Path, puzzles: Path) -> str:
    """Exact accuracy of one pass at max steps on the file, as `latentreason eval ckpt=... data=FILE` scores it."""
    import torch

    from latentreason.infer import evaluate
    from latentreason.inference import load_checkpoint

    trained = load_checkpoint(str(checkpoint))
    with torch.no_grad():
        out = evaluate(trained, trained.task.read_file(puzzles), "single")
    return f"{out['metrics']['exact_accuracy']:.1%}"


def run_name(entry: str) -> str:
    """The run folder of a recipe with its overrides: "diffusion_sudoku core.train_start=noise" ->
    diffusion_sudoku-core_train_start_noise."""
    recipe, *overrides = entry.split()
    return "-".join([recipe, *(o.replace("=", "_").replace(".", "_") for o in overrides)])


def run_one(entry: str, minutes: float, seed: int, root: Path) -> dict[str, str]:
    recipe, *overrides = entry.split()
    name = run_name(entry)
    command = [
        sys.executable,
        "-m",
        "latentreason.cli",
        "run",
        f"recipe={recipe}",
        "preset=cpu",
        *overrides,
        f"seed={seed}",
        f"trainer.max_minutes={minutes}",
        "trainer.max_steps=1000000",
        "optim.min_lr_ratio=1.0",
        "trainer.eval_every=0",
        "trainer.compile=false",
        "trainer.progress=false",
        f"output_dir={root}",
        f"run_name={name}",
    ]
    started = time.time()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{entry} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    rows = list(csv.DictReader(open(root / name / "metrics.csv")))
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
        "recipe": entry,
        "parameters": params,
        "steps": str(steps),
        "train min": train_minutes,
        "token acc": f"{float(test['test/token_accuracy']):.1%}",
        "exact acc": f"{float(test['test/exact_accuracy']):.1%}",
        "mean segments": f"{float(test['test/steps']):.2f}",
        "wall": f"{time.time() - started:.0f}s",
    }


def merged_rows(old_page: str, results: list[dict]) -> list[dict]:
    """The new results, with the rows of the old table whose recipes were not run this time kept in place.

    So `--recipes trm_sudoku` after a change to one preset reruns its row, not the whole table.
    """
    new = {r["recipe"]: r for r in results}
    rows = []
    for line in old_page.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| ") or len(cells) != len(COLUMNS) or cells[0] == "recipe":
            continue
        rows.append(new.pop(cells[0]) if cells[0] in new else dict(zip(COLUMNS, cells)))
    return rows + list(new.values())


NOTES = "\n## Reading\n"  # what follows this heading in the output is kept when the table is regenerated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipes", nargs="+", default=RECIPES, help='recipes, each with overrides if quoted: "r k=v"')
    parser.add_argument("--hard-givens", type=int, nargs=2, default=(30, 36), metavar=("MIN", "MAX"))
    parser.add_argument("--hard-puzzles", type=int, default=500)
    parser.add_argument("--output", default=str(Path(__file__).resolve().parents[1] / "docs" / "comparison.md"))
    parser.add_argument("--runs", default="runs/compare")
    args = parser.parse_args()
    root = Path(args.runs)
    hard = hard_puzzles(root / "hard.csv", args.hard_puzzles, tuple(args.hard_givens))
    results = []
    for entry in args.recipes:
        result = run_one(entry, args.minutes, args.seed, root)
        result["hard exact"] = hard_exact(root / run_name(entry) / "final.ckpt", hard)
        results.append(result)
        print(result, flush=True)

    table = Table(title=f"CPU presets, {args.minutes:g} min of training each")
    for column in COLUMNS:
        table.add_column(column)
    for r in results:
        table.add_row(*(r[c] for c in COLUMNS))
    Console().print(table)

    from latentreason.bench import machine

    low, high = args.hard_givens
    output = Path(args.output)
    kept = output.read_text().partition(NOTES) if output.is_file() else ("", "", "")
    results = merged_rows(kept[0], results)
    lines = [
        "# Cores compared at the same wall-clock budget",
        "",
        f"Each recipe's `cpu` preset (9x9 Sudoku, 45-55 givens, see [Configs](configs.md)) trained for {args.minutes:g} minutes "
        f"(no step limit, constant learning rate after warmup, eager), seed {args.seed}, then evaluated on the whole "
        f"held-out split with its policy's maximum number of segments (token, exact, mean segments) and on "
        f"{args.hard_puzzles} harder generated puzzles with {low}-{high} givens (hard exact). One run each: differences "
        f"of a point or two are noise. Machine: {machine()['cpu']}, 2 cores, {time.strftime('%Y-%m-%d')}. Regenerate "
        f"with `python benchmarks/compare_cores.py --minutes {args.minutes:g}`.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
        *("| " + " | ".join(r[c] for c in COLUMNS) + " |" for r in results),
        "",
    ]
    output.write_text("\n".join(lines) + (kept[1] + kept[2] if kept[1] else ""))


if __name__ == "__main__":
    main()
