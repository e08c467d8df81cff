"""One prepared run on a GPU machine (<= 8 minutes all told): the paper presets in bf16, eager and compiled.

Run from the repository root, once, on a machine with a CUDA GPU:

    PYTHONPATH=$PWD python benchmarks/gpu_check.py            # writes benchmarks/RESULTS.md's GPU section
    PYTHONPATH=$PWD python benchmarks/gpu_check.py --quick    # a few steps of each part, to see that it runs
    PYTHONPATH=$PWD python benchmarks/gpu_check.py --cpu-smoke --out /tmp/gpu_check.md  # tiny models on CPU, no compile
    PYTHONPATH=$PWD python benchmarks/gpu_check.py --parts "hrm_sudoku compiled (bf16 state),reference HRM"  # some parts

For each of hrm_sudoku, trm_sudoku and lonly_sudoku at paper configuration (hidden 512, global
batch 768 unless --batch), it times training steps in bf16-mixed eager and compiled (compile time
reported apart; compiled also with `model.state_dtype=autocast`, the state in bf16, and last, for
hrm_sudoku, with inductor's max_autotune, which may fuse elementwise work into the matmuls), the
model FLOP utilisation against a bf16 matmul measured in the same process, peak memory, the loss at
the start and end of the steps (it should go down), and the difference of bf16 and fp32 logits on one batch;
then the reference HRM (../shared/reference/hrm, with its own torch.compile as in its pretrain.py)
at the same batch for the step-time ratio, and the evaluation throughput with and without
per-example early exit. A time budget stops parts that would overrun;
whatever ran is written. The data are generated 9x9 puzzles (a few hundred, cached), not
Sudoku-Extreme: this checks speed and numerics, not accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch._inductor.config  # max_autotune, patched for one part

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LATENTREASON_CACHE", str(ROOT / "benchmarks" / ".cache"))
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(ROOT / "benchmarks" / ".cache" / "inductor"))

from latentreason.bench import (  # noqa: E402
    OurStep,
    inference_rows,
    matmul_peak,
    peak_memory_bytes,
    spread,
    step_flops,
    time_calls,
)
from latentreason.config import load_config  # noqa: E402
from latentreason.tasks.base import build_task  # noqa: E402

RECIPES = ("hrm_sudoku", "trm_sudoku", "lonly_sudoku")
DATA = [
    "task.box=3",
    "task.train_puzzles=300",
    "task.augmentations=8",
    "task.test_puzzles=256",
    "task.min_givens=36",
    "task.max_givens=45",
]


class Budget:
    def __init__(self, seconds: float):
        self.start, self.seconds = time.time(), seconds

    def left(self) -> float:
        return self.seconds - (time.time() - self.start)


SMOKE = ["core.hidden_size=32", "core.num_heads=2", "core.mlp_multiple=16", "halt.max_steps=3", "task.train_puzzles=20"]
SMOKE += ["task.augmentations=2", "task.test_puzzles=10", "task.min_givens=45", "task.max_givens=55"]


def compose(recipe: str, batch: int, compile: bool, extra=()):
    """The recipe at paper configuration (unless `extra` shrinks it), on the check's data."""
    return load_config(
        [
            f"recipe={recipe}",
            "preset=paper",
            *DATA,
            f"trainer.global_batch_size={batch}",
            f"trainer.compile={str(compile).lower()}",
            *extra,
        ]
    )


def train_part(recipe: str, batch: int, steps: int, compile: bool, peak: float, device, extra=()) -> dict:
    config = compose(recipe, batch, compile, extra)
    if compile:  # dynamo's graphs are per function, shared by every model built here: a run builds one
        torch._dynamo.reset()
    task = build_task(config)
    splits = task.splits()
    ours = OurStep(config, splits, task, torch.bfloat16, device)
    flops = step_flops(config, splits, task, torch.bfloat16, device, None if compile else ours)
    if device.type == "cuda":  # after the FLOP count, whose eager copy of the model is gone by now
        torch.cuda.reset_peak_memory_stats()
    losses = []

    def step():
        ours.full_step()
        losses.append(float(ours.loss.detach()) / batch)

    started = time.time()
    warm, times = time_calls(step, device, 3, steps)
    return {
        "recipe": recipe,
        "compile": compile,
        "batch": batch,
        "steps": steps,
        "flops": flops,
        "step_s": spread(times),
        "mfu": flops / statistics.median(times) / peak,
        "compile_s": warm[0] - statistics.median(times),
        "wall_s": time.time() - started,
        "loss_first": statistics.mean(losses[:5]),
        "loss_last": statistics.mean(losses[-5:]),
        "peak_memory_gib": peak_memory_bytes(device) / 2**30,
        "model": ours,
    }


def bf16_vs_fp32(ours: OurStep) -> dict:
    """Logits of one batch, fp32 vs bf16 autocast, same weights and state."""
    model, device = ours.model, ours.device
    batch = ours.stream.batch(0, device)
    model.eval()
    with torch.no_grad():
        x32 = model.embed(batch["inputs"], batch["puzzle_ids"])
        state = model.initial_state(len(x32), device)
        logits32, _ = model.heads(model.segment(state, x32))
        with torch.autocast(device.type, dtype=torch.bfloat16):
            x16 = model.embed(batch["inputs"], batch["puzzle_ids"])
            logits16, _ = model.heads(model.segment(model.initial_state(len(x16), device), x16))
    model.train()
    diff = (logits16.float() - logits32).abs()
    return {
        "max_abs": float(diff.max()),
        "mean_abs": float(diff.mean()),
        "logit_scale": float(logits32.abs().mean()),
        "argmax_agree": float((logits16.argmax(-1) == logits32.argmax(-1)).float().mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=768)
    parser.add_argument("--steps", type=int, default=200, help="timed steps of hrm_sudoku (the others: half)")
    parser.add_argument(
        "--budget", type=float, default=7.5 * 60, help="seconds; parts that would start after it are skipped"
    )
    parser.add_argument("--quick", action="store_true", help="a few steps of every part")
    parser.add_argument(
        "--cpu-smoke", action="store_true", help="tiny models on CPU, eager only: checks the script, measures nothing"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    parser.add_argument(
        "--parts",
        default="",
        help="comma-separated parts to run, in that order, e.g. 'hrm_sudoku compiled,reference HRM' (default: all)",
    )
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.cpu_smoke:
        sys.exit("gpu_check.py needs a CUDA GPU; on CPU use `latentreason bench` (see docs/performance.md).")
    steps = 5 if args.quick else 3 if args.cpu_smoke else args.steps
    extra = SMOKE if args.cpu_smoke else []
    if args.cpu_smoke:
        args.batch = 8
    budget = Budget(args.budget)
    device = torch.device("cpu" if args.cpu_smoke else "cuda")
    if (
        args.cpu_smoke
    ):  # bf16 matmuls are slow on CPUs: a small one, and no time budget (it checks, it does not measure)
        budget.seconds = float("inf")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    peak = statistics.median(matmul_peak(device, torch.bfloat16, size=256 if args.cpu_smoke else None, repeats=10))
    results = {
        "peak_bf16_flop_per_s": peak,
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU smoke test",
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(sys.argv),
        "parts": [],
        "notes": [],
    }

    def ours(recipe: str, compile: bool, bf16_state: bool = False, autotune: bool = False) -> None:
        overrides = [*extra, "model.state_dtype=autocast"] if bf16_state else extra
        # max_autotune: inductor times Triton matmul templates against cuBLAS and may fuse the
        # elementwise work that follows a matmul into it (what mode="max-autotune-no-cudagraphs" sets)
        with torch._inductor.config.patch(max_autotune=autotune):
            part = train_part(
                recipe,
                args.batch,
                steps if recipe == "hrm_sudoku" else max(steps // 2, 5),
                compile,
                peak,
                device,
                overrides,
            )
        part["state"] = "bf16" if bf16_state else "fp32"
        part["max_autotune"] = autotune
        model = part.pop("model")
        if not compile or bf16_state:
            part["bf16_vs_fp32"] = bf16_vs_fp32(model)
        if not compile:
            test = model.module.splits["test"]
            inputs, labels, ids = (test[k][:256].to(device) for k in ("inputs", "labels", "puzzle_ids"))
            with model.autocast():
                part["inference"] = [
                    {"name": r.name, "examples_per_s": r.examples_per_step / r.median_s, **r.extra}
                    for r in inference_rows(model.model, inputs, labels, ids, device, repeats=3)
                ]
        results["parts"].append(part)
        print(json.dumps(part, default=str), flush=True)

    def reference() -> None:
        from latentreason.peers import reference_hrm_row

        config = compose("hrm_sudoku", args.batch, False, extra)
        row = reference_hrm_row(
            config,
            build_task(config),
            args.batch,
            device,
            torch.bfloat16,
            3,
            steps // 2 or 5,
            compile=not args.cpu_smoke,
        )
        if row is None:
            results["notes"].append("reference HRM not found (../shared/reference/hrm or $LATENTREASON_REFERENCE)")
            return
        results["reference_hrm"] = {
            "compiled": not args.cpu_smoke,
            "step_s": row.step_s,
            "flops": row.flops,
            "mfu": row.flops / row.median_s / peak,
        }
        print(json.dumps(results["reference_hrm"], default=str), flush=True)

    # Most wanted first (the targets are hrm_sudoku's MFU and its ratio to the reference), so that a
    # run cut short by its machine's lease still answers them. A compiled part needs longer to start.
    parts = {"hrm_sudoku eager": (60, lambda: ours("hrm_sudoku", False))}
    if not args.cpu_smoke:
        parts["hrm_sudoku compiled"] = (120, lambda: ours("hrm_sudoku", True))
        parts["hrm_sudoku compiled (bf16 state)"] = (120, lambda: ours("hrm_sudoku", True, True))
    parts["reference HRM"] = (120, reference)
    for recipe in RECIPES[1:]:
        parts[f"{recipe} eager"] = (60, lambda r=recipe: ours(r, False))
    if not args.cpu_smoke:
        for recipe in RECIPES[1:]:
            parts[f"{recipe} compiled"] = (120, lambda r=recipe: ours(r, True))
            parts[f"{recipe} compiled (bf16 state)"] = (120, lambda r=recipe: ours(r, True, True))
        # last: its autotuning takes minutes (not yet run on a GPU; name it in --parts to run it first)
        parts["hrm_sudoku compiled (bf16 state, max-autotune)"] = (240, lambda: ours("hrm_sudoku", True, True, True))
    if args.cpu_smoke:
        parts["hrm_sudoku eager (bf16 state)"] = (60, lambda: ours("hrm_sudoku", False, True))
    chosen = [name.strip() for name in args.parts.split(",")] if args.parts else list(parts)
    unknown = [name for name in chosen if name not in parts]
    if unknown:
        sys.exit(f"--parts: no part named {', '.join(map(repr, unknown))}; the parts are: {', '.join(parts)}")
    parts = [(name, *parts[name]) for name in chosen]
    for name, needs, run in parts:
        if budget.left() < needs:
            results["notes"].append(f"skipped {name}: {budget.left():.0f} s of the budget left, it needs about {needs}")
            continue
        started = time.time()
        try:
            run()
        except Exception as error:  # one broken part must not cost the others their figures
            results["notes"].append(
                f"{name} failed after {time.time() - started:.0f} s: {type(error).__name__}: {error}"[:500]
            )
            print(results["notes"][-1], flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        (out.parent / "gpu_check.json").write_text(json.dumps(results, indent=2, default=str))
    results["peak_bf16_flop_per_s_at_end"] = statistics.median(
        matmul_peak(device, torch.bfloat16, size=256 if args.cpu_smoke else None, repeats=10)
    )
    write(results, out)


def autotuned(part: dict) -> str:
    return " (max-autotune)" if part.get("max_autotune") else ""


def write(results: dict, out: Path) -> None:
    lines = [
        "",
        f"## GPU check ({results['gpu']}, {results['date']})",
        "",
        (
            f"`{results['command']}`; torch {results['torch']}; "
            f"bf16 matmul peak measured in the run: {results['peak_bf16_flop_per_s'] / 1e12:.0f} TFLOP/s."
        ),
        "",
        (
            "| recipe | compiled | state | batch | step ms (median) | MFU | compile s | peak GiB | loss first -> last "
            "| bf16 vs fp32 logits | eval ex/s max steps / early exit |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in results["parts"]:
        b = p.get("bf16_vs_fp32")
        inf = p.get("inference")
        lines.append(
            f"| {p['recipe']} | {p['compile']}{autotuned(p)} | {p['state']} | {p['batch']} | {p['step_s']['median'] * 1e3:.1f} | {p['mfu']:.1%} "
            f"| {p['compile_s']:.0f} | "
            f"{p['peak_memory_gib']:.1f} | {p['loss_first']:.3f} -> {p['loss_last']:.3f} | "
            + (f"max {b['max_abs']:.3f}, argmax agree {b['argmax_agree']:.2%}" if b else "")
            + " | "
            + (" / ".join(f"{r['examples_per_s']:.0f}" for r in inf) if inf else "")
            + " |"
        )
    ref = results.get("reference_hrm")
    if ref:
        ours = [p for p in results["parts"] if p["recipe"] == "hrm_sudoku"]
        ratios = "; ".join(
            f"{'compiled' if p['compile'] else 'eager'}{autotuned(p)}, {p['state']} state: "
            f"{ref['step_s']['median'] / p['step_s']['median']:.2f}x"
            for p in ours
        )
        lines += [
            "",
            (
                f"Reference HRM ({'compiled' if ref['compiled'] else 'eager'}, same batch): {ref['step_s']['median'] * 1e3:.1f} ms/step, "
                f"MFU {ref['mfu']:.1%}; our hrm_sudoku steps per second against its: {ratios}."
            ),
        ]
    if "peak_bf16_flop_per_s_at_end" in results:
        lines.append(
            f"\nbf16 matmul peak measured again at the end: {results['peak_bf16_flop_per_s_at_end'] / 1e12:.0f} TFLOP/s."
        )
    lines += [f"- {n}" for n in results["notes"]]
    with open(out, "a") as file:
        file.write("\n".join(lines) + "\n")
    (out.parent / "gpu_check.json").write_text(json.dumps(results, indent=2, default=str))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
