"""Two variants of one recipe's training step, taking turns in one process.

    python benchmarks/ab.py recipe=lonly_sudoku preset=cpu                       # eager vs compiled
    python benchmarks/ab.py recipe=lonly_sudoku preset=cpu --a core.num_heads=4 --b core.num_heads=2

The first arguments are the recipe and overrides both variants share; `--a` and `--b` add each
variant's own (by default trainer.compile=false and trainer.compile=true). Taking turns makes the
ratio robust to a CPU whose speed drifts (on the 2-core machines the matmul peak moves by 1.5x
within minutes), and an fp32 matmul is timed in every turn, so each step is set against the peak of
its own moment. The table gives each variant's FLOPs per step, median step time, median % of peak
and first-call (compile) cost. The step is `bench.OurStep.model_step`: train_segment, backward,
optimizer step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from latentreason.bench import OurStep, matmul_peak, step_flops
from latentreason.config import load_config
from latentreason.tasks.base import build_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="+", help="recipe=NAME and Hydra overrides both variants share")
    parser.add_argument("--a", nargs="*", default=["trainer.compile=false"], help="variant A's own overrides")
    parser.add_argument("--b", nargs="*", default=["trainer.compile=true"], help="variant B's own overrides")
    parser.add_argument("--repeats", type=int, default=10, help="timed turns (default 10)")
    args = parser.parse_args()

    cpu = torch.device("cpu")
    variants: dict[str, OurStep] = {}
    flops, first_call = {}, {}
    for name, extra in (("A", args.a), ("B", args.b)):
        config = load_config([*args.overrides, *extra])
        torch.set_num_threads(int(config.trainer.threads or torch.get_num_threads()))
        task = build_task(config)
        splits = task.splits()
        flops[name] = step_flops(config, splits, task, None, cpu)
        torch.manual_seed(int(config.seed))
        variants[name] = OurStep(config, splits, task, None, cpu)
    batch = variants["A"].stream.batch(0, cpu)

    for name, step in variants.items():
        start = time.perf_counter()
        step.model_step(batch)
        first_call[name] = time.perf_counter() - start
        step.model_step(batch)  # one more warm-up step each

    times: dict[str, list[float]] = {"A": [], "B": []}
    fractions: dict[str, list[float]] = {"A": [], "B": []}
    peaks = []
    for _ in range(args.repeats):
        peak = statistics.median(matmul_peak(cpu, torch.float32, repeats=3))
        peaks.append(peak)
        for name, step in variants.items():
            start = time.perf_counter()
            step.model_step(batch)
            seconds = time.perf_counter() - start
            times[name].append(seconds)
            fractions[name].append(flops[name] / seconds / peak)

    table = Table(
        title=f"{' '.join(args.overrides)}  ({torch.get_num_threads()} threads; fp32 peak "
        f"{statistics.median(peaks) / 1e9:.0f} GFLOP/s, range {min(peaks) / 1e9:.0f}-{max(peaks) / 1e9:.0f})"
    )
    for column in ("variant", "GFLOP/step", "median step ms", "range ms", "% of peak (median)", "first call s"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for name, extra in (("A", args.a), ("B", args.b)):
        table.add_row(
            f"{name}: {' '.join(extra) or '(shared only)'}",
            f"{flops[name] / 1e9:.2f}",
            f"{statistics.median(times[name]) * 1e3:.0f}",
            f"{min(times[name]) * 1e3:.0f}-{max(times[name]) * 1e3:.0f}",
            f"{100 * statistics.median(fractions[name]):.1f}%",
            f"{first_call[name]:.1f}",
        )
    Console().print(table)
    ratio = statistics.median(times["A"]) / statistics.median(times["B"])
    print(f"B's step is {ratio:.2f}x A's speed")


if __name__ == "__main__":
    main()
