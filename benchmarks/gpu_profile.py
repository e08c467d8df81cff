"""Where a compiled paper-size hrm_sudoku step spends its GPU time: parts timed apart, then torch.profiler.

    PYTHONPATH=$PWD python benchmarks/gpu_profile.py [--recipe hrm_sudoku] [--batch 768] [overrides ...]

It complements gpu_check.py (which times whole steps): the step, the step without the work outside
the model, forward+backward alone and the optimizer alone, each the median of 20 after warm-up, then
the kernels of five whole steps ranked by GPU time and by CPU time. Needs a CUDA GPU (about a
minute, most of it compiling).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_check import compose  # noqa: E402  (also sets the cache folders)

from latentreason.bench import OurStep, time_calls  # noqa: E402
from latentreason.tasks.base import build_task  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="hrm_sudoku")
    parser.add_argument("--batch", type=int, default=768)
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. model.state_dtype=autocast")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_profile.py needs a CUDA GPU; on CPU, `latentreason bench` times the step.")
    device = torch.device("cuda")
    config = compose(args.recipe, args.batch, True, args.overrides)
    task = build_task(config)
    step = OurStep(config, task.splits(), task, torch.bfloat16, device)
    for _ in range(4):  # compiles
        step.full_step()
    batch = step.stream.batch(0, device)

    print(
        f"{args.recipe} {' '.join(args.overrides)}, batch {args.batch}, optimizer {type(step.optimizer).__name__}, torch {torch.__version__}"
    )
    for name, fn in [
        ("whole step", step.full_step),
        ("model step", lambda: step.model_step(batch)),
        ("forward+backward", lambda: step.forward_backward(batch)),
    ]:
        _, times = time_calls(fn, device, 2, 20)
        print(f"{name}: {statistics.median(times) * 1e3:.1f} ms", flush=True)
    step.forward_backward(batch)
    _, times = time_calls(step.optimizer.step, device, 2, 20)
    print(f"optimizer step: {statistics.median(times) * 1e3:.1f} ms", flush=True)

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            step.full_step()
        torch.cuda.synchronize()
    table = prof.key_averages()
    print(table.table(sort_by="self_device_time_total", row_limit=30, max_name_column_width=60))
    print(table.table(sort_by="cpu_time_total", row_limit=20, max_name_column_width=60))


if __name__ == "__main__":
    main()
