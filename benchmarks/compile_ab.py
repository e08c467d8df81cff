"""Eager against compiled: one recipe's training step both ways, taking turns, in one process.

    python benchmarks/compile_ab.py recipe=lonly_sudoku preset=cpu [key=value ...] [--repeats 10]

Taking turns makes the ratio robust to a CPU whose speed drifts (on the 2-core machines the matmul
peak moves by 1.5x within minutes); the table gives each median and their ratio, the first-call
(compile) cost, and the matmul peak read at the end. The step is `bench.OurStep.model_step`:
train_segment, backward, optimizer step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from latentreason.bench import OurStep, matmul_peak
from latentreason.config import load_config
from latentreason.tasks.base import build_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="+", help="recipe=NAME and Hydra overrides, as for `latentreason run`")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps of each variant (default 10)")
    args = parser.parse_args()

    config = load_config(args.overrides)
    torch.set_num_threads(int(config.trainer.threads or torch.get_num_threads()))
    task = build_task(config)
    splits = task.splits()
    cpu = torch.device("cpu")
    variants = {}
    for compiled in (False, True):
        torch.manual_seed(int(config.seed))
        variants[compiled] = OurStep(
            OmegaConf.merge(config, {"trainer": {"compile": compiled}}), splits, task, None, cpu
        )
    batch = variants[False].stream.batch(0, cpu)

    first_call = {}
    for compiled, step in variants.items():
        start = time.perf_counter()
        step.model_step(batch)
        first_call[compiled] = time.perf_counter() - start
        step.model_step(batch)  # one more warm-up step each

    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for compiled, step in variants.items():
            start = time.perf_counter()
            step.model_step(batch)
            times[compiled].append(time.perf_counter() - start)
    peak = statistics.median(matmul_peak(cpu, torch.float32))

    eager, compiled = (statistics.median(times[c]) for c in (False, True))
    table = Table(
        title=f"{' '.join(args.overrides)}  ({torch.get_num_threads()} threads; fp32 peak {peak / 1e9:.0f} GFLOP/s)"
    )
    for column in ("variant", "median step ms", "range ms", "first call s"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for c in (False, True):
        table.add_row(
            "compiled" if c else "eager",
            f"{statistics.median(times[c]) * 1e3:.0f}",
            f"{min(times[c]) * 1e3:.0f}-{max(times[c]) * 1e3:.0f}",
            f"{first_call[c]:.1f}",
        )
    Console().print(table)
    print(f"compiled is {eager / compiled:.2f}x the eager step's speed")


if __name__ == "__main__":
    main()
