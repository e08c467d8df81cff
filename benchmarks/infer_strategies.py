"""Accuracy against inference compute: every inference strategy on one checkpoint, on puzzles harder than its training.

    python benchmarks/infer_strategies.py --ckpt CKPT --puzzles 300 --givens 30 36 [--magictour FILE]

Generates `--puzzles` 9x9 puzzles with the given range of givens (the project's generator, seeded,
written to a CSV beside the output so `latentreason eval data=...` reads the same file), then runs
each strategy of STRATEGIES on them through `latentreason.infer.evaluate` and prints one table per
data set: exact and token accuracy, segments and forward passes (rows x segment calls) per
puzzle, compute relative to a single pass, wall time, and whether the validity check was used.
Markdown tables go to `--out` (for docs/inference.md).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
from pathlib import Path

import torch

from latentreason.infer import compare, evaluate
from latentreason.inference import load_checkpoint
from latentreason.tasks import sudoku_data as sd

# (label, config): what the docs table compares; compute about 1x, 2x, 8x and 16x a single pass.
STRATEGIES = [
    {"name": "single"},
    {"name": "more_steps", "factor": 2.0},
    {"name": "noise_select", "samples": 8, "sigma": 0.1},
    {"name": "noise_select", "samples": 16, "sigma": 0.1},
    {"name": "noise_select", "samples": 16, "sigma": 0.3},
    {"name": "augment_vote", "count": 8},
    {"name": "augment_vote", "count": 16},
    {"name": "augment_vote", "count": 4, "inner": {"name": "noise_select", "samples": 4, "sigma": 0.1}},
    {"name": "augment_vote", "count": 16, "check": True},
]

# A smaller set for a loaded machine: single, 2x, and the three 16x strategies.
SMALL = [STRATEGIES[0], STRATEGIES[1], STRATEGIES[3], STRATEGIES[6], STRATEGIES[8]]


def generated_csv(path: Path, count: int, givens: tuple[int, int], seed: int) -> Path:
    if not path.exists():
        data = sd.build_dataset(count, 0, seed, 3, givens[0], givens[1])
        with open(path, "w") as handle:
            handle.write("source,q,a,rating\n")
            for q, a, r in zip(data["inputs"], data["labels"], data["ratings"]):
                handle.write(f"generated,{sd.grid_to_string(sd.decode(q))},{sd.grid_to_string(sd.decode(a))},{r}\n")
    return path


def markdown(results: list[dict]) -> str:
    base = results[0]["per_example"]["forward_passes"]
    lines = [
        "| strategy | exact | token | segments / puzzle | forward passes / puzzle | compute x single | wall s "
        "| validity check |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        m, p = r["metrics"], r["per_example"]
        lines.append(
            f"| `{r['strategy']}` | {m['exact_accuracy']:.1%} | {m['token_accuracy']:.1%} | {p['segments']:.2f} | "
            f"{p['forward_passes']:.1f} | {p['forward_passes'] / base:.1f} | {r['wall_s']:.1f} | "
            f"{'used' if r['checked'] else 'no'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--puzzles", type=int, default=300)
    parser.add_argument("--givens", type=int, nargs=2, default=(30, 36))
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N generated puzzles")
    parser.add_argument(
        "--magictour", default=None, help="also evaluate on this puzzle file (first --magictour-limit lines)"
    )
    parser.add_argument("--magictour-limit", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="infer-benchmark.md")
    parser.add_argument("--small", action="store_true", help="only single, more_steps x2 and the 16x strategies")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    trained = load_checkpoint(args.ckpt, device="cpu")
    out = Path(args.out)
    csv = generated_csv(
        out.parent / (f"sudoku9-givens{args.givens[0]}-{args.givens[1]}-n{args.puzzles}-seed{args.seed}.csv"),
        args.puzzles,
        tuple(args.givens),
        args.seed,
    )
    sets = [
        (
            f"{args.puzzles} generated 9x9 puzzles, {args.givens[0]}-{args.givens[1]} givens"
            + (f" (first {args.limit})" if args.limit else ""),
            trained.task.read_file(csv),
            args.limit,
        )
    ]
    if args.magictour:
        sets.append(
            (
                f"magictour top1465 (first {args.magictour_limit})",
                trained.task.read_file(args.magictour),
                args.magictour_limit,
            )
        )
    started = datetime.datetime.now(datetime.timezone.utc)
    report = [
        f"Checkpoint {args.ckpt}; {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}; {started:%Y-%m-%d %H:%M} UTC",
        "",
    ]
    for title, data, limit in sets:
        trained.use_puzzle_names(data)
        results = []
        for config in SMALL if args.small else STRATEGIES:
            t = time.perf_counter()
            results.append(evaluate(trained, data, config, args.batch_size, limit))
            print(
                f"{results[-1]['strategy']}: {results[-1]['metrics']['exact_accuracy']:.1%} in "
                f"{time.perf_counter() - t:.0f} s",
                flush=True,
            )
        compare(results, title)
        report += [f"### {title}", "", markdown(results), ""]
    out.write_text("\n".join(report))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
