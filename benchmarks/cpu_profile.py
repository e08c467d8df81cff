"""Where a CPU preset's training step spends its time: matrix products, attention, fused kernels, the rest.

    python benchmarks/cpu_profile.py recipe=lonly_sudoku preset=cpu            # compiled, as the preset trains
    python benchmarks/cpu_profile.py recipe=hrm_sudoku preset=cpu trainer.compile=false

torch.profiler over 5 model steps (train_segment, backward, optimizer step) after 3 warm-up steps;
self time grouped by kind of work ("the rest": Python, the optimizer, small eager ops); each
group's FLOPs from torch's flop counter, and its rate set against an fp32 matmul peak timed in the
same process before and after the profile. It says what keeps a small model's step from the peak,
which `latentreason bench` (the whole step) cannot.
The profiler stretches the step by 10-20%: read the shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from rich.console import Console
from rich.table import Table
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from latentreason.bench import OurStep, matmul_peak, with_overrides
from latentreason.config import load_config
from latentreason.tasks.base import build_task

STEPS = 5
REST = "the rest"
GROUPS = {  # profiler event name -> group; FLOP-counter op name -> group
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm"),
    "attention": ("flash_attention",),
    "fused elementwise": ("CompiledFxGraph",),  # the compiled graphs' own kernels
}


def group_of(name: str) -> str | None:
    return next((g for g, keys in GROUPS.items() if any(k in name for k in keys)), None)


def measure(config, steps: int = STEPS) -> tuple[dict, dict, float]:
    """(seconds per step by group, FLOPs per step by group, profiled seconds per step in all)."""
    task = build_task(config)
    splits, cpu = task.splits(), torch.device("cpu")

    # FLOPs by kind, on an eager copy: the counter cannot see inside compiled graphs
    eager = OurStep(with_overrides(config, {"trainer": {"compile": False}}), splits, task, None, cpu)
    batch = eager.stream.batch(0, cpu)
    with FlopCounterMode(display=False) as counter:
        eager.model_step(batch)
    flops = dict.fromkeys([*GROUPS, REST], 0)
    for op, n in counter.get_flop_counts()["Global"].items():
        flops[group_of(str(op).replace("aten.", "aten::")) or REST] += n
    del eager

    torch.manual_seed(int(config.seed))
    step = OurStep(config, splits, task, None, cpu)
    for _ in range(3):  # compiles, if the recipe does
        step.model_step(batch)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step.model_step(batch)

    seconds = dict.fromkeys(GROUPS, 0.0)
    total = 0.0
    for event in prof.key_averages():
        total += event.self_cpu_time_total / 1e6 / steps
        group = group_of(event.key)
        if group:
            seconds[group] += event.self_cpu_time_total / 1e6 / steps
    return seconds, flops, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="+", help="recipe=NAME and Hydra overrides")
    overrides = parser.parse_args().overrides
    config = load_config(overrides)
    torch.set_num_threads(int(config.trainer.threads or torch.get_num_threads()))
    cpu = torch.device("cpu")
    peaks = matmul_peak(cpu, torch.float32)
    seconds, flops, total = measure(config)
    peaks += matmul_peak(cpu, torch.float32)
    peak = statistics.median(peaks)

    table = Table(title=f"{' '.join(overrides)}: one model step, profiled ({total * 1e3:.1f} ms)")
    for column in ("work", "ms/step", "share", "GFLOP/step", "GFLOP/s", "% of peak"):
        table.add_column(column, justify="left" if column == "work" else "right")
    for group, s in [*seconds.items(), (REST, total - sum(seconds.values()))]:
        f = flops[group]
        rate = f / s if f and s else 0.0
        row = [f"{s * 1e3:.1f}", f"{s / total:.1%}", f"{f / 1e9:.2f}" if f else "-"]
        table.add_row(group, *row, f"{rate / 1e9:.0f}" if rate else "-", f"{rate / peak:.0%}" if rate else "-")
    Console().print(table)
    print(
        f"fp32 matmul peak in this process: {peak / 1e9:.0f} GFLOP/s (range {min(peaks) / 1e9:.0f}-{max(peaks) / 1e9:.0f}); "
        f"the whole step, profiled: {sum(flops.values()) / total / peak:.1%} of it"
    )


if __name__ == "__main__":
    main()
