"""`latentreason bench`: how fast one training step and inference are, against the machine's own peak.

Everything is measured in one process so that ratios survive a busy machine: a square matmul in the
run's dtype (the peak) is timed before and after the model, and the fraction of peak is our FLOP/s
over that peak. FLOPs are counted by torch's FlopCounterMode over one training step (one supervised
segment, including Q-ACT's extra no-grad bootstrap segment, then backward and the optimizer step);
the CPU attention kernel, which torch's counter does not know, is counted here with torch's own
attention formula. Peers (optional `bench` extra) run at the same dimensions and batch, and are
compared per FLOP, since their architectures differ (see `peers`).
"""

from __future__ import annotations

import json
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from latentreason.hardware import compile_enabled, on_gpu, precision_of


def _register_cpu_attention_flops() -> None:
    """Teach FlopCounterMode the CPU flash-attention kernels (same formula torch uses for the GPU ones)."""
    aten = torch.ops.aten
    registry = flop_counter.flop_registry
    forward, backward = (
        aten._scaled_dot_product_flash_attention_for_cpu,
        aten._scaled_dot_product_flash_attention_for_cpu_backward,
    )
    if forward not in registry:

        @flop_counter.register_flop_formula(forward)
        def _forward(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
            return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)

    if backward not in registry:

        @flop_counter.register_flop_formula(backward)
        def _backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
            return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


_register_cpu_attention_flops()


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the matrix products (and attention) `fn` runs, forward and backward alike."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(
    fn: Callable[[], object], device: torch.device, warmup: int, repeats: int
) -> tuple[list[float], list[float]]:
    """(warm-up times, measured times) in seconds, one per call."""
    times = []
    for _ in range(warmup + repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times[:warmup], times[warmup:]


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int | None = None, repeats: int = 5) -> list[float]:
    """FLOP/s of one square matmul in `dtype`, `repeats` times: the roofline a model step is compared with."""
    size = size or (8192 if device.type == "cuda" else 1024)
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    _, times = time_calls(lambda: a @ b, device, warmup=2, repeats=repeats)
    return [2 * size**3 / t for t in times]


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def peak_memory_bytes(device: torch.device) -> int:
    """Peak device memory of the process (CUDA: allocated tensors; CPU: the process's peak resident set)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(kib * (1 if sys.platform == "darwin" else 1024))


@dataclass
class Row:
    """One line of the table: a step (ours or a peer's) or an inference mode."""

    name: str
    what: str
    step_s: dict
    flops: int | None = None
    examples_per_step: int = 0
    tokens_per_example: int = 0
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def median_s(self) -> float:
        return self.step_s["median"]

    def rates(self, peak: float) -> dict:
        out = {
            "examples_per_s": self.examples_per_step / self.median_s,
            "tokens_per_s": self.examples_per_step * self.tokens_per_example / self.median_s,
        }
        if self.flops:
            out["flop_per_s"] = self.flops / self.median_s
            out["fraction_of_peak"] = out["flop_per_s"] / peak
        return out


# -- our training step ---------------------------------------------------------------------------


class OurStep:
    """One training step of a recipe, as LatentReasoningModule.training_step runs it, without Lightning."""

    def __init__(self, config, splits, task, autocast_dtype: torch.dtype | None, device: torch.device):
        from latentreason.train.module import ExampleStream
        from latentreason.train.run import make_module

        self.module = make_module(config, task)
        self.module.attach_data(splits)
        self.model = self.module.to(device).model  # the metrics too, as Lightning moves them
        self.device, self.autocast_dtype = device, autocast_dtype
        self.stream = ExampleStream(splits["train"], int(config.trainer.global_batch_size), int(config.seed))
        self.stream.data = {k: v.to(device) for k, v in self.stream.data.items()}
        (self.optimizer,), (self.scheduler,) = self.module.configure_optimizers()
        self.loss_kind = task.loss
        self.carry = None
        self.step_number = 0

    def autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def forward_backward(self, batch: dict) -> None:
        """train_segment + backward: the model's share of a step, without the optimizer."""
        from latentreason.train.deep_supervision import Carry, train_segment

        if self.carry is None:
            self.carry = Carry.start(self.model, batch)
        with self.autocast():
            self.carry, self.loss, _, self.results = train_segment(self.model, self.carry, batch, self.loss_kind)
        self.optimizer.zero_grad(set_to_none=True)
        (self.loss / self.stream.local_batch).backward()

    def model_step(self, batch: dict) -> None:
        """forward_backward + optimizer step: what the FLOP count and the model time cover."""
        self.forward_backward(batch)
        self.optimizer.step()

    def full_step(self) -> None:
        """The whole training step: data, model, schedule, puzzle embeddings, EMA, metrics, logged values."""
        batch = self.stream.batch(self.step_number, self.device)
        self.model_step(batch)
        module, o = self.module, self.module.config.optim
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        if self.model.puzzle is not None:
            self.model.puzzle.sign_sgd_step(o.puzzle_emb_lr * (lr / o.lr if o.lr else 1.0), o.puzzle_emb_weight_decay)
        if module.ema is not None:
            module._ema_on_device().update(self.model, step=self.step_number)
        module.train_metrics.update(self.results, rows=self.results["halted"])
        float(self.loss.detach())  # what the progress bar reads each step
        self.step_number += 1


# -- inference -----------------------------------------------------------------------------------


def inference_rows(model, inputs, labels, ids, device, repeats: int, thresholds: tuple[float, ...] = ()) -> list[Row]:
    """run_to_halt on one batch at max steps and with per-example early exit (the policy's q_halt rule).

    `thresholds` adds an early-exit row for each (default: the policy's own `eval_threshold`), to find
    the threshold whose accuracy matches running every row to max steps.
    """
    from latentreason.inference import run_to_halt
    from latentreason.train.deep_supervision import per_row_results

    policy = model.policy
    saved = (policy.eval_halt, policy.eval_threshold) if hasattr(policy, "eval_halt") else None
    modes = [("max_steps", None)]
    if saved is not None:
        modes += [("q_halt", t) for t in thresholds or (saved[1],)]
    rows = []
    model.eval()
    try:
        for rule, threshold in modes:
            if saved is not None:
                policy.eval_halt, policy.eval_threshold = rule, saved[1] if threshold is None else threshold
            out = {}

            def call(out=out):
                out["result"] = run_to_halt(model, inputs, ids)

            _, times = time_calls(call, device, warmup=1, repeats=repeats)
            logits, steps, _ = out["result"]
            results = per_row_results(logits, labels)
            if threshold is None:
                name, what = f"inference ({rule})", "every row runs all segments"
            else:
                name = f"inference ({rule} > {threshold:g})" if thresholds else f"inference ({rule})"
                what = f"a row leaves when sigmoid(q_halt) > {threshold:g}"
            rows.append(
                Row(
                    name,
                    what,
                    spread(times),
                    examples_per_step=len(inputs),
                    tokens_per_example=inputs.shape[1],
                    extra={
                        "exact_accuracy": float(results["exact"].float().mean()),
                        "mean_steps": float(steps.float().mean()),
                    },
                )
            )
    finally:
        if saved is not None:
            policy.eval_halt, policy.eval_threshold = saved
        model.train()
    return rows


# -- the command ---------------------------------------------------------------------------------


def bench(args: list[str], steps: int = 8, warmup: int = 3, peers: bool = True) -> dict:
    """Measure a recipe's training step (and peers at its dimensions); returns the JSON-able report."""
    from latentreason.config import load_config
    from latentreason.tasks.base import build_task
    from latentreason.train.run import check_run_config

    config = load_config(args)
    check_run_config(config)
    t = config.trainer
    compiled = compile_enabled(t)
    if t.threads:
        torch.set_num_threads(int(t.threads))
    device = torch.device("cuda" if on_gpu(t) else "cpu")
    precision = precision_of(t)
    autocast_dtype = (
        torch.bfloat16 if precision.startswith("bf16") else (torch.float16 if precision.startswith("16") else None)
    )
    peak_dtype = autocast_dtype or torch.float32
    torch.manual_seed(int(config.seed))

    task = build_task(config)
    splits = task.splits()
    ours = OurStep(config, splits, task, autocast_dtype, device)
    batch_size, length = ours.stream.local_batch, ours.model.length

    peak_before = matmul_peak(device, peak_dtype)
    flops = step_flops(config, splits, task, autocast_dtype, device, None if compiled else ours)
    warm, model_times = time_calls(lambda: ours.model_step(ours.stream.batch(0, device)), device, warmup, steps)
    _, full_times = time_calls(ours.full_step, device, 1, steps)
    peak_after = matmul_peak(device, peak_dtype)
    peak_values = peak_before + peak_after
    peak = statistics.median(peak_values)
    rows = [
        Row(
            "latentreason",
            "training step: train_segment + backward + optimizer",
            spread(model_times),
            flops,
            batch_size,
            length,
            extra={"compile_s": (warm[0] - statistics.median(model_times)) if compiled else 0.0},
        )
    ]
    rows.append(
        Row(
            "latentreason (whole step)",
            "+ data, schedule, EMA, metrics, logged loss",
            spread(full_times),
            flops,
            batch_size,
            length,
            extra={"outside_model_s": statistics.median(full_times) - statistics.median(model_times)},
        )
    )
    if peers:
        from latentreason.peers import peer_rows

        rows += peer_rows(config, task, batch_size, device, autocast_dtype, warmup, steps)
    test = splits["test"]
    count = min(int(t.eval_batch_size), len(test["inputs"]))
    inputs, labels, ids = (test[k][:count].to(device) for k in ("inputs", "labels", "puzzle_ids"))
    with ours.autocast():
        rows += inference_rows(ours.model, inputs, labels, ids, device, repeats=3)
    return report(args, config, device, precision, peak_dtype, peak_values, peak, rows, compiled)


def step_flops(config, splits, task, autocast_dtype, device, eager: OurStep | None = None) -> int:
    """FLOPs of one training step, counted on an eager step (given, or built here): the counter cannot
    see inside a compiled graph, and the count is the same."""
    if eager is None:
        eager = OurStep(with_overrides(config, {"trainer": {"compile": False}}), splits, task, autocast_dtype, device)
    return count_flops(lambda: eager.model_step(eager.stream.batch(0, device)))


def with_overrides(config, changes: dict):
    from omegaconf import OmegaConf

    return OmegaConf.merge(config, changes)


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            cpu = next((line.split(":", 1)[1].strip() for line in file if line.startswith("model name")), cpu)
    except OSError:
        pass
    info = {"platform": platform.platform(), "cpu": cpu, "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import os

        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


def report(args, config, device, precision, peak_dtype, peak_values, peak, rows: list[Row], compiled: bool) -> dict:
    return {
        "command": "latentreason bench " + " ".join(args),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "torch": torch.__version__,
        "machine": machine(),
        "device": str(device),
        "precision": precision,
        "compile": compiled,  # of the training step; inference always runs eager (Core.set_updates)
        "peak": {"dtype": str(peak_dtype).removeprefix("torch."), "flop_per_s": peak, "all": spread(peak_values)},
        "peak_memory_bytes": peak_memory_bytes(device),
        "rows": [{**asdict(r), **r.rates(peak)} for r in rows],
    }


def print_report(result: dict) -> None:
    from rich.table import Table

    from latentreason.console import console

    peak = result["peak"]
    title = (
        f"{result['command']}  ({result['device']}, {result['precision']}, compile={result['compile']}; "
        f"{peak['dtype']} matmul peak {peak['flop_per_s'] / 1e9:.1f} GFLOP/s, "
        f"range {peak['all']['min'] / 1e9:.1f}-{peak['all']['max'] / 1e9:.1f})"
    )
    table = Table(title=title)
    for column in (
        "row",
        "median ms",
        "range ms",
        "GFLOP/step",
        "GFLOP/s",
        "% of peak",
        "examples/s",
        "tokens/s",
        "notes",
    ):
        table.add_column(column, justify="left" if column in ("row", "notes") else "right")
    for r in result["rows"]:
        s = r["step_s"]
        notes = [r["notes"]] if r["notes"] else []
        extra = r["extra"]
        if extra.get("compile_s"):
            notes.append(f"compile {extra['compile_s']:.1f} s")
        if "outside_model_s" in extra:
            notes.append(f"outside the model {extra['outside_model_s'] * 1e3:.1f} ms/step")
        if "exact_accuracy" in extra:
            notes.append(f"exact {extra['exact_accuracy']:.1%}, mean steps {extra['mean_steps']:.2f}")
        table.add_row(
            r["name"],
            f"{s['median'] * 1e3:.1f}",
            f"{s['min'] * 1e3:.0f}-{s['max'] * 1e3:.0f}",
            f"{r['flops'] / 1e9:.2f}" if r.get("flops") else "-",
            f"{r['flop_per_s'] / 1e9:.1f}" if "flop_per_s" in r else "-",
            f"{r['fraction_of_peak']:.1%}" if "fraction_of_peak" in r else "-",
            f"{r['examples_per_s']:.0f}",
            f"{r['tokens_per_s']:.0f}",
            "; ".join(notes),
        )
    wide = console if console.width >= 180 else type(console)(width=180)  # a table to read, not to wrap
    wide.print(table)
    console.print(
        f"peak memory {result['peak_memory_bytes'] / 2**20:.0f} MiB; {result['machine']['cpu']}; "
        f"torch {result['torch']}; {result['date']}"
    )


def bench_checkpoint(path: str, limit: int, repeats: int, args: list[str], thresholds: tuple[float, ...] = ()) -> dict:
    """Inference only, on a trained checkpoint's held-out split: every row to max steps vs per-example early exit."""
    from latentreason.inference import load_checkpoint

    trained = load_checkpoint(path)
    model, device = trained.model, trained.device
    test = trained.task.splits()["test"]
    trained.use_puzzle_names(test)
    count = min(limit, len(test["inputs"]))
    inputs, labels, ids = (test[k][:count].to(device) for k in ("inputs", "labels", "puzzle_ids"))
    peak_values = matmul_peak(device, torch.float32)
    rows = inference_rows(model, inputs, labels, ids, device, repeats, thresholds)
    model.eval()
    peak_values += matmul_peak(device, torch.float32)
    peak = statistics.median(peak_values)
    return report(args, trained.config, device, "32-true", torch.float32, peak_values, peak, rows, compiled=False)


BENCH_OPTIONS = ("steps", "warmup", "json", "peers", "ckpt", "limit", "threshold")


def parse_thresholds(text: str) -> tuple[float, ...]:
    """`threshold=0.5,0.8` as probabilities; one clear line for anything else."""
    from latentreason.errors import ConfigError

    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = None
    if values is None or any(not 0.0 <= v <= 1.0 for v in values):
        raise ConfigError(
            f"threshold={text!r} should be probabilities in [0, 1], separated by commas (threshold=0.5,0.8)"
        )
    return values


def cmd_bench(args: list[str]) -> None:
    """`latentreason bench recipe=NAME [steps=N] [warmup=N] [json=FILE] [peers=false] [key=value ...]`.

    Or `latentreason bench ckpt=PATH [limit=N] [threshold=T[,T...]]`: inference only, on a trained checkpoint.
    """
    from pathlib import Path

    from latentreason.errors import ConfigError

    options = {}
    rest = []
    for arg in args:
        key, eq, value = arg.partition("=")
        if eq and key in BENCH_OPTIONS:
            options[key] = value
        else:
            rest.append(arg)
    for key in ("steps", "warmup"):
        if key in options and not options[key].isdigit():
            raise ConfigError(f"{key}={options[key]!r} should be a whole number")
    if "ckpt" in options:
        ignored = [key for key in ("warmup", "peers") if key in options] + rest
        if ignored:
            raise ConfigError(
                f"bench ckpt= times inference of the checkpoint as trained: {', '.join(ignored)} do not apply "
                "(it takes limit=, steps=, threshold= and json=)"
            )
        limit = options.get("limit", "1000")
        if not limit.isdigit() or int(limit) < 1:
            raise ConfigError(f"limit={limit!r} should be a positive whole number")
        thresholds = parse_thresholds(options.get("threshold", ""))
        result = bench_checkpoint(options["ckpt"], int(limit), max(1, int(options.get("steps", 3))), args, thresholds)
        print_report(result)
        if "json" in options:
            Path(options["json"]).write_text(json.dumps(result, indent=2))
        return
    if not any(a.startswith("recipe=") for a in rest):
        raise ConfigError(
            "usage: latentreason bench recipe=NAME [preset=cpu|paper] [steps=8] [warmup=3] [json=FILE] [peers=false] "
            "[key=value ...]"
            " | latentreason bench ckpt=PATH [limit=1000] [steps=3] [threshold=0.5,0.8] [json=FILE]"
        )
    result = bench(
        rest,
        steps=max(1, int(options.get("steps", 8))),
        warmup=int(options.get("warmup", 3)),
        peers=options.get("peers", "true").lower() not in ("false", "0", "no"),
    )
    result["command"] = "latentreason bench " + " ".join(args)
    print_report(result)
    if "json" in options:
        Path(options["json"]).write_text(json.dumps(result, indent=2))
